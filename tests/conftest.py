"""Suite-wide guard: no test may leave files in the checkout (a relative ``--out`` once wrote ``,`` into it)."""

from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
GENERATED = {
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "__pycache__",
    ".venv",
    "out",
    "runs",
    "data",
    "build",
    "site",
}


def _entries() -> set[str]:
    return {path.name for path in REPOSITORY.iterdir()} - GENERATED


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean():
    before = _entries()
    yield
    new = sorted(_entries() - before)
    assert not new, f"tests wrote {new} into the checkout {REPOSITORY}; write under tmp_path instead"

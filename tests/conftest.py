"""Suite-wide fixtures: no test may leave files in the checkout (a relative ``--out`` once wrote ``,`` into it);
``one_thread`` for modules of small models."""

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


@pytest.fixture
def one_thread():
    """Small models: one intra-op thread is fastest, and avoids stalls when other processes share the CPU (a module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fail_after(model, passes: int):
    """Make ``model`` raise KeyboardInterrupt after ``passes`` forward passes (a kill at a known point, no timing);
    the weights, and so a run's fingerprint, stay the model's own. Returns the hook's handle (``.remove()``)."""
    left = [passes]

    def count(module, inputs):
        if left[0] == 0:
            raise KeyboardInterrupt("killed")
        left[0] -= 1

    return model.register_forward_pre_hook(count)


@pytest.fixture
def fail_after():
    """``fail_after(model, passes)``: kill a run at a counted forward pass (see ``_fail_after``)."""
    return _fail_after

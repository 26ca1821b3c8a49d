"""Writing result files: tidy CSV, NumPy arrays and JSON sidecars, each written whole or not at all.

Every file is written to a temporary name beside its target and renamed into place, so an interrupted run
never leaves a truncated file that looks complete.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_file(path: Path, mode: str = "w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, mode, **({"newline": ""} if "b" not in mode else {})) as file:
            yield file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(path, rows: list[dict]) -> None:
    """A tidy CSV with one row per dict; columns in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_file(Path(path)) as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_arrays(path, **arrays) -> None:
    """An uncompressed ``.npz`` of plain arrays (readable with ``allow_pickle=False``)."""
    with atomic_file(Path(path), "wb") as file:
        np.savez(file, **arrays)


def write_json(path, record: dict) -> None:
    with atomic_file(Path(path)) as file:
        json.dump(record, file, indent=2, default=_jsonable)
        file.write("\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (torch only if already imported)."""
    import scipy

    from . import __version__

    versions = {"hiersmooth": __version__, "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    return versions

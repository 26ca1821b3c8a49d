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
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

MARKER = {"written_by": "hiersmooth"}  # in every JSON sidecar: how check_output recognises hiersmooth's own files
LOCK = ".hiersmooth.lock"  # the lock file of an output folder; its presence marks the folder as hiersmooth's


@contextmanager
def atomic_file(path: Path, mode: str = "w"):
    """Open a temporary file beside ``path`` (unique per call, ``tempfile.mkstemp``) and rename it to ``path`` once the
    block finishes; on any error the temporary file is removed and ``path`` is left as it was. A failing file
    system call (permissions, a full disk, a directory in the way) is a one-line ValueError naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as error:
        raise ValueError(f"cannot write {path} ({error.strerror or error})") from None
    try:
        with os.fdopen(handle, mode, **({"newline": ""} if "b" not in mode else {})) as file:
            yield file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ValueError(f"cannot write {path} ({error.strerror or error})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _stat(path: Path, parameter: str):
    """``os.stat(path)``, or None when nothing is there; a ValueError when a parent is not a folder."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(f"{parameter} {path}: cannot be used ({error.strerror or error})") from None


def _same(path: Path, other) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def _named_by_sidecar(path: Path) -> bool:
    """True when a hiersmooth JSON sidecar in ``path``'s folder lists a file of that name among its outputs."""
    try:
        candidates = sorted(path.parent.glob("*.json"))[:200]
    except OSError:
        return False
    for candidate in candidates:
        try:
            if not candidate.is_file() or candidate.stat().st_size > 4 << 20:
                continue
            record = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
            continue
        versions = record.get("versions")
        if record.get("written_by") != MARKER["written_by"] and not (
            isinstance(versions, dict) and "hiersmooth" in versions
        ):
            continue
        if any(isinstance(v, str) and Path(v).name == path.name for v in record["outputs"].values()):
            return True
    return False


def check_output(out, inputs=(), force: bool = False, *, files=None, owner=None, parameter: str = "--out") -> None:
    """Refuse, before anything is computed, an output that would destroy something.

    ``out`` is the output file, or with ``files`` (the files the command writes) the output folder. Refused, with a
    one-line ValueError naming ``parameter``: an output that is one of ``inputs`` (the run's input files and folders,
    compared with ``os.path.samefile``); anything but a regular file where a file is written (a directory, named pipe,
    device, socket) or anything but a directory where the folder goes; a folder that cannot be written; and, unless
    ``force``, an existing file that hiersmooth did not write. hiersmooth's own files are recognised by the lock file
    ``owner`` (created by :func:`output_lock` on every run into the output) or by a JSON sidecar beside them that names
    them among its ``outputs``. ``force`` never overrides the other refusals.
    """
    out = Path(out)
    inputs = [Path(p) for p in inputs if p]
    if files is None:
        files = [out]
    else:
        status = _stat(out, parameter)
        if status is not None and not stat.S_ISDIR(status.st_mode):
            raise ValueError(f"{parameter} {out}: is {_KINDS.get(stat.S_IFMT(status.st_mode), 'a file')}, not a folder")
        files = [out / f for f in files]
        if owner is None:
            owner = out / LOCK
        for source in inputs:
            if status is not None and _same(out, source):
                raise ValueError(f"{parameter} {out}: is an input of this run ({source}); choose another output folder")
    ours = owner is not None and Path(owner).is_file()
    for path in [Path(f) for f in files] + ([Path(owner)] if owner is not None else []):
        status = _stat(path, parameter)
        if status is None:
            continue
        source = next((p for p in inputs if _same(path, p)), None)
        if source is not None:
            raise ValueError(
                f"{parameter} {path}: is an input of this run ({source}); writing it would destroy the input"
            )
        if not stat.S_ISREG(status.st_mode):
            kind = _KINDS.get(stat.S_IFMT(status.st_mode), "not a regular file")
            raise ValueError(f"{parameter} {path}: is {kind}, not a regular file hiersmooth can replace")
        if not force and path != owner and not ours and not _named_by_sidecar(path):
            raise ValueError(
                f"{parameter} {path}: exists and was not written by hiersmooth; "
                "choose another output or add --force to replace it"
            )
    for path in {Path(f).parent for f in files}:
        existing = path
        while _stat(existing, parameter) is None and existing != existing.parent:
            existing = existing.parent
        status = _stat(existing, parameter)
        if status is not None and not stat.S_ISDIR(status.st_mode):
            raise ValueError(f"{parameter} {path}: {existing} is not a folder")
        if status is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{parameter} {path}: folder {existing} is not writable")


@contextmanager
def output_lock(lock, parameter: str = "--out"):
    """Hold the lock file ``lock`` (``fcntl.flock``, released when the block ends or the process dies) with this
    process's PID written in it. A second run into the same output is refused with one line naming the PID holding
    it; a lock file left by a process that is gone holds no flock and is simply taken over."""
    import fcntl

    lock = Path(lock)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as error:
        raise ValueError(
            f"{parameter} {lock.parent}: cannot create the lock file {lock.name} ({error.strerror or error})"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError(f"{parameter} {lock}: is not a regular file; remove it")
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ValueError(
                f"{parameter} {lock.parent}: in use by another hiersmooth run (PID {holder}, lock {lock}); "
                "wait for it to finish or choose another output"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        os.close(descriptor)  # releases the flock


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
    """A JSON sidecar; a dict with ``outputs`` gets the hiersmooth marker (:data:`MARKER`) that
    :func:`check_output` recognises."""
    if isinstance(record, dict) and "outputs" in record:
        record = {**MARKER, **record}
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

    versions = {
        "hiersmooth": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    return versions

"""Vote counts from Monte-Carlo sampling: the input of every certificate (SPEC.md §4).

A votes file is an ``.npz`` with three arrays:
- ``pre_votes`` (points × classes, integers): class counts from the n₀ selection samples; they pick the class A;
- ``votes`` (points × classes, integers): class counts from the n estimation samples; they bound p_A (and p_B);
- ``labels`` (points,): the true class of each point, for certified accuracy (-1: unknown, never counted correct).
Every row of ``votes`` sums to the same n, every row of ``pre_votes`` to the same n₀.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_KEYS = ("pre_votes", "votes", "labels")
_INT64_MAX = (1 << 63) - 1


def _integer_array(name: str, value, ndim: int, least: int = 0) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != ndim:
        shape = "points × classes" if ndim == 2 else "points"
        raise ValueError(f"{name}: must be a {ndim}-d array ({shape}), got shape {array.shape}")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        if array.size and np.abs(array).max() >= 2.0**63:
            raise ValueError(
                f"{name}: values must fit in int64 (|v| < 2^63), found {np.abs(array).max():g}; they would be wrapped"
            )
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name}: must hold integers, got {array.dtype} values")
    if array.dtype.kind == "u" and array.size and int(array.max()) > _INT64_MAX:
        raise ValueError(
            f"{name}: values must fit in int64 (at most 2^63 - 1), found {int(array.max())}; they would be wrapped"
        )
    if array.size and array.min() < least:
        what = "counts must be non-negative" if least == 0 else f"values must be >= {least}"
        raise ValueError(f"{name}: {what}, found {array.min()}")
    return array.astype(np.int64)


def _common_total(name: str, counts: np.ndarray) -> int:
    if counts.size and int(counts.max()) * counts.shape[1] > _INT64_MAX:  # a row sum might overflow: add exactly
        exact = [sum(int(v) for v in row) for row in counts]
        worst = max(range(len(exact)), key=exact.__getitem__)
        if exact[worst] > _INT64_MAX:
            raise ValueError(
                f"{name}: row {worst} sums to {exact[worst]} samples, beyond int64 (2^63 - 1); it would be wrapped"
            )
    totals = counts.sum(axis=1)
    if totals.size and np.any(totals != totals[0]):
        bad = int(np.flatnonzero(totals != totals[0])[0])
        raise ValueError(
            f"{name}: every row must sum to the same number of samples; row 0 sums to {totals[0]}, "
            f"row {bad} to {totals[bad]}"
        )
    if totals.size and totals[0] == 0:
        raise ValueError(f"{name}: rows sum to 0 samples")
    return int(totals[0]) if totals.size else 0


def not_loadable(path) -> str:
    """Why ``np.load(path, allow_pickle=False)`` refused a file as pickled data: an archive (zip) or .npy file holds
    an object array, or the file is a pickle (first byte 0x80, protocol 2 and later) — or it is neither, since numpy
    takes whatever is not a zip or an .npy file for a pickle: a YAML or CSV file given by mistake."""
    with open(path, "rb") as file:
        start = file.read(8)
    if start.startswith((b"PK", b"\x93NUMPY", b"\x80")):
        return "holds pickled objects; hiersmooth never unpickles files"
    return f"is not an .npz archive (it starts with {start!r}; an .npz file is a zip of .npy arrays)"


MAX_NPZ_BYTES = 4 << 30  # the arrays of one .npz together; a larger claim is refused before anything is allocated


def read_npz_arrays(data: np.lib.npyio.NpzFile, keys, where: str) -> dict[str, np.ndarray]:
    """``{key: data[key]}``, each array's header checked first: numpy allocates what a header claims before reading,
    so a shape that does not match the bytes the member holds (a damaged or hostile file), or more than
    ``MAX_NPZ_BYTES`` in total, is a ValueError ``"{where}: ..."`` instead of a huge allocation."""
    import numpy.lib.format as npy_format

    names, total, arrays = set(data.zip.namelist()), 0, {}
    for key in keys:
        name = key if key in names else f"{key}.npy"
        info = data.zip.getinfo(name)
        if info.flag_bits & 0x1:
            raise ValueError(f"{where}: array {key!r} is encrypted; a .npz file holds plain arrays")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            raise ValueError(f"{where}: array {key!r} uses an unknown compression method ({info.compress_type})")
        with data.zip.open(info) as member:
            try:
                version = npy_format.read_magic(member)
                read_header = (
                    npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member)
            except (
                SyntaxError,
                tokenize.TokenError,
                TypeError,
                ValueError,
            ) as error:  # numpy parses the header as Python
                raise ValueError(f"{where}: array {key!r} has a damaged .npy header ({type(error).__name__})") from None
            held = info.file_size - member.tell()
        if dtype.hasobject:  # pickled objects: data[key] refuses them (allow_pickle=False)
            continue
        claimed = math.prod(shape) * dtype.itemsize
        total += claimed
        if claimed != held or (info.compress_type != zipfile.ZIP_STORED and claimed > 1100 * info.compress_size + 4096):
            raise ValueError(
                f"{where}: array {key!r} claims shape {shape} of {dtype} ({claimed} bytes) but holds {held} bytes"
            )
        if total > MAX_NPZ_BYTES:
            raise ValueError(f"{where}: its arrays claim more than {MAX_NPZ_BYTES} bytes")
    for key in keys:
        arrays[key] = data[key]
    return arrays


@dataclass(frozen=True)
class Votes:
    """Validated vote counts; ``n0`` and ``n`` are the per-point sample counts."""

    pre_votes: np.ndarray
    votes: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        pre_votes = _integer_array("pre_votes", self.pre_votes, 2)
        votes = _integer_array("votes", self.votes, 2)
        labels = _integer_array("labels", self.labels, 1, least=-1)
        if votes.shape != pre_votes.shape:
            raise ValueError(
                f"votes has shape {votes.shape} but pre_votes has shape {pre_votes.shape}: they must match"
            )
        if labels.shape[0] != votes.shape[0]:
            raise ValueError(
                f"labels has {labels.shape[0]} entries but votes has {votes.shape[0]} points: they must match"
            )
        if votes.shape[0] == 0:
            raise ValueError("votes: there are no points")
        if votes.shape[1] < 2:
            raise ValueError(f"votes: need at least 2 classes, got {votes.shape[1]}")
        if labels.max() >= votes.shape[1]:
            raise ValueError(f"labels: values must be class indices in [0, {votes.shape[1] - 1}], found {labels.max()}")
        _common_total("pre_votes", pre_votes)
        _common_total("votes", votes)
        for name, array in zip(_KEYS, (pre_votes, votes, labels)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def n0(self) -> int:
        return int(self.pre_votes[0].sum())

    @property
    def n(self) -> int:
        return int(self.votes[0].sum())

    @property
    def points(self) -> int:
        return self.votes.shape[0]

    @property
    def classes(self) -> int:
        return self.votes.shape[1]


def load_votes(path) -> Votes:
    """Read and validate a votes ``.npz`` without ever unpickling (``allow_pickle=False``)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: holds a single array, not an .npz archive of {', '.join(_KEYS)}")
        with data:
            if "sequential" in data.files:
                raise ValueError(
                    f"{path}: votes gathered sequentially (hiersmooth certify --target stops each point early); "
                    "fixed-n bounds on them would be invalid (optional stopping) — their certificates are in the "
                    "certify run's files, or re-run certify without --target"
                )
            missing = [key for key in _KEYS if key not in data.files]
            if missing:
                raise ValueError(
                    f"{path}: missing array(s) {', '.join(missing)}; a votes file holds {', '.join(_KEYS)}"
                )
            arrays = read_npz_arrays(data, _KEYS, str(path))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such votes file") from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        EOFError,
        OSError,
    ) as error:  # zipfile: unsupported features
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"{path}: {not_loadable(path)}; a votes file holds plain integer arrays") from None
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    return Votes(**arrays)


def save_votes(path, votes: Votes) -> None:
    """Write ``votes`` in the format :func:`load_votes` reads, atomically (a kill mid-write leaves no partial file)."""
    from ..results import write_arrays

    write_arrays(path, pre_votes=votes.pre_votes, votes=votes.votes, labels=votes.labels)

"""Uniform 15-bit integers, exact Bernoulli trials and geometric gap tables from a generator's integer stream (SPEC §2).

``random_`` on an int64 tensor gives words uniform on [0, 2⁶³) at about the cost per element of a 32-bit word or a
float32 uniform, so a word's four 15-bit pieces are four uniform chunks for the price of one draw. The selection
masks and the torch construction's geometric gaps (``bit_flips``) are read from these chunks (see
``hiersmooth.seeds``); the compiled pass of ``fused_flips`` cuts its chunks the same way from NumPy SFC64 words.

A Bernoulli(p) trial compares a uniform U on [0, 1) with p, reading U's binary digits 15 at a time only as far as
needed, so its law is that of p itself — exactly, for any float64 p, where ``rand() < p`` on a 53-bit grid is true
with probability ⌈p·2⁵³⌉·2⁻⁵³, a little more than p wherever p has digits below 2⁻⁵³ (p < 1/2).

A Geometric(p) gap — the distance between successes of Bernoulli(p) trials, which the sparse flips draw — is read
from one chunk through a table of p for all but a few chunks (:func:`gap_table`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

CHUNK_BITS = 15
LOW_BITS = 53 - CHUNK_BITS  # the rest of a 53-bit uniform U below its top chunk
_CHUNK_MASK = 2**CHUNK_BITS - 1
_GAP_TABLES: dict = {}  # (p, device) -> the gap table of p on that device: float64, int32 (None if a gap is too wide)


def random_chunks(count: int, generator=None, device=None) -> torch.Tensor:
    """``count`` independent uniform integers in [0, 2¹⁵) (int16): the low 15 bits of each 16-bit quarter of
    int64 words uniform on [0, 2⁶³), i.e. bits 0–14, 16–30, 32–46 and 48–62 of every word."""
    chunks = _chunks(count, generator, device)
    return torch.from_numpy(chunks) if isinstance(chunks, np.ndarray) else chunks


def _chunks(count: int, generator, device):
    """:func:`random_chunks` as a NumPy array on a CPU (its int16 kernels are several times faster than torch's
    there), as a torch tensor elsewhere."""
    words = torch.empty(-(-count // 4), dtype=torch.int64, device=device).random_(generator=generator)
    if words.device.type == "cpu":
        return chunks_of(words.numpy(), count)
    return words.view(torch.int16)[:count].bitwise_and_(_CHUNK_MASK)


def chunks_of(words: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` 15-bit chunks of 64-bit ``words``, in place (int16): the low 15 bits of each 16-bit
    quarter, quarter after quarter."""
    chunks = words.view(np.int16)[:count]
    return np.bitwise_and(chunks, _CHUNK_MASK, out=chunks)


def gap_table(p: float, device=None, dtype=torch.float64) -> torch.Tensor:
    """(2¹⁵,) G = ⌊log U / log(1 − p)⌋ + 1, the Geometric(p) gap (support 1, 2, …) of U uniform on (0, 1], for
    every U = (c·2³⁸ + k)·2⁻⁵³, k = 1 … 2³⁸, whose top 15 bits are the chunk c — where G takes one value on that
    whole interval — and 0 where it does not (G is then computed from all 53 bits of U, :func:`gaps_from_uniform`).
    G is non-increasing in U, so its values at both ends decide. float64, or int32 (``dtype``) where every gap
    of the table is below 2³¹."""
    key = (p, str(device))
    tables = _GAP_TABLES.get(key)
    if tables is None:
        chunk = torch.arange(2**CHUNK_BITS, dtype=torch.float64)
        lowest = gaps_from_uniform((chunk * 2.0**LOW_BITS + 1) * 2.0**-53, p)  # U at the interval's low end
        highest = gaps_from_uniform((chunk + 1) * 2.0**-CHUNK_BITS, p)  # ... and at its high end
        table = torch.where(lowest == highest, lowest, 0.0)
        narrow = table.to(torch.int32).to(device) if table.max() < 2**31 else None
        tables = _GAP_TABLES[key] = (table.to(device), narrow)
    return tables[dtype == torch.int32]


def gaps_from_uniform(u: torch.Tensor, p: float) -> torch.Tensor:
    """G = ⌊log U / log(1 − p)⌋ + 1 (float64; ∞ or huge for tiny p, cut off by the caller)."""
    return u.log().div_(math.log1p(-p)).floor_().add_(1)


def bernoulli_trials(p, shape: tuple[int, ...], generator=None, device=None) -> torch.Tensor:
    """Independent trials (bool, ``shape``), entry (…, i) true with probability exactly p — a float, or one float
    per entry of the last axis (a sequence or float64 tensor of length ``shape[-1]``) — for any p in [0, 1].

    With P = p·2¹⁵ and k = ⌊P⌋, a chunk c (U's next 15 digits) decides the trial: c < k true, c > k false;
    c = k (probability 2⁻¹⁵) hands it to U's following digits against the rest P − k, exact in float64. A float64 p
    has at most 1,075 binary digits, so the rest reaches 0 (false) after at most 72 such rounds.
    """
    trials = _trials(p, shape[-1] if shape else 1, math.prod(shape), generator, device)
    return (torch.from_numpy(trials) if isinstance(trials, np.ndarray) else trials).view(shape)


def _trials(p, width: int, count: int, generator, device):
    """The flat trials of :func:`bernoulli_trials` (p per entry of rows of ``width``): a NumPy bool array on a CPU
    (its int16 comparisons and indexing are several times faster than torch's there), a torch tensor elsewhere."""
    if isinstance(p, (int, float)):
        below, tie_at, rest = _scalar_thresholds(float(p))
    else:
        below, tie_at, rest = _thresholds(np.asarray(p.cpu() if isinstance(p, torch.Tensor) else p, dtype=np.float64))
    chunks = _chunks(count, generator, device)
    if isinstance(chunks, np.ndarray):
        chunks = chunks.reshape(-1, width)
        trials = (chunks <= below).reshape(-1)
        ties = np.flatnonzero(chunks == tie_at)
    else:
        chunks = chunks.view(-1, width)
        trials = (chunks <= torch.as_tensor(below, device=device)).view(-1)
        ties = torch.nonzero((chunks == torch.as_tensor(tie_at, device=device)).view(-1)).squeeze(1).cpu().numpy()
    if ties.size:
        tied_rest = rest[ties % width] if rest.ndim else np.full(ties.size, float(rest))
        open_ties = ties[tied_rest > 0]  # a rest of 0: U's digits so far already exceed p's
        index = (lambda i: i) if isinstance(trials, np.ndarray) else (lambda i: torch.as_tensor(i, device=device))
        trials[index(ties)] = False
        if open_ties.size:
            trials[index(open_ties)] = _trials(
                tied_rest[tied_rest > 0], open_ties.size, open_ties.size, generator, device
            )
    return trials


def _thresholds(probability: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For P = p·2¹⁵, k = ⌊P⌋: (k − 1, k or −1 where k = 2¹⁵, P − k), the first two as int16: a chunk c decides
    true iff c <= k − 1 and ties iff c = k (no chunk equals −1), the rest is p's remainder (exact in float64)."""
    scaled = probability * 2.0**CHUNK_BITS
    whole = np.floor(scaled)
    return (whole - 1).astype(np.int16), np.where(whole < 2**CHUNK_BITS, whole, -1).astype(np.int16), scaled - whole


@functools.lru_cache(maxsize=64)
def _scalar_thresholds(probability: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_thresholds` of one probability (a selection's p is drawn with over and over)."""
    return _thresholds(np.float64(probability))

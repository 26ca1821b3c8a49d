"""Sparse bit-flip sampling for binary rows: the cost grows with the number of flips, not with N·D (SPEC.md §2.2).

Within the selected rows every 0-bit turns 1 with probability p₊ and every 1-bit turns 0 with probability p₋,
independently. Drawing one Bernoulli per bit would cost N·D uniforms per sample (8 million for Cora-ML); here

- deletions draw one uniform per 1-bit of the input (the input is sparse);
- additions are a Bernoulli(p₊) process on the line of all bits of the selected rows, drawn by its geometric
  gaps: the gaps between successive successes of independent Bernoulli(p) trials are i.i.d. Geometric(p),
  G = ⌊log U / log(1 − p)⌋ + 1 with U uniform on (0, 1]. Their partial sums are the success positions, sorted
  and distinct. A success that lands on a 1-bit is dropped: that bit is governed by p₋ alone.

The result is exact (the same distribution as one Bernoulli per bit) and costs O(ones + p₊·N_selected·D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_TINY = 2.0**-1074  # the least positive double

def bernoulli_positions(length: int, p: float, generator=None, device=None) -> torch.Tensor:
    """Sorted positions in [0, length) of the successes of ``length`` independent Bernoulli(p) trials."""
    if p <= 0 or length <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if p >= 1:
        return torch.arange(length, device=device)
    log_stay = math.log1p(-p)
    expected = p * length
    chunk = int(expected + 6 * math.sqrt(expected * (1 - p)) + 16)
    parts, last = [], -1
    while last < length:
        # U and 1 − U have the same law; clamping U = 0 (probability 2⁻⁵³) keeps log U finite.
        gaps = torch.rand(chunk, generator=generator, device=device, dtype=torch.float64).clamp_(min=_TINY)
        gaps.log_().div_(log_stay).floor_().add_(1)  # G = ⌊log U / log(1 − p)⌋ + 1, in place
        # Exact below 2⁵³; anything past the line's end (even an infinite gap for p ≈ 1e-300) is clamped to it.
        positions = torch.cumsum(gaps, 0).add_(last).clamp_(max=length).long()
        parts.append(positions)
        last = int(positions[-1])
        chunk = int(chunk / 4) + 16  # rarely needed: only when the first chunk fell short of the line
    positions = parts[0] if len(parts) == 1 else torch.cat(parts)
    return positions[: int(torch.searchsorted(positions, length))]


@dataclass
class NoisyBits:
    """The 1-bits of n noisy copies of an (N, D) binary matrix, stacked as n·N rows: (row, column) pairs.

    ``kept`` are the input's 1-bits that survived, ``added`` the flipped 0-bits; each list is sorted by row, then
    column. ``mask`` (n, N) is the selection.
    """

    rows: int
    columns: int
    mask: torch.Tensor
    kept_rows: torch.Tensor
    kept_columns: torch.Tensor
    added_rows: torch.Tensor
    added_columns: torch.Tensor

    def dense(self, indicator: bool, dtype=torch.float32) -> torch.Tensor:
        """(n, N, D [+1]) tensor with the indicator τ as the last column."""
        n, nodes = self.mask.shape
        width = self.columns + indicator
        out = torch.zeros(self.rows, width, dtype=dtype, device=self.mask.device)
        out[self.kept_rows, self.kept_columns] = 1
        out[self.added_rows, self.added_columns] = 1
        if indicator:
            out[:, -1] = self.mask.reshape(-1).to(dtype)
        return out.view(n, nodes, width)

    def csr(self, indicator: bool, dtype=torch.float32) -> torch.Tensor:
        """(n·N, D [+1]) sparse CSR tensor: each row holds its kept bits, then τ, then its added bits.

        Columns within a row are unsorted (kept, indicator, added); no column repeats. ``torch.sparse.mm`` and
        ``to_dense`` accept this.
        """
        device = self.mask.device
        kept = torch.bincount(self.kept_rows, minlength=self.rows)
        added = torch.bincount(self.added_rows, minlength=self.rows)
        tau = self.mask.reshape(-1).long() if indicator else torch.zeros_like(kept)
        crow = torch.zeros(self.rows + 1, dtype=torch.long, device=device)
        torch.cumsum(kept + tau + added, 0, out=crow[1:])
        start = crow[:-1]
        columns = torch.empty(int(crow[-1]), dtype=torch.long, device=device)
        columns[_slots(self.kept_rows, kept, start)] = self.kept_columns
        if indicator:
            selected = torch.nonzero(tau).squeeze(1)
            columns[start[selected] + kept[selected]] = self.columns
        columns[_slots(self.added_rows, added, start + kept + tau)] = self.added_columns
        values = torch.ones(columns.numel(), dtype=dtype, device=device)
        return torch.sparse_csr_tensor(crow, columns, values, size=(self.rows, self.columns + indicator), check_invariants=False)


def _slots(rows: torch.Tensor, counts: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Destination of each entry of a row-sorted list: its row's first free slot plus its rank within the row."""
    begins = torch.cumsum(counts, 0) - counts  # index of each row's first entry in the list
    return first[rows] + torch.arange(rows.numel(), device=rows.device) - begins[rows]


def flip_bits(ones: torch.Tensor, bits: torch.Tensor, mask: torch.Tensor, p_plus: float, p_minus: float, generator=None) -> NoisyBits:
    """n noisy copies of a binary (N, D) matrix under selection ``mask`` (n, N) and sparse(p₊, p₋) noise.

    ``ones`` is the (2, E) list of the input's 1-bits sorted by row then column, ``bits`` the input as an (N, D)
    boolean tensor (for the lookup of which added positions were already 1).
    """
    n, nodes = mask.shape
    columns = bits.shape[1]
    device = mask.device
    # 1 → 0: among the 1-bits of selected rows, draw the rarer of "deleted" (p₋) and "kept" (1 − p₋) directly.
    exposed = mask[:, ones[0]].reshape(-1)
    exposed_index = torch.nonzero(exposed).squeeze(1)
    rare = bernoulli_positions(exposed_index.numel(), min(p_minus, 1 - p_minus), generator, device)
    deleted = exposed.clone()
    if p_minus <= 0.5:
        deleted.zero_()
        deleted[exposed_index[rare]] = True
    else:
        deleted[exposed_index[rare]] = False
    survivor = torch.nonzero(~deleted).squeeze(1)
    copy = torch.div(survivor, ones.shape[1], rounding_mode="floor")
    entry = survivor - copy * ones.shape[1]
    kept_rows = copy * nodes + ones[0].index_select(0, entry)
    kept_columns = ones[1].index_select(0, entry)
    # 0 → 1: the Bernoulli(p₊) process over the bits of the selected rows, dropping hits on 1-bits.
    selected_rows = torch.nonzero(mask.reshape(-1)).squeeze(1)
    positions = bernoulli_positions(selected_rows.numel() * columns, p_plus, generator, device)
    rank = torch.div(positions, columns, rounding_mode="floor")
    added_columns = positions - rank * columns
    shift = (selected_rows % nodes - torch.arange(selected_rows.numel(), device=device)) * columns
    was_zero = ~torch.take(bits, positions + shift.index_select(0, rank))
    added_rows = selected_rows.index_select(0, rank)
    return NoisyBits(n * nodes, columns, mask, kept_rows, kept_columns, added_rows[was_zero], added_columns[was_zero])

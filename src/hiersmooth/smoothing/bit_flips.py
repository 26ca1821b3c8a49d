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


def bernoulli_positions(length: int, p: float, generator=None, device=None, dtype=torch.long) -> torch.Tensor:
    """Sorted positions in [0, length) of the successes of ``length`` independent Bernoulli(p) trials."""
    if p <= 0 or length <= 0:
        return torch.empty(0, dtype=dtype, device=device)
    if p >= 1:
        return torch.arange(length, dtype=dtype, device=device)
    log_stay = math.log1p(-p)
    expected = p * length
    chunk = int(expected + 6 * math.sqrt(expected * (1 - p)) + 16)
    parts, last = [], -1
    while True:
        # U and 1 − U have the same law; clamping U = 0 (probability 2⁻⁵³) keeps log U finite.
        gaps = torch.rand(chunk, generator=generator, device=device, dtype=torch.float64).clamp_(min=_TINY)
        gaps.log_().div_(log_stay).floor_().add_(1)  # G = ⌊log U / log(1 − p)⌋ + 1, in place
        gaps[0] += last  # the line goes on after the last success so far
        # Exact below 2⁵³. Sorted, so the successes on the line are a prefix; whatever lies past its end (even an
        # infinite gap for p ≈ 1e-300) is cut off before the conversion to integers.
        positions = gaps.cumsum_(0)
        inside = int(torch.searchsorted(positions, float(length)))
        parts.append(positions[:inside].to(dtype))
        if inside < chunk:
            break
        last = int(parts[-1][-1])
        chunk = int(chunk / 4) + 16  # rarely needed: only when the first chunk fell short of the line
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _index_dtype(size: int) -> torch.dtype:
    """int32 for indices below 2³¹ (half the memory traffic of int64), int64 beyond."""
    return torch.int32 if size < 2**31 else torch.long


def _slots(first: torch.Tensor, before: torch.Tensor, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Destination of each entry of a row-sorted list: ``first[r]`` (its row's first slot) plus its rank within its
    row r = ``rows``, which is ``index`` (its place in the list) less ``before[r]`` (the list's entries in earlier
    rows)."""
    return (first - before).to(index.dtype).index_select(0, rows).add_(index)


@dataclass
class _Additions:
    """The successes of the 0 → 1 line in the selected rows, sorted by row then column.

    ``columns`` and ``rows`` (an index into the selected rows) place each success; ``fresh`` marks those on a 0-bit,
    the added bits (a success on a 1-bit is dropped); ``order`` counts the added bits before each success (one
    more entry: their total) and ``bounds`` are each row's first success (one more: their number).
    """

    columns: torch.Tensor
    rows: torch.Tensor
    fresh: torch.Tensor
    order: torch.Tensor
    bounds: torch.Tensor

    def per_row(self) -> torch.Tensor:
        """Added bits per selected row."""
        return torch.diff(self.order.index_select(0, self.bounds))

    def slots(self, first: torch.Tensor, spare: int) -> torch.Tensor:
        """Destination of each success: the k-th added bit of selected row r goes to ``first[r]`` + k, a dropped
        success to ``spare``."""
        before = self.order.index_select(0, self.bounds[:-1])
        return _slots(first, before, self.rows, self.order[:-1]).masked_fill_(~self.fresh, spare)


class BitFlips:
    """Noisy copies of one binary (N, D) matrix under sparse(p₊, p₋) noise; its 1-bits are indexed once.

    ``ones`` is the (2, E) list of the matrix's 1-bits sorted by row then column, ``bits`` the matrix as an (N, D)
    boolean tensor.
    """

    def __init__(self, ones: torch.Tensor, bits: torch.Tensor, p_plus: float, p_minus: float):
        self.nodes, self.columns = bits.shape
        self.p_plus, self.p_minus = p_plus, p_minus
        self.one_rows, self.one_columns = ones[0], ones[1].to(_index_dtype(self.columns + 1))
        self.zero_bits = (~bits).reshape(-1)  # lookup: was the bit at row·D + column a 0
        self.degrees = torch.bincount(self.one_rows, minlength=self.nodes)  # 1-bits per row
        self.row_starts = torch.cumsum(self.degrees, 0) - self.degrees  # index of each row's first 1-bit

    def draw(self, mask: torch.Tensor, indicator: bool, dtype=torch.float32, generator=None) -> torch.Tensor:
        """n noisy copies under selection ``mask`` (n, N) as one (n·N, D [+1]) sparse CSR tensor, the copies
        stacked as rows. Each row holds its kept 1-bits, then τ (the last column) when ``indicator`` is on, then
        its added bits; columns within a row are unsorted and never repeat (``torch.sparse.mm`` and ``to_dense``
        accept this). Indices are int32 when n·N·(D + 1) fits."""
        index = _index_dtype(mask.numel() * (self.columns + 1))  # bounds every position and slot below
        selected = torch.nonzero(mask.reshape(-1)).squeeze(1)  # the smoothed rows of the stack
        kept_columns, kept_per_row = self._kept(mask, selected, generator)
        added = self._added(selected, index, generator)
        lead = kept_per_row + mask.reshape(-1) if indicator else kept_per_row  # kept bits, then τ, open each row
        crow = torch.zeros(lead.numel() + 1, dtype=index, device=mask.device)
        torch.cumsum(lead.index_add(0, selected, added.per_row().long()), 0, dtype=index, out=crow[1:])
        start = crow[:-1]
        spare = int(crow[-1])  # one slot past the end takes the dropped successes
        columns = torch.empty(spare + 1, dtype=index, device=mask.device)
        kept_rows = torch.repeat_interleave(kept_per_row.to(index), output_size=kept_columns.numel())
        kept_before = torch.cumsum(kept_per_row, 0) - kept_per_row
        kept_index = torch.arange(kept_columns.numel(), dtype=index, device=mask.device)
        columns.scatter_(0, _slots(start, kept_before, kept_rows, kept_index).long(), kept_columns.to(index))
        if indicator:
            columns.index_fill_(0, (start + kept_per_row).index_select(0, selected), self.columns)
        columns.scatter_(0, added.slots((start + lead).index_select(0, selected), spare).long(), added.columns)
        values = torch.ones(spare, dtype=dtype, device=mask.device)
        return torch.sparse_csr_tensor(
            crow, columns[:spare], values, size=(lead.numel(), self.columns + indicator), check_invariants=False
        )

    def _kept(self, mask: torch.Tensor, selected: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """1 → 0: the columns of the surviving 1-bits of all copies (sorted by row) and how many each row keeps.

        Among the 1-bits of the ``selected`` rows, taken in order, the rarer of "deleted" (p₋) and "kept" (1 − p₋)
        is drawn directly.
        """
        n, ones = mask.shape[0], self.one_rows.numel()
        copies, nodes = torch.div(selected, self.nodes, rounding_mode="floor"), selected % self.nodes
        degrees = self.degrees.index_select(0, nodes)
        exposed = torch.cumsum(degrees, 0)  # the 1-bits of the selected rows, in order: row k ends at exposed[k]
        rare = bernoulli_positions(int(degrees.sum()), min(self.p_minus, 1 - self.p_minus), generator, mask.device)
        rare_per_row = torch.diff(
            torch.searchsorted(rare, exposed), prepend=torch.zeros(1, dtype=torch.long, device=mask.device)
        )
        # (copy, entry) of each rare 1-bit, flattened: row k's 1-bits start at copy·E + row_starts[node] there
        shift = copies * ones + self.row_starts.index_select(0, nodes) - (exposed - degrees)
        flipped = rare + torch.repeat_interleave(shift, rare_per_row, output_size=rare.numel())
        mostly_deleted = self.p_minus > 0.5  # the rare outcome is "kept"
        if mostly_deleted:
            keep = (~mask).index_select(1, self.one_rows)
            kept_per_row = self.degrees.repeat(n).index_add_(0, selected, rare_per_row - degrees)
        else:
            keep = torch.ones(n, ones, dtype=torch.bool, device=mask.device)
            kept_per_row = self.degrees.repeat(n).index_add_(0, selected, -rare_per_row)
        keep.view(-1).index_fill_(0, flipped, mostly_deleted)
        return torch.masked_select(self.one_columns, keep), kept_per_row

    def _added(self, selected: torch.Tensor, index: torch.dtype, generator) -> _Additions:
        """0 → 1: the Bernoulli(p₊) line over the bits of the ``selected`` rows (row k holds positions
        [k·D, (k + 1)·D))."""
        line_starts = torch.arange(selected.numel() + 1, dtype=index, device=selected.device) * self.columns
        positions = bernoulli_positions(selected.numel() * self.columns, self.p_plus, generator, selected.device, index)
        bounds = torch.searchsorted(positions, line_starts, out_int32=index == torch.int32)
        rows = torch.repeat_interleave(torch.diff(bounds), output_size=positions.numel())
        columns = positions - line_starts.index_select(0, rows)
        shift = (selected % self.nodes).to(index) * self.columns  # where row k's bits start in ``zero_bits``
        fresh = self.zero_bits.index_select(0, columns + shift.index_select(0, rows))
        order = torch.zeros(positions.numel() + 1, dtype=index, device=selected.device)
        torch.cumsum(fresh, 0, dtype=index, out=order[1:])
        return _Additions(columns, rows, fresh, order, bounds)

"""Sparse bit-flip sampling for binary rows: the cost grows with the number of flips, not with N·D (SPEC.md §2.2).

Within the selected rows every 0-bit turns 1 with probability p₊ and every 1-bit turns 0 with probability p₋,
independently. Drawing one Bernoulli per bit would cost N·D uniforms per sample (8 million for Cora-ML); here

- deletions are a Bernoulli process on the line of the 1-bits of the selected rows (the input is sparse);
- additions are a Bernoulli(p₊) process on the line of the 0-bits of the selected rows (row after row, columns
  ascending), drawn by its geometric gaps: the gaps between successive successes of independent Bernoulli(p)
  trials are i.i.d. Geometric(p), G = ⌊log U / log(1 − p)⌋ + 1 with U uniform on (0, 1]. Their partial sums are
  the success positions, sorted and distinct, and each is one 0-bit that turns 1 (a 1-bit is governed by p₋ alone).

U is the 53-bit uniform k·2⁻⁵³, k = 1 … 2⁵³, built from integer random bits: its top 15 bits are one chunk of
``random_bits.random_chunks`` (a quarter of a 63-bit random word), and for all but a few of the 2¹⁵ values of
those bits G is already decided by them (G is monotone in U and takes the same value at both ends of the interval
they leave), so G is read from a table.
Only where a threshold (1 − p)^k falls inside the interval are the remaining 38 bits of U drawn and G computed
from the full U. The law of G is thus that of the float64 inversion of a 53-bit uniform, to the last bit of the
logarithm — the same as drawing U in float64 and taking its logarithm, at a fraction of the random bits and with
no logarithm for almost every gap (since stream version 3; see ``hiersmooth.seeds``).

The result is exact (the same distribution as one Bernoulli per bit) and costs O(ones + p₊·N_selected·D). This
torch construction is what a GPU runs; on a CPU the compiled pass of ``fused_flips`` draws the same law with each
column written once (``FUSED_ON_CPU``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .random_bits import LOW_BITS, gap_table, gaps_from_uniform, random_chunks
from .sampler import concat_samples

FUSED_ON_CPU = True  # draw on a CPU by the compiled pass of ``fused_flips`` (off: the torch construction, as on a GPU)


def _largest_gap(p: float) -> float:
    """G at the least U, 2⁻⁵³, plus one for rounding: no gap drawn is larger."""
    return math.floor(math.log(2.0**-53) / math.log1p(-p)) + 2


def _nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the true entries of a 1-D bool tensor, ascending (NumPy's scan on a CPU: several times faster)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


def _compress(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The ``values`` (E,) where ``keep`` (n, E) is true, row after row: ``masked_select`` (NumPy's boolean indexing
    one row at a time on a CPU, where ``masked_select`` of a broadcast operand is several times slower)."""
    if keep.device.type != "cpu":
        return torch.masked_select(values, keep)
    array = values.numpy()
    return torch.from_numpy(np.concatenate([array[row] for row in keep.numpy()]))


def geometric_gaps(count: int, p: float, generator=None, device=None, dtype=torch.float64) -> torch.Tensor:
    """``count`` i.i.d. Geometric(p) gaps (support 1, 2, …): G = ⌊log U / log(1 − p)⌋ + 1, U the 53-bit uniform
    on (0, 1] — read from :func:`gap_table` by U's top 15 bits, computed from all 53 where the table leaves G
    undecided. float64, or int32 (``dtype``) where p leaves every gap below 2³¹."""
    chunks = random_chunks(count, generator, device).to(torch.int32)
    gaps = gap_table(p, device, dtype).index_select(0, chunks)
    undecided = _nonzero(gaps == 0)
    if undecided.numel():
        low = torch.empty(undecided.numel(), dtype=torch.int64, device=device).random_(generator=generator)
        low.bitwise_right_shift_(63 - LOW_BITS)  # 38 uniform bits (random_ gives 63)
        u = (chunks.index_select(0, undecided).double() * 2.0**LOW_BITS + low.double() + 1) * 2.0**-53  # exact
        gaps.index_copy_(0, undecided, gaps_from_uniform(u, p).to(dtype))
    return gaps


def bernoulli_positions(length: int, p: float, generator=None, device=None, dtype=torch.long) -> torch.Tensor:
    """Sorted positions in [0, length) of the successes of ``length`` independent Bernoulli(p) trials: the partial
    sums of i.i.d. Geometric(p) gaps (:func:`geometric_gaps`)."""
    if p <= 0 or length <= 0:
        return torch.empty(0, dtype=dtype, device=device)
    if p >= 1:
        return torch.arange(length, dtype=dtype, device=device)
    expected = p * length
    chunk = int(expected + 6 * math.sqrt(expected * (1 - p)) + 16)
    parts, last = [], -1
    while True:
        # int32 arithmetic where no partial sum of the chunk can reach 2³¹ (the usual case), else float64 (exact
        # below 2⁵³; whatever lies past the line's end, even an infinite gap for p ≈ 1e-300, is cut off below)
        narrow = last + 1 + chunk * _largest_gap(p) < 2**31 - 1
        gaps = geometric_gaps(chunk, p, generator, device, torch.int32 if narrow else torch.float64)
        gaps[0] += last  # the line goes on after the last success so far
        positions = gaps.cumsum_(0)  # sorted, so the successes on the line are a prefix
        end = torch.tensor(min(length, 2**31 - 1) if narrow else length, dtype=positions.dtype, device=device)
        inside = int(torch.searchsorted(positions, end))
        parts.append(positions[:inside].to(dtype))
        if inside < chunk:
            break
        last = int(parts[-1][-1])
        chunk = int(chunk / 4) + 16  # rarely needed: only when the first chunk fell short of the line
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _repeat(values: torch.Tensor, counts: torch.Tensor, total: int) -> torch.Tensor:
    """``values[k]`` repeated ``counts[k]`` times, in order (``total`` = counts.sum()): NumPy's ``repeat`` on a CPU,
    one pass where ``repeat_interleave`` takes two (an index, then a gather) and several times longer."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.repeat(values.numpy(), counts.numpy()))
    return torch.repeat_interleave(values, counts, output_size=total)


def _index_dtype(size: int) -> torch.dtype:
    """int32 for indices below 2³¹ (half the memory traffic of int64), int64 beyond."""
    return torch.int32 if size < 2**31 else torch.long


def _row_slots(first: torch.Tensor, counts: torch.Tensor, total: int) -> torch.Tensor:
    """Destinations (int64, for ``scatter_``) of the ``total`` entries of a list sorted by row, ``counts[k]`` of them
    in row k: entry j of row k goes to ``first[k]`` + j."""
    before = torch.cumsum(counts, 0) - counts  # the list's entries in earlier rows
    slots = _repeat(first.long() - before, counts, total)
    return slots.add_(torch.arange(total, device=slots.device))


class BitFlips:
    """Noisy copies of one binary (N, D) matrix under sparse(p₊, p₋) noise; its 1-bits and 0-bits are indexed once.

    ``ones`` is the (2, E) list of the matrix's 1-bits sorted by row then column, ``bits`` the matrix as an (N, D)
    boolean tensor. The 0-bits are kept as their columns, row after row (``zero_columns``): the 0 → 1 line of the
    selected rows is drawn over them only, so every success is an added bit (none lands on a 1-bit and is dropped).
    """

    def __init__(self, ones: torch.Tensor, bits: torch.Tensor, p_plus: float, p_minus: float):
        self.nodes, self.columns = bits.shape
        self.p_plus, self.p_minus = p_plus, p_minus
        self.one_rows, self.one_columns = ones[0], ones[1].to(_index_dtype(self.columns + 1))
        self.degrees = torch.bincount(self.one_rows, minlength=self.nodes)  # 1-bits per row
        self.row_starts = torch.cumsum(self.degrees, 0) - self.degrees  # index of each row's first 1-bit
        self.zero_counts = self.columns - self.degrees  # 0-bits per row
        self.zero_starts = torch.cumsum(self.zero_counts, 0) - self.zero_counts  # index of each row's first 0-bit
        self._bits = bits
        self._range = None  # see _arange
        self._fused = None
        if bits.device.type == "cpu":
            from .fused_flips import FusedFlips

            self._fused = FusedFlips(self.degrees, self.row_starts, self.one_columns, bits, p_plus, p_minus)

    @functools.cached_property
    def zero_columns(self) -> torch.Tensor:
        """The columns of the 0-bits, row after row (int16 while D < 2¹⁵: half the memory): the torch construction's
        map from the 0 → 1 line to columns (16 MB for Cora-ML), built on first use — a CPU's compiled pass needs
        none."""
        narrow = torch.int16 if self.columns < 2**15 else _index_dtype(self.columns + 1)
        bits = self._bits
        if bits.device.type == "cpu":  # NumPy's boolean indexing: several times faster than masked_select here
            every_column = np.tile(
                np.arange(self.columns, dtype=torch.empty(0, dtype=narrow).numpy().dtype), self.nodes
            )
            return torch.from_numpy(every_column[~bits.numpy().reshape(-1)])
        every_column = torch.arange(self.columns, dtype=narrow, device=bits.device).repeat(self.nodes)
        return torch.masked_select(every_column, ~bits.reshape(-1))

    def draw(self, mask: torch.Tensor, indicator: bool, dtype=torch.float32, generator=None) -> torch.Tensor:
        """n noisy copies under selection ``mask`` (n, N) as one (n·N, D [+1]) sparse CSR tensor, the copies
        stacked as rows. Each row holds its kept 1-bits, then τ (the last column) when ``indicator`` is on, then
        its added bits; columns within a row are unsorted and never repeat (``torch.sparse.mm`` and ``to_dense``
        accept this). Indices are int32 when n·N·(D + 1) fits. This is the torch construction, which a GPU runs;
        :meth:`draw_blocks` chooses between it and a CPU's compiled pass."""
        index = _index_dtype(mask.numel() * (self.columns + 1))  # bounds every position and slot below
        flat = mask.reshape(-1)
        selected = _nonzero(flat).to(mask.device)  # the smoothed rows of the stack
        kept_columns, kept_per_row = self._kept(mask, selected, generator)
        # 0 → 1, one copy at a time (the lines of the copies are independent; each copy's arrays stay in cache)
        bounds = torch.searchsorted(selected, torch.arange(mask.shape[0] + 1, device=mask.device) * self.nodes).tolist()
        added = [self._added(selected[bounds[c] : bounds[c + 1]], generator) for c in range(mask.shape[0])]
        added_per_row = torch.cat([per_row for _, per_row, _ in added])
        lead = kept_per_row + flat if indicator else kept_per_row  # kept bits, then τ, open each row
        crow = torch.zeros(lead.numel() + 1, dtype=index, device=mask.device)
        torch.cumsum(lead.index_add(0, selected, added_per_row), 0, dtype=index, out=crow[1:])
        start = crow[:-1]
        columns = torch.empty(int(crow[-1]), dtype=index, device=mask.device)
        columns.scatter_(0, _row_slots(start, kept_per_row, kept_columns.numel()), kept_columns.to(index))
        if indicator:
            columns.index_fill_(0, (start + kept_per_row).index_select(0, selected), self.columns)
        # the added bits: the k-th success of selected row r is the 0-bit at zero_columns[success + shift[r]] and
        # goes to slot first[r] + k, with first[r] its row's first slot after the kept bits and τ
        first_slots = (start + lead).index_select(0, selected)
        for c, (successes, per_row, to_zero_columns) in enumerate(added):
            total = successes.numel()
            entries = _repeat(to_zero_columns, per_row, total).add_(successes)
            added_columns = self.zero_columns.index_select(0, entries).to(index)
            first = first_slots[bounds[c] : bounds[c + 1]].long() - (torch.cumsum(per_row, 0) - per_row)
            columns.scatter_(0, _repeat(first, per_row, total).add_(self._arange(total, mask.device)), added_columns)
        values = torch.ones(columns.numel(), dtype=dtype, device=mask.device)
        return torch.sparse_csr_tensor(
            crow, columns, values, size=(lead.numel(), self.columns + indicator), check_invariants=False
        )

    def draw_blocks(self, masks: list, indicator: bool, dtype, generators: list) -> torch.Tensor:
        """Several blocks at once, block k's ``masks[k]`` drawn from ``generators[k]``, stacked as one CSR tensor:
        on a CPU written at once by the compiled pass of ``fused_flips`` (unless ``FUSED_ON_CPU`` is off), elsewhere
        the blocks' :meth:`draw` joined."""
        if self._fused is not None and FUSED_ON_CPU:
            return self._fused.draw_blocks(masks, indicator, dtype, generators)
        return concat_samples([self.draw(mask, indicator, dtype, g) for mask, g in zip(masks, generators)])

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
        flipped = rare + _repeat(shift, rare_per_row, rare.numel())
        mostly_deleted = self.p_minus > 0.5  # the rare outcome is "kept"
        if mostly_deleted:
            keep = (~mask).index_select(1, self.one_rows)
            kept_per_row = self.degrees.repeat(n).index_add_(0, selected, rare_per_row - degrees)
        else:
            keep = torch.ones(n, ones, dtype=torch.bool, device=mask.device)
            kept_per_row = self.degrees.repeat(n).index_add_(0, selected, -rare_per_row)
        keep.view(-1).index_fill_(0, flipped, mostly_deleted)
        return _compress(self.one_columns, keep), kept_per_row

    def _added(self, selected: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """0 → 1 on the ``selected`` rows: the successes (sorted), how many fall in each row, and per row the shift
        from a success to its entry of ``zero_columns``.

        The 0-bits of the selected rows, row after row, form one line; its Bernoulli(p₊) successes are the added
        bits. Row k's 0-bits are the ``counts[k]`` entries of ``zero_columns`` from ``zero_starts[node]`` on.
        """
        nodes = selected % self.nodes
        counts = self.zero_counts.index_select(0, nodes)
        ends = torch.cumsum(counts, 0)  # row k's 0-bits lie at [ends[k] − counts[k], ends[k]) of the line
        line = int(ends[-1]) if ends.numel() else 0
        position = _index_dtype(max(line, self.zero_columns.numel()))
        successes = bernoulli_positions(line, self.p_plus, generator, selected.device, position)
        bounds = torch.searchsorted(successes, ends.to(position), out_int32=position == torch.int32)
        per_row = torch.diff(bounds.long(), prepend=torch.zeros(1, dtype=torch.long, device=selected.device))
        shift = (self.zero_starts.index_select(0, nodes) - (ends - counts)).to(position)  # line → zero_columns
        return successes, per_row, shift

    def _arange(self, size: int, device) -> torch.Tensor:
        """0, 1, …, size − 1 (int64), a slice of one cached range grown as needed (read only)."""
        cached = self._range
        if cached is None or cached.numel() < size or cached.device != torch.device(device):
            cached = self._range = torch.arange(max(size, 2 * (0 if cached is None else cached.numel())), device=device)
        return cached[:size]

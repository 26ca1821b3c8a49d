"""Sparse bit flips on a CPU in one compiled pass (numba): the same law as ``bit_flips``, each column written once.

The torch construction of ``BitFlips.draw`` makes about a dozen vectorised passes over the ~330,000 added bits of
a Cora-ML sample (gaps, partial sums, rows, the 0-bit's column, CSR slots) and reads a 16 MB table of 0-bit
columns; on a CPU that costs more than a GCN's forward pass. Here one loop over the rows of the stack builds the
CSR rows in order, for every selected row (SPEC.md §2.2):

- 1 → 0: the rarer outcome of "deleted" (p₋) and "kept" (1 − p₋) is a Bernoulli process on the row's 1-bits,
  drawn by its geometric gaps from the row's first 1-bit on;
- 0 → 1: a Bernoulli(p₊) process on all D cells of the row, drawn by its geometric gaps from column 0 on; a success
  on a 1-bit is dropped (a 1-bit is governed by p₋ alone), every other success is an added bit at that column —
  so each 0-bit turns 1 with probability p₊, independently, and no table of 0-bit columns is needed (a bitmap of
  the 1-bits, N·D/8 bytes, answers "is this cell a 1-bit").

A row's processes start afresh at the row (the gap that overshoots its end is discarded), which keeps each row's
trials exact and independent. A gap G = ⌊log U / log(1 − p)⌋ + 1 is read as in ``bit_flips``: U's top 15 bits are
one chunk that decides G through the gap table for all but a few chunks, where the remaining 38 bits of U come
from a second stream of 38-bit words and G is computed from the full U. Both streams come from NumPy's SFC64
seeded by the block's generator (:func:`_streams`: half the cost of ``random_`` words). The kernel reads them in
order; should either run out (or the output fill its room) it stops and is run again on longer streams — drawn
after the first from the same generator, so the sample depends on the generator alone. Each sample thus costs
one read of a chunk and of the table per success (stream version 4, ``hiersmooth.seeds``). Positions in the
streams and the output are unsigned integers, so that numba indexes them without a check for negative indices.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from .random_bits import CHUNK_BITS, LOW_BITS, chunks_of, gap_table

INT32_INDICES_BELOW = 2**31  # CSR indices are int32 while every position of the stack is below this, else int64
_OK, _OUT_OF_RANDOM, _OUT_OF_ROOM = 0, 1, 2
_NO_GAP = np.zeros(2**CHUNK_BITS, dtype=np.int32)  # the table for p = 0 or 1 (never read)


@numba.njit(cache=True, inline="always")
def _gap_of_uniform(chunk, low, log_q):
    """G = ⌊log U / log(1 − p)⌋ + 1 of the full 53-bit U whose top 15 bits are ``chunk`` and last 38 ``low``: the
    gap where the table leaves it undecided."""
    u = (chunk * 2.0**LOW_BITS + low + 1) * 2.0**-53  # exact: 53 bits
    return np.int64(min(math.floor(math.log(u) / log_q) + 1.0, 4.0e18))


@numba.njit(cache=True, nogil=True)  # no Python objects inside: two workers draw at once
def _draw_rows(
    selected,
    nodes,
    degrees,
    row_starts,
    one_columns,
    bitmap,
    width,
    indicator,
    plus_table,
    log_plus,
    p_plus,
    rare_table,
    log_rare,
    p_rare,
    mostly_deleted,
    chunks,
    lows,
    block_rows,
    chunk_bounds,
    low_bounds,
    crow,
    columns,
):
    """Fill ``crow`` and ``columns`` (CSR) for the rows of the stack; returns (status, block): the block whose
    streams ran out, or whose rows were being drawn when the room ran out. Block b holds the rows from
    ``block_rows[b]`` on and reads ``chunks`` and ``lows`` between its ``chunk_bounds`` and ``low_bounds``.

    A gap reads the next chunk and its entry of the table, and the next 38-bit word of ``lows`` only where the
    table leaves it undecided (:func:`_gap_of_uniform`). Both loops spell this out: an inlined helper that takes
    the table and the stream of rests made the draw six times slower (5.4 against 0.83 ms per Cora-ML sample)."""
    # positions in the streams and the output are unsigned: numba then indexes without a check for negative
    # indices, which halves the time of the 0 → 1 loop (a signed operand would turn them into floats: all uint64)
    one, three, seven = np.uint64(1), np.uint64(3), np.uint64(7)
    cells = np.uint64(width)
    out, room, block = np.uint64(0), np.uint64(columns.shape[0]), -1
    at = low_at = chunk_end = low_end = np.uint64(0)
    crow[0] = 0
    for row in range(selected.shape[0]):
        if row == block_rows[block + 1]:  # the next block: its own streams
            block += 1
            at, chunk_end = np.uint64(chunk_bounds[block]), np.uint64(chunk_bounds[block + 1])
            low_at, low_end = np.uint64(low_bounds[block]), np.uint64(low_bounds[block + 1])
        node = row % nodes
        degree, start = degrees[node], row_starts[node]
        if out + np.uint64(degree + 1) > room:
            return _OUT_OF_ROOM, block
        if not selected[row]:
            for i in range(degree):
                columns[out] = one_columns[start + i]
                out += one
            crow[row + 1] = out
            continue
        # 1 → 0: the rare outcome's positions among the row's 1-bits, in order; a 1-bit is kept where it is the rare
        # "kept" (p₋ > 1/2), or where it is not the rare "deleted"
        done, position = 0, -1  # the row's 1-bits before ``done`` are written or dropped
        while p_rare > 0.0:
            if at >= chunk_end or low_at >= low_end:
                return _OUT_OF_RANDOM, block
            chunk = chunks[at]
            gap = np.int64(rare_table[chunk])
            at += one
            if gap == 0:
                gap = _gap_of_uniform(chunk, lows[low_at], log_rare)
                low_at += one
            position += gap
            if not mostly_deleted:  # the 1-bits up to the next deletion are kept
                for i in range(done, min(position, degree)):
                    columns[out] = one_columns[start + i]
                    out += one
            if position >= degree:
                break
            if mostly_deleted:  # a rare "kept"
                columns[out] = one_columns[start + position]
                out += one
            done = position + 1
        if p_rare == 0.0 and not mostly_deleted:  # p₋ = 0: every 1-bit kept (p₋ = 1, as sparse ablation draws: none)
            for i in range(degree):
                columns[out] = one_columns[start + i]
                out += one
        if indicator:
            columns[out] = width
            out += one
        if p_plus >= 1.0:  # every 0-bit turns 1
            if out + np.uint64(width - degree) > room:
                return _OUT_OF_ROOM, block
            for column in range(width):
                if not (bitmap[node, column >> 3] >> (column & 7)) & 1:
                    columns[out] = column
                    out += one
        elif p_plus > 0.0:  # 0 → 1: a Bernoulli(p₊) process on the row's cells, successes on 1-bits dropped
            if chunk_end - at <= cells or low_end - low_at <= cells or room - out < cells:
                return _OUT_OF_RANDOM if room - out >= cells else _OUT_OF_ROOM, block
            bits = bitmap[node]
            column = -1  # at most ``width`` + 1 gaps and ``width`` columns ahead: no checks inside
            while True:
                chunk = chunks[at]
                gap = np.int64(plus_table[chunk])
                at += one
                if gap == 0:
                    gap = _gap_of_uniform(chunk, lows[low_at], log_plus)
                    low_at += one
                column += gap
                if column >= width:
                    break
                cell = np.uint64(column)
                if (bits[cell >> three] >> (cell & seven)) & 1:
                    continue
                columns[out] = column
                out += one
        crow[row + 1] = out
    return _OK, block


class FusedFlips:
    """The compiled draw of one binary (N, D) matrix on a CPU: its 1-bits as CSR rows and as a bitmap."""

    def __init__(
        self, degrees: torch.Tensor, row_starts: torch.Tensor, one_columns: torch.Tensor, bits, p_plus, p_minus
    ):
        self.degrees, self.row_starts = degrees.numpy(), row_starts.numpy()
        self.one_columns = one_columns.numpy().astype(np.int32)
        self.nodes, self.width = bits.shape
        self.bitmap = np.packbits(bits.numpy(), axis=1, bitorder="little")  # bit c & 7 of byte c >> 3: column c
        self.p_plus, self.p_rare = p_plus, min(p_minus, 1 - p_minus)
        self.mostly_deleted = p_minus > 0.5  # the rare outcome is "kept"
        self.plus_gaps, self.rare_gaps = _table(self.p_plus), _table(self.p_rare)

    def draw_blocks(self, masks: list, indicator: bool, dtype, generators: list) -> torch.Tensor:
        """The noisy copies of several blocks, block k's ``masks[k]`` (n_k, N) drawn from ``generators[k]``, as one
        (Σ n_k·N, D [+1]) sparse CSR tensor: the blocks' ``BitFlips.draw`` one after the other, written at once."""
        selected = [mask.reshape(-1).contiguous().numpy() for mask in masks]
        sizes = [self._sizes(rows) for rows in selected]
        streams = [_streams(chunk_count, low_count, g) for (chunk_count, low_count, _), g in zip(sizes, generators)]
        chunks, lows = [part for part, _ in streams], [part for _, part in streams]
        every = _joined(selected)
        index = np.int32 if every.size * (self.width + 1) < INT32_INDICES_BELOW else np.int64
        block_rows = np.cumsum([0] + [len(rows) for rows in selected] + [0])  # a sentinel past the last row
        room = sum(space for *_, space in sizes)
        while True:
            crow = np.empty(every.size + 1, dtype=index)
            columns = np.empty(room, dtype=index)
            status, block = _draw_rows(
                every,
                self.nodes,
                self.degrees,
                self.row_starts,
                self.one_columns,
                self.bitmap,
                self.width,
                indicator,
                *self.plus_gaps,
                self.p_plus,
                *self.rare_gaps,
                self.p_rare,
                self.mostly_deleted,
                _joined(chunks),
                _joined(lows),
                block_rows,
                np.cumsum([0] + [len(part) for part in chunks]),
                np.cumsum([0] + [len(part) for part in lows]),
                crow,
                columns,
            )
            if status == _OK:
                break
            if status == _OUT_OF_ROOM:
                room *= 2
            else:  # that block's streams twice as long, the second half drawn after the first from its generator
                more_chunks, more_lows = _streams(len(chunks[block]), len(lows[block]), generators[block])
                chunks[block] = np.concatenate([chunks[block], more_chunks])
                lows[block] = np.concatenate([lows[block], more_lows])
        total = int(crow[-1])
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow),
            torch.from_numpy(columns[:total]),
            torch.ones(total, dtype=dtype),
            size=(every.size, self.width + indicator),
            check_invariants=False,
        )

    def _sizes(self, selected: np.ndarray) -> tuple[int, int, int]:
        """Chunks, 38-bit words and room for columns to start with, 8 standard deviations above what the rows of
        ``selected`` need on average — a chunk per success, p₊ of the selected rows' cells and p_rare of their
        1-bits, and per gap overshooting the end of each of a row's two processes; a word per 64 chunks (undecided
        gaps are rarer); every 1-bit, τ and the added bits — plus D + 1 of each, which a row's 0 → 1 loop may use
        without a check."""
        chosen = self.degrees[np.flatnonzero(selected) % self.nodes]
        rows, ones = len(chosen), int(chosen.sum())
        expected = self.p_plus * rows * self.width + self.p_rare * ones + 2 * rows
        added = self.p_plus * (rows * self.width - ones)
        every_one = int(self.degrees.sum()) * (selected.size // self.nodes)
        chunks = int(expected * 1.01 + 8 * math.sqrt(expected) + 64)
        room = int(every_one + rows + added * 1.01 + 8 * math.sqrt(added) + 64)
        return chunks + self.width + 1, chunks // 64 + self.width + 1, room + self.width + 1


def _table(p: float) -> tuple[np.ndarray, float]:
    """(the gap table of p as integers — int32 where every gap fits, int64 with gaps capped at 2⁶² otherwise —,
    log(1 − p)) for the kernel; p = 0 or 1 is never read."""
    if not 0 < p < 1:
        return _NO_GAP, -math.inf
    table = gap_table(p).numpy()
    narrow = table.max() < 2**31
    return (table.astype(np.int32) if narrow else np.minimum(table, 2.0**62).astype(np.int64)), math.log1p(-p)


def _joined(parts: list) -> np.ndarray:
    """The arrays one after the other: the one itself when there is one (a pass of one block, as on graphs at the
    default batch size: no copy of its 2.8 MB of chunks)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _streams(chunk_count: int, low_count: int, generator) -> tuple[np.ndarray, np.ndarray]:
    """A block's random streams: ``chunk_count`` chunks (uint16), then ``low_count`` 38-bit words (uint64), from
    NumPy's SFC64 seeded by the next 63-bit word of ``generator`` (through ``SeedSequence``). SFC64 gives a 64-bit
    word in about 1.3 ns on a CPU, ``random_`` of a ``torch.Generator`` in about 2.6 ns; a chunk is the low 15 bits
    of a 16-bit quarter of a word, a 38-bit word the top 38 bits of one."""
    seed = int(torch.empty(1, dtype=torch.int64).random_(generator=generator))
    bits = np.random.SFC64(seed)
    chunks = chunks_of(bits.random_raw(-(-chunk_count // 4)), chunk_count).view(np.uint16)
    return chunks, bits.random_raw(low_count) >> np.uint64(64 - LOW_BITS)

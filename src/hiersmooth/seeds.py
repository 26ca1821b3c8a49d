"""The seed plan: Monte-Carlo samples come in fixed-size blocks, each with its own random stream.

Block b of stage s for point i is drawn from a ``torch.Generator`` seeded by NumPy's ``SeedSequence`` of
(seed, i, s, b). A block is always drawn whole by one call, so the samples — and with them the votes — do not
depend on the batch size, on how blocks are grouped into forward passes, or on which process draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import check_integer

STAGES = {"selection": 0, "estimation": 1, "prediction": 2}
"""n₀ samples that pick class A, n samples that bound its probability, and ``predict``'s samples."""
STREAM_VERSION = 4
"""How a block's generator is turned into samples (``hiersmooth.smoothing``): changes whenever the same generator
state would give other samples. 1: float64 uniforms and logarithms for the sparse gaps, (n, N, C) noise for images;
2: geometric gaps from 15-bit integer chunks and a table (``bit_flips.gap_table``), 0 → 1 flips on the line of
0-bits only, one copy at a time, image noise drawn channel-major (NCHW) as the samples are laid out; 3: 15-bit
chunks as quarters of 63-bit words, Bernoulli selection exact from chunks (``random_bits.bernoulli_trials``, was
a float64 uniform < p), gaussian samples x + σ·(ε·τ) (was x + σ·ε where τ = 1), sparse flips on a CPU by the
compiled pass of ``smoothing.fused_flips`` (each row's two processes afresh, 0 → 1 over all its cells; the rest of
an undecided gap's U from a second stream); 4: the compiled pass's two streams from NumPy's SFC64 seeded by one
word of the block's generator (were ``random_`` words of the generator itself)."""


@dataclass(frozen=True)
class SeedPlan:
    """``seed`` and ``block_size``: everything that fixes the random streams of a run (recorded in its outputs)."""

    seed: int = 0
    block_size: int = 100

    def __post_init__(self):
        check_integer("seed", self.seed, 0)
        check_integer("block_size", self.block_size, 1)

    def blocks(self, n: int) -> list[int]:
        """Sizes of the blocks of n samples: full blocks, then the remainder."""
        return [min(self.block_size, n - start) for start in range(0, n, self.block_size)]

    def share(self, n: int, rank: int = 0, world_size: int = 1) -> list[int]:
        """Indices of the blocks of n samples that process ``rank`` of ``world_size`` draws: b mod world_size = rank."""
        return list(range(rank, len(self.blocks(n)), world_size))

    def generator(self, point: int, stage: str, block: int, device="cpu"):
        """The generator of block ``block`` of ``stage`` for point ``point``."""
        return seeded_generator(self.block_seeds(point, stage, [block])[0], device)

    def block_seeds(self, point: int, stage: str, blocks) -> list[int]:
        """The seeds of the generators of ``blocks`` of ``stage`` for point ``point``: the first 64-bit word of
        ``SeedSequence([seed, point, stage, block])``'s state, cut to 63 bits. Computed for many blocks before
        their draws, the SeedSequences run back to back (7 µs each), not each among a forward pass's work, where
        one cost a digits pass 30–40 µs (benchmarks/smoothing_overhead.py --floor)."""
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r}: must be one of {', '.join(STAGES)}")
        if type(point) is not int or point < 0:  # (the common case checked without a call)
            point = check_integer("point", point, 0)
        entropy = [self.seed, point, STAGES[stage]]
        return [
            int(np.random.SeedSequence([*entropy, block]).generate_state(1, np.uint64)[0]) & (2**63 - 1)
            for block in blocks
        ]

    def to_record(self) -> dict:
        return {
            "seed": self.seed,
            "block_size": self.block_size,
            "streams": "torch.Generator per block, seeded by numpy SeedSequence([seed, point, stage, block])",
            "stages": STAGES,
            "stream_version": STREAM_VERSION,
        }


def seeded_generator(seed: int, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with one of :meth:`SeedPlan.block_seeds`."""
    import torch

    return torch.Generator(device=device).manual_seed(seed)

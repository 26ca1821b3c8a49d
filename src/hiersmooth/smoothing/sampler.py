"""Drawing from Ψ_x (SPEC.md §2): select rows, noise the selected ones, append the indicator τ.

An input is one of
- an image, a dense (C, H, W) tensor: entities are the H·W pixels, a selected pixel gets noise on all C
  channels; samples are (n, C' [+1], H, W) with τ as the last channel (C' = C, or 2C for the Levine–Feizi
  encoding). They are contiguous NCHW tensors, so a model may ``view`` or ``reshape`` them freely;
- a feature matrix, a dense (N, D) tensor: entities are rows; samples are (n, N, D' [+1]) with τ as the last
  column;
- a sparse (N, D) binary feature matrix (``torch.sparse_coo`` or ``torch.sparse_csr``): samples are one
  (n·N, D' [+1]) sparse CSR matrix, the n noisy copies stacked as one disjoint union of graphs.
"""

from __future__ import annotations

import torch

_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr)


class Sampler:
    """Draws samples of one input; the input is checked and indexed once, then every ``draw`` reuses it."""

    def __init__(self, smoothing, x):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x: must be a torch.Tensor, got {type(x).__name__}")
        self.smoothing = smoothing
        self.sparse = x.layout in _SPARSE_LAYOUTS
        self.image_shape = None
        if self.sparse:
            if x.dim() != 2:
                raise ValueError(f"x: a sparse input must be an (N, D) feature matrix, got shape {tuple(x.shape)}")
            rows = x
        elif x.dim() == 3:
            channels, height, width = x.shape
            self.image_shape = (height, width)
            rows = x.permute(1, 2, 0).reshape(height * width, channels)
        elif x.dim() == 2:
            rows = x
        else:
            raise ValueError(f"x: must be an image (C, H, W) or a feature matrix (N, D), got shape {tuple(x.shape)}")
        if rows.shape[0] == 0 or rows.shape[1] == 0:
            raise ValueError(f"x: has shape {tuple(x.shape)}; it needs at least one entity and one value")
        self.entities, self.values = rows.shape
        self.device = x.device
        self.itemsize = (
            x.dtype.itemsize if torch.is_floating_point(x) else 4
        )  # samples are float32 unless x is floating
        self._ones = x._nnz() if self.sparse else None
        self._draw = smoothing.noise.prepare(rows, self.sparse)

    def draw(self, n: int, generator: torch.Generator | None = None, token: torch.Tensor | None = None) -> torch.Tensor:
        """n samples of Ψ_x; ``token`` (a tensor with one value per row entry) overrides the ablation token."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r}: the number of samples must be an integer >= 1")
        mask = self.smoothing.selection.sample_mask(n, self.entities, generator, self.device)
        samples = self._draw(mask, self.smoothing.indicator, generator, token)
        if self.image_shape is not None:
            # contiguous NCHW, the layout a model may ``view``: one copy, small next to the forward pass
            samples = samples.view(n, *self.image_shape, samples.shape[-1]).permute(0, 3, 1, 2).contiguous()
        return samples

    def bytes_per_sample(self) -> int:
        """Memory of one sample: exact for dense samples, the expected size (with 25 % margin) for sparse ones."""
        noise = self.smoothing.noise
        width = noise.sample_width(self.values) + self.smoothing.indicator
        if not self.sparse:
            return self.entities * width * self.itemsize
        added = noise.flips_per_value * self.entities * self.values
        return int(1.25 * (self._ones + added + self.entities) * (8 + self.itemsize) + self.entities * 8)

    def batches(self, n: int, generator: torch.Generator | None = None, memory: int = 256 * 2**20, token=None):
        """Yield n samples in batches of at most ``memory`` bytes each (at least one sample per batch)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r}: the number of samples must be an integer >= 1")
        if not isinstance(memory, int) or memory < 1:
            raise ValueError(f"memory={memory!r}: must be a number of bytes >= 1")
        size = max(1, memory // self.bytes_per_sample())
        for start in range(0, n, size):
            yield self.draw(min(size, n - start), generator, token)

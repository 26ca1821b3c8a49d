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

from ..checks import check_integer

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
            # the pixels as rows, kept value-major (a view of x as (C, H·W)): the noise then writes each sample
            # straight into NCHW memory, with no copy to change its layout
            rows = x.reshape(channels, height * width).T
        elif x.dim() == 2:
            rows = x
        else:
            raise ValueError(f"x: must be an image (C, H, W) or a feature matrix (N, D), got shape {tuple(x.shape)}")
        if rows.shape[0] == 0 or rows.shape[1] == 0:
            raise ValueError(f"x: has shape {tuple(x.shape)}; it needs at least one entity and one value")
        self.entities, self.values = rows.shape
        self.device = x.device
        self._draw = smoothing.noise.prepare(rows, self.sparse)

    def draw(self, n: int, generator: torch.Generator | None = None, token: torch.Tensor | None = None) -> torch.Tensor:
        """n samples of Ψ_x; ``token`` (a tensor with one value per row entry) overrides the ablation token."""
        n = check_integer("n", n, 1, rule="the number of samples must be an integer >= 1")
        mask = self.smoothing.selection.sample_mask(n, self.entities, generator, self.device)
        samples = self._draw(mask, self.smoothing.indicator, generator, token)
        if self.image_shape is not None:
            # contiguous NCHW, the layout a model may ``view``: a view when the noise drew value-major samples (the
            # families of this package do), one copy otherwise
            samples = samples.transpose(1, 2).reshape(n, samples.shape[-1], *self.image_shape)
        return samples

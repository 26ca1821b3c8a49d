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

import numpy as np
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
        n = _sample_count(n)
        check_generator(generator)
        mask = self.smoothing.selection.sample_mask(n, self.entities, generator, self.device)
        samples = self._draw(mask, self.smoothing.indicator, generator, token)
        if self.image_shape is not None:
            # contiguous NCHW, the layout a model may ``view``: a view when the noise drew value-major samples (the
            # families of this package do from a contiguous image without −0), one copy otherwise (``reshape``
            # alone would return a strided view of pixel-major samples)
            samples = samples.transpose(1, 2).reshape(n, samples.shape[-1], *self.image_shape).contiguous()
        return samples

    def draw_blocks(self, sizes: list[int], generators: list, token: torch.Tensor | None = None) -> torch.Tensor:
        """The samples of several blocks, block k's ``sizes[k]`` samples from ``generators[k]``, stacked as one
        tensor: ``concat_samples`` of their :meth:`draw` — written at once where the noise draws blocks together
        (sparse flips on a CPU), which saves joining them."""
        if len(sizes) != len(generators) or not sizes:
            raise ValueError(f"generators: one per block, for {len(sizes)} block sizes; got {len(generators)}")
        blocks = getattr(self._draw, "blocks", None)
        if blocks is None or self.image_shape is not None or len(sizes) == 1:
            return concat_samples([self.draw(size, generator, token) for size, generator in zip(sizes, generators)])
        sizes = [_sample_count(n) for n in sizes]
        masks = [
            self.smoothing.selection.sample_mask(size, self.entities, generator, self.device)
            for size, generator in zip(sizes, generators)
        ]
        return blocks(masks, self.smoothing.indicator, generators, token)


def check_generator(generator) -> None:
    """Refuse a ``generator`` that is neither None nor a ``torch.Generator`` (e.g. NumPy's), in one line."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: must be a torch.Generator or None, got {type(generator).__name__}")


def _sample_count(n) -> int:
    """n, the number of samples of a draw or a block, checked: an integer >= 1."""
    return check_integer("n", n, 1, rule="the number of samples must be an integer >= 1")


def concat_samples(samples: list[torch.Tensor]) -> torch.Tensor:
    """Stack sample blocks along the first axis (dense) or as more rows of one disjoint union (sparse CSR).

    Parameters
    ----------
    samples : list of torch.Tensor
        Blocks from ``Sampler.draw``: dense (n_i, ...) tensors, or sparse CSR (n_i·N, D) disjoint unions.

    Returns
    -------
    torch.Tensor
        (Σ n_i, ...) dense, or one sparse CSR (Σ n_i·N, D) union (int32 indices while they fit).
    """
    if len(samples) == 1:
        return samples[0]
    if samples[0].layout != torch.sparse_csr:
        return torch.cat(samples)
    entries = [block.col_indices().numel() for block in samples]
    narrow = all(block.crow_indices().dtype == torch.int32 for block in samples) and sum(entries) < 2**31
    index = torch.int32 if narrow else torch.long  # the blocks' int32 indices while the union's still fit
    offsets = np.cumsum([0] + entries[:-1]).tolist()
    crows = [samples[0].crow_indices().to(index)] + [
        block.crow_indices()[1:].to(index) + offset for block, offset in zip(samples[1:], offsets[1:])
    ]
    rows = sum(block.shape[0] for block in samples)
    return torch.sparse_csr_tensor(
        torch.cat(crows),
        torch.cat([block.col_indices().to(index) for block in samples]),
        torch.cat([block.values() for block in samples]),
        size=(rows, samples[0].shape[1]),
        check_invariants=False,
    )

"""Point-cloud classifiers for smoothed clouds: the input is a batch (b, N, d [+1]) of N points, τ last.

A smoothed cloud is an (N, d) matrix with τ appended as one more column (SPEC.md §2), so each point carries its
coordinates and its indicator τ_i = 1[i ∈ S]. The model must not depend on the order of the points: the
certificate holds for any r of them, and PointNet's max pooling is symmetric.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .images import layer_width, layer_widths


class PointNet(nn.Module):
    """PointNet (Qi et al., CVPR 2017) without its alignment networks, sized for a CPU: a shared per-point MLP
    (``widths`` = (64, 64, 128) by default; Linear, BatchNorm, ReLU each), max pooling over the points, and a
    classifier head (Linear to ``hidden`` = 128, BatchNorm, ReLU, Linear). Every point enters the MLP as its
    ``in_features`` values: its d coordinates and, under a smoothing with the indicator, τ as one more feature —
    under hierarchical gaussian smoothing τ tells the model which points were noised.

    **Ablated points** (``mask_selected=True``, what the factory sets for ablation noise): a point with τ = 1 is
    ablated, and it is left out of the max pooling — its features are set to 0 before the maximum, which, as
    every feature is ≥ 0 after the ReLU, is the maximum over the kept points alone (0 when every point is
    ablated). The model's output is then a function of the set of kept points only, whatever the token written
    into the ablated rows: exactly the information ablation leaves, in an encoding that is itself permutation
    invariant (a fixed token instead would be one more point at the token's coordinates, indistinguishable from
    a real point there without τ). The indicator must be on, and τ the last input feature."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        widths: Sequence[int] = (64, 64, 128),
        hidden: int = 128,
        mask_selected: bool = False,
    ):
        super().__init__()
        widths = layer_widths("widths", widths)
        hidden = layer_width("hidden", hidden)
        if mask_selected and in_features < 2:
            raise ValueError(
                f"in_features={in_features}: masking ablated points needs coordinates and τ (>= 2 features)"
            )
        layers, width = [], in_features
        for out in widths:
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU()]
            width = out
        self.points = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )
        self.in_features = in_features
        self.mask_selected = bool(mask_selected)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3 or z.shape[-1] != self.in_features:
            raise ValueError(f"PointNet: input must be (batch, points, {self.in_features}), got {tuple(z.shape)}")
        batch, count, features = z.shape
        h = self.points(z.reshape(batch * count, features)).view(batch, count, -1)
        if self.mask_selected:
            h = h.masked_fill(z[..., -1:] > 0.5, 0.0)  # τ = 1: ablated, out of the pooling
        return self.head(h.amax(dim=1))

"""Image classifiers for smoothed inputs: the input has C' channels plus, when the indicator is on, τ last.

C' is the number C of data channels, or 2C for the Levine–Feizi ablation encoding (channels x and 1 − x, both
zero where a pixel is ablated). Smoothing noise is added in [0, 1] pixel space, so normalisation belongs inside
the model: pass ``normalization=(mean, std)`` (one value per data channel, e.g.
``hiersmooth.data.images.CHANNEL_STATS["cifar10"]``) and the model first computes (x_c − mean_c) / std_c on the
data channels, leaving τ as it is. With ``levine_feizi=True`` the channels 1 − x are normalised too, with mean
1 − mean_c and the same std_c (so both halves are centred alike; an ablated pixel, zero in both, stays
distinguishable from every pixel value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_integer


class Normalization(nn.Module):
    """(z_c − mean_c) / std_c on the first ``len(mean)`` channels of z (N, C_in, H, W); later channels (τ) pass
    through unchanged. ``mean`` and ``std`` are saved with the model's state dict."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = self.mean.shape[1]
        return torch.cat([(z[:, :k] - self.mean) / self.std, z[:, k:]], dim=1)


def input_normalization(in_channels: int, normalization=None, levine_feizi: bool = False) -> nn.Module:
    """The first layer of an image model with ``in_channels`` input channels: ``nn.Identity()`` without
    ``normalization``, else a :class:`Normalization` of the C data channels given by ``normalization=(mean, std)``
    (or of the 2C channels x, 1 − x with ``levine_feizi``). ``in_channels`` must be C' or C' + 1 (τ last)."""
    if normalization is None:
        return nn.Identity()
    try:
        mean, std = ([float(v) for v in values] for values in normalization)
    except (TypeError, ValueError):
        raise ValueError(
            f"normalization={normalization!r}: must be (mean, std), one number per data channel each"
        ) from None
    if not mean or len(mean) != len(std):
        raise ValueError(f"normalization={normalization!r}: mean and std need the same number (>= 1) of values")
    if not all(math.isfinite(m) for m in mean) or not all(math.isfinite(s) and s > 0 for s in std):
        raise ValueError(f"normalization={normalization!r}: means must be finite and stds finite and > 0")
    if levine_feizi:
        mean, std = mean + [1 - m for m in mean], std + std
    if in_channels - len(mean) not in (0, 1):
        raise ValueError(
            f"in_channels={in_channels}: must be {len(mean)} or {len(mean) + 1} (with τ) for "
            f"{len(mean) // (2 if levine_feizi else 1)} data channels"
            f"{' in the Levine–Feizi encoding' if levine_feizi else ''}"
        )
    return Normalization(mean, std)


class SmallCNN(nn.Module):
    """Two 3×3 convolutions (32, 64 channels, each followed by ReLU and 2×2 max-pooling where the image is large
    enough), global average pooling and a linear layer. Trains in seconds on 8×8 digits or 28×28 MNIST on CPU.
    ``normalization`` and ``levine_feizi``: see :func:`input_normalization`."""

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, normalization=None, levine_feizi: bool = False
    ):
        super().__init__()
        self.normalize = input_normalization(in_channels, normalization, levine_feizi)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # channels-last convolutions: ~2x faster on a CPU
        return self.head(self.features(self.normalize(x)))


class LeNet(nn.Module):
    """LeNet for 28×28 digits (LeCun et al., 1998, in Caffe's variant): two stages of a valid 5×5 convolution
    (``channels`` = (20, 50) by default), ReLU and 2×2 max-pooling, then a hidden dense layer (``hidden`` = 500
    units, ReLU) and a linear layer. A 28×28 input leaves 4×4 maps; any other size ≥ 16×16 is average-pooled to
    4×4 first, so the dense layers fit every image size. τ is one more input channel. ``normalization`` and
    ``levine_feizi``: see :func:`input_normalization`."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (20, 50),
        hidden: int = 500,
        normalization=None,
        levine_feizi: bool = False,
    ):
        super().__init__()
        first, second = layer_widths("channels", channels, 2)
        hidden = layer_width("hidden", hidden)
        self.normalize = input_normalization(in_channels, normalization, levine_feizi)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, first, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * second, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 16:
            raise ValueError(
                f"LeNet: images must be at least 16×16 (two valid 5×5 convolutions and 2×2 poolings), "
                f"got {tuple(x.shape[-2:])}"
            )
        x = x.contiguous(memory_format=torch.channels_last)  # channels-last convolutions: ~2x faster on a CPU
        return self.head(self.features(self.normalize(x)))


def layer_width(name: str, value) -> int:
    """The width of one layer from model option ``name``: an integer >= 1, else a one-line ValueError."""
    return check_integer(f"model.{name}", value, 1)


def layer_widths(name: str, values, count: int | None = None) -> list[int]:
    """The widths of several layers from model option ``name``: a list of integers >= 1, exactly ``count`` of them
    when given (at least one otherwise), else a one-line ValueError."""
    if not isinstance(values, (list, tuple)) or not values or (count is not None and len(values) != count):
        raise ValueError(f"model.{name}={values!r}: must be a list of {count or 'one or more'} integers >= 1")
    return [layer_width(f"{name}[{i}]", value) for i, value in enumerate(values)]


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity (or 1×1 projection) shortcut (He et al., 2016)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes),
        )
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4, with BatchNorm and a shortcut (He et al., 2016)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.residual = nn.Sequential(
            nn.Conv2d(in_planes, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.shortcut = _shortcut(in_planes, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3×3 stride-1 stem (no max-pool), four stages of ``blocks`` (64, 128, 256, 512 planes;
    strides 1, 2, 2, 2), global average pooling and a linear layer. ``normalization`` and ``levine_feizi``: see
    :func:`input_normalization`."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: Sequence[int],
        in_channels: int,
        num_classes: int,
        normalization=None,
        levine_feizi: bool = False,
    ):
        super().__init__()
        self.normalize = input_normalization(in_channels, normalization, levine_feizi)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        stages, in_planes = [], 64
        for planes, count, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)):
            for block_stride in [stride] + [1] * (count - 1):
                stages.append(block(in_planes, planes, block_stride))
                in_planes = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_planes, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # channels-last convolutions: ~2x faster on a CPU
        return self.head(self.stages(self.stem(self.normalize(x))))


def ResNet18(in_channels: int, num_classes: int, normalization=None, levine_feizi: bool = False) -> ResNet:
    """ResNet-18 for 32×32 images: BasicBlocks [2, 2, 2, 2] (≈ 11.2M parameters with 3 channels, 10 classes)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, normalization, levine_feizi)


def ResNet50(in_channels: int, num_classes: int, normalization=None, levine_feizi: bool = False) -> ResNet:
    """ResNet-50 for 32×32 images: Bottlenecks [3, 4, 6, 3] (≈ 23.5M parameters with 3 channels, 10 classes)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, normalization, levine_feizi)

"""Image models: input layouts (C, C+1, 2C, 2C+1 channels), normalisation that never touches τ, CIFAR ResNets,
and a SmallCNN that learns the digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiersmooth.data.images import CHANNEL_STATS, load_digits
from hiersmooth.models.factory import build_model
from hiersmooth.models.images import Normalization, ResNet18, ResNet50, SmallCNN, input_normalization

STATS3 = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one intra-op thread (conftest.py)


def first_conv_input(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the model's first convolution receives for input x (by a forward hook)."""
    conv = next(module for module in model.modules() if isinstance(module, torch.nn.Conv2d))
    seen = []
    handle = conv.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    model.eval()
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levine_feizi", [False, True])
@pytest.mark.parametrize("indicator", [False, True])
def test_small_cnn_shapes_for_every_input_layout(channels, levine_feizi, indicator):
    in_channels = channels * (2 if levine_feizi else 1) + indicator
    stats = ((0.5,) * channels, (0.25,) * channels)
    for normalization in (None, stats):
        model = SmallCNN(in_channels, 7, width=8, normalization=normalization, levine_feizi=levine_feizi)
        assert model(torch.rand(3, in_channels, 8, 8)).shape == (3, 7)
        assert model(torch.rand(2, in_channels, 28, 28)).shape == (2, 7)


@pytest.mark.parametrize("factory", [SmallCNN, ResNet18])
@pytest.mark.parametrize("levine_feizi", [False, True])
def test_normalisation_changes_data_channels_only_and_leaves_tau(factory, levine_feizi):
    mean, std = torch.tensor(STATS3[0]).view(3, 1, 1), torch.tensor(STATS3[1]).view(3, 1, 1)
    x = torch.rand(2, 3, 32, 32)
    tau = (torch.rand(2, 1, 32, 32) < 0.3).float()
    data = torch.cat([x, 1 - x], dim=1) * tau if levine_feizi else x
    z = torch.cat([data, tau], dim=1)
    seen = first_conv_input(factory(z.shape[1], 10, normalization=STATS3, levine_feizi=levine_feizi), z)
    assert torch.equal(seen[:, -1], tau[:, 0])  # τ reaches the first layer bit for bit
    torch.testing.assert_close(seen[:, :3], (data[:, :3] - mean) / std)
    if levine_feizi:
        torch.testing.assert_close(seen[:, 3:6], (data[:, 3:6] - (1 - mean)) / std)


def test_without_normalisation_the_input_reaches_the_first_layer_unchanged_and_state_dicts_stay_as_before():
    z = torch.rand(2, 4, 32, 32)
    assert torch.equal(first_conv_input(ResNet18(4, 10), z), z)
    assert not any(key.startswith("normalize") for key in SmallCNN(2, 3).state_dict())


def test_normalisation_statistics_travel_with_the_state_dict():
    model = SmallCNN(4, 10, width=8, normalization=STATS3)
    state = model.state_dict()
    assert torch.equal(state["normalize.std"].flatten(), torch.tensor(STATS3[1]))
    fresh = SmallCNN(4, 10, width=8, normalization=STATS3)
    fresh.load_state_dict(state)
    x = torch.rand(2, 4, 8, 8)
    assert torch.equal(fresh(x), model(x))
    with pytest.raises(RuntimeError, match="normalize.mean"):
        SmallCNN(4, 10, width=8).load_state_dict(state)  # weights trained normalised do not load into a bare model


def test_normalization_module_is_the_affine_map_on_leading_channels():
    z = torch.rand(5, 3, 4, 4)
    out = Normalization((0.5, 0.1), (2.0, 4.0))(z)
    torch.testing.assert_close(out[:, 0], (z[:, 0] - 0.5) / 2.0)
    torch.testing.assert_close(out[:, 1], (z[:, 1] - 0.1) / 4.0)
    assert torch.equal(out[:, 2], z[:, 2])


@pytest.mark.parametrize(
    "in_channels, normalization, levine_feizi, message",
    [
        (5, STATS3, False, "in_channels=5: must be 3 or 4 \\(with τ\\) for 3 data channels"),
        (
            3,
            STATS3,
            True,
            "in_channels=3: must be 6 or 7 \\(with τ\\) for 3 data channels in the Levine–Feizi encoding",
        ),
        (2, ((0.5, 0.5), (0.2,)), False, "mean and std need the same number"),
        (1, ((), ()), False, "mean and std need the same number"),
        (1, ((0.5,), (0.0,)), False, "stds finite and > 0"),
        (1, ((float("nan"),), (1.0,)), False, "means must be finite"),
        (1, (0.5, 0.2), False, "must be \\(mean, std\\)"),
        (1, ((0.5,), ("a",)), False, "must be \\(mean, std\\)"),
    ],
)
def test_bad_normalisation_arguments(in_channels, normalization, levine_feizi, message):
    with pytest.raises(ValueError, match=message):
        input_normalization(in_channels, normalization, levine_feizi)


@pytest.mark.parametrize(
    "factory, blocks, parameters",
    [
        (
            ResNet18,
            8,
            11_173_962,
        ),  # the usual CIFAR ResNet-18 / -50 (3×3 stem, no max-pool) with 3 channels, 10 classes
        (ResNet50, 16, 23_520_842),
    ],
)
def test_cifar_resnets(factory, blocks, parameters):
    model = factory(3, 10)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert len(model.stages) == blocks and model.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    model = factory(4, 10, normalization=CHANNEL_STATS["cifar10"])  # 3 + τ
    assert sum(p.numel() for p in model.parameters()) == parameters + 64 * 9  # one more 3×3 input channel
    x = torch.rand(2, 4, 32, 32)
    out = model.train()(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_models_build_from_the_factory_spec():
    assert build_model("hiersmooth.models.images:ResNet18", 7, 10).stem[0].in_channels == 7
    assert build_model("hiersmooth.models.images:SmallCNN", 2, 3).features[0].in_channels == 2


def test_small_cnn_learns_the_digits():
    torch.manual_seed(0)
    train, test = load_digits(seed=0)
    model = SmallCNN(1, 10, width=16, normalization=CHANNEL_STATS["digits"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    labels = torch.from_numpy(train.labels)
    for _ in range(5):
        for batch in torch.randperm(train.points, generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(train.images[batch]), labels[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = np.mean(model(test.images).argmax(1).numpy() == test.labels)
    assert accuracy > 0.8

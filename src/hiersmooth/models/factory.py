"""Build a model from ``MODULE:FACTORY`` and load its weights safely (``torch.load(..., weights_only=True)``)."""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import sys
import warnings

import torch

from ..smoothing import Smoothing


def input_width(smoothing: Smoothing, input_shape: tuple[int, ...], graph: bool) -> int:
    """Channels of an image sample (input (C, H, W)) or values per row of a matrix sample (a graph's features, a
    point cloud's coordinates: input (N, D)): C or D, doubled by the Levine–Feizi encoding, +1 for τ."""
    width = input_shape[-1] if graph or len(input_shape) == 2 else input_shape[0]
    return smoothing.noise.sample_width(width) + smoothing.indicator


def build_model(spec: str, width: int, num_classes: int, weights=None) -> torch.nn.Module:
    """``FACTORY(width, num_classes)`` from ``MODULE:FACTORY``, with the state dict in ``weights`` loaded strictly.

    MODULE is imported as ``python -m`` would: the working directory is searched first, then ``sys.path``.
    """
    module_name, _, factory_name = str(spec).partition(":")
    if not module_name or not factory_name:
        raise ValueError(f"--model {spec!r}: must be MODULE:FACTORY, e.g. hiersmooth.models.images:SmallCNN")
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except ModuleNotFoundError as error:
        if error.name is None or not (module_name + ".").startswith(
            error.name + "."
        ):  # the module exists; one of its imports does not
            raise ValueError(f"--model {spec!r}: cannot import ({error})") from None
        raise ValueError(
            f"--model {spec!r}: cannot import ({error}); searched the working directory {here} and sys.path; "
            f"put the folder holding {error.name.replace('.', '/')}.py on PYTHONPATH, e.g. "
            f"PYTHONPATH=/path/to/folder hiersmooth certify ..."
        ) from None
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--model {spec!r}: cannot import ({error})") from None
    finally:
        if added:
            sys.path.remove(here)
    try:
        inspect.signature(factory).bind(width, num_classes)
    except TypeError:
        raise ValueError(
            f"--model {spec!r}: {factory_name} must be callable as {factory_name}(input_width, num_classes)"
        ) from None
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    model = factory(width, num_classes)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model {spec!r}: returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        load_state(model, weights, f"{spec} with input width {width} and {num_classes} classes")
    return model


def load_state(model: torch.nn.Module, weights, description: str, option: str = "--weights") -> None:
    """Load the state dict in file ``weights`` into ``model`` strictly; never unpickles anything but tensors."""
    try:
        with warnings.catch_warnings():  # torch's note on an unusual pickle protocol: the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{option} {weights}: no such file") from None
    except Exception as error:
        if isinstance(error, pickle.UnpicklingError) and _starts_as_pickle(weights):  # the weights-only refusal
            raise ValueError(
                f"{option} {weights}: holds pickled objects beyond tensors (or is cut short); weights are read with "
                "weights_only=True, which unpickles nothing else"
            ) from None
        lines = str(error).strip().splitlines()  # a text file, a truncated archive, an empty file
        detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise ValueError(f"{option} {weights}: not a state dict written by torch.save ({detail})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{option} {weights}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = str(error).splitlines()
        raise ValueError(
            f"{option} {weights}: does not fit {description} ({lines[1].strip() if len(lines) > 1 else error})"
        ) from None


def _starts_as_pickle(path) -> bool:
    """Whether the file at ``path`` starts as a torch archive (a zip) or a pickle stream (protocol 2 and later)."""
    try:
        with open(path, "rb") as file:
            return file.read(2).startswith((b"PK", b"\x80"))
    except OSError:
        return False


def named_model(
    name: str, options: dict, width: int, num_classes: int, *, data: str, smoothing: Smoothing
) -> torch.nn.Module:
    """A built-in model by name (``small_cnn``, ``lenet``, ``resnet18``, ``resnet50``, ``pointnet``, ``gcn``,
    ``gat``, ``appnp``) for samples of ``width`` channels/features, with its options from the config.

    Image models normalise the data channels inside the model with the dataset's channel statistics
    (:func:`hiersmooth.data.datasets.channel_stats`) and take the Levine–Feizi encoding when the smoothing uses
    it. ``pointnet`` under ablation noise leaves the ablated points (τ = 1) out of its max pooling, so it needs
    the token encoding with the indicator on. ``learn_token: true`` gives a graph model a learnable ablation
    token (only with ablation noise in the token encoding).
    """
    from ..data.datasets import channel_stats
    from ..run_config import GRAPH_MODELS
    from . import graphs, images, point_clouds

    factories = {
        "small_cnn": images.SmallCNN,
        "lenet": images.LeNet,
        "resnet18": images.ResNet18,
        "resnet50": images.ResNet50,
        "pointnet": point_clouds.PointNet,
        "gcn": graphs.GCN,
        "gat": graphs.GAT,
        "appnp": graphs.APPNP,
    }
    if name not in factories:
        raise ValueError(f"model.name={name!r}: unknown model (allowed: {', '.join(factories)})")
    options = dict(options)
    graph = name in GRAPH_MODELS
    parameters = set(inspect.signature(factories[name]).parameters)
    allowed = parameters - {"in_channels", "in_features", "num_classes", "levine_feizi", "token_width", "mask_selected"}
    unknown = sorted(set(options) - allowed - ({"learn_token"} if graph else set()))
    if unknown:
        extra = ", learn_token" if graph else ""
        raise ValueError(
            f"model: unknown option {', '.join(unknown)} for {name} (allowed: {', '.join(sorted(allowed))}{extra})"
        )
    ablation = smoothing.noise.ablates
    token_encoding = smoothing.noise.takes_learned_token
    if graph:
        if options.pop("learn_token", False):
            if not token_encoding:
                raise ValueError("model.learn_token: a learnable token needs ablation noise with encoding: token")
            options["token_width"] = width - smoothing.indicator
    elif name == "pointnet":
        if ablation and not (token_encoding and smoothing.indicator):
            raise ValueError(
                "model pointnet: ablation of points needs encoding: token and indicator: true (τ marks "
                "the ablated points, which the model leaves out of its max pooling)"
            )
        options["mask_selected"] = ablation
    else:
        options.setdefault("normalization", channel_stats(data))
        options["levine_feizi"] = smoothing.noise.sample_width(1) == 2  # the Levine–Feizi input: x and 1 − x
    return factories[name](width, num_classes, **options)

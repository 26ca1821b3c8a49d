"""Build a model from ``MODULE:FACTORY`` and load its weights safely (``torch.load(..., weights_only=True)``)."""

from __future__ import annotations

import importlib

import torch

from ..smoothing import Ablation, Smoothing


def input_width(smoothing: Smoothing, input_shape: tuple[int, ...], graph: bool) -> int:
    """Channels (images) or features (graphs) of a sample: C or D, doubled by the Levine–Feizi encoding, +1 for τ."""
    width = input_shape[-1] if graph else input_shape[0]
    if isinstance(smoothing.noise, Ablation) and smoothing.noise.encoding == "levine_feizi":
        width *= 2
    return width + smoothing.indicator


def build_model(spec: str, width: int, num_classes: int, weights=None) -> torch.nn.Module:
    """``FACTORY(width, num_classes)`` from ``MODULE:FACTORY``, with the state dict in ``weights`` loaded strictly."""
    module_name, _, factory_name = str(spec).partition(":")
    if not module_name or not factory_name:
        raise ValueError(f"--model {spec!r}: must be MODULE:FACTORY, e.g. hiersmooth.models.images:SmallCNN")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--model {spec!r}: cannot import ({error})") from None
    model = factory(width, num_classes)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model {spec!r}: returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"--weights {weights}: no such file") from None
        except Exception as error:  # pickled objects beyond tensors, or not a torch file at all
            raise ValueError(f"--weights {weights}: not a plain state dict ({str(error).splitlines()[0]})") from None
        if not isinstance(state, dict):
            raise ValueError(f"--weights {weights}: holds a {type(state).__name__}, not a state dict")
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"--weights {weights}: does not fit {spec} with input width {width} and {num_classes} classes "
                             f"({str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error})") from None
    return model

"""The torch device a run asks for, checked against what this machine has (``--device``, ``device=``,
``training.device``)."""

from __future__ import annotations

import torch


def check_device(device, name: str = "device") -> torch.device:
    """``torch.device(device)`` if this machine has it; a one-line ValueError naming ``name`` otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}={device!r}: not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: CUDA is not available on this machine (use cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{name}={device!r}: MPS is not available on this machine (use cpu)")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name}={device!r}: hiersmooth runs on cpu, cuda or mps devices")
    return parsed

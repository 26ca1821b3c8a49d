"""Checks of user-given values shared by every layer: integers and devices.

Base layer: imports nothing from hiersmooth (and torch only inside ``check_device``), so any module may use it.
"""

from __future__ import annotations

from numbers import Integral


def check_integer(name: str, value, least: int = 0, most: int | None = None, *, rule: str | None = None) -> int:
    """``value`` as a Python int if it is an integer in [``least``, ``most``] (no upper bound when ``most`` is None).

    Integers are Python ints and NumPy integers (any :class:`numbers.Integral`); ``bool`` is refused, and so is
    every non-integral type — floats (even ``2.0``, NaN or infinity), strings, arrays. Anything else raises a
    one-line ValueError ``"{name}={value!r}: must be an integer >= least[ and <= most]"``; ``rule`` replaces the
    text after the colon where a caller words the requirement its own way (e.g. ``"the number of points per
    cloud must be an integer >= 1"``).
    """
    if (
        not isinstance(value, bool)
        and isinstance(value, Integral)
        and value >= least
        and (most is None or value <= most)
    ):
        return int(value)
    if rule is None:
        rule = f"must be an integer >= {least}" + ("" if most is None else f" and <= {most}")
    raise ValueError(f"{name}={value!r}: {rule}")


def check_device(device, name: str = "device"):
    """``torch.device(device)`` if this machine has it; a one-line ValueError naming ``name`` otherwise."""
    import torch

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

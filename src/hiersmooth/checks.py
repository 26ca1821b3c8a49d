"""Checks of user-given values shared by every layer: one integer validator, and the one line of an exception
that an error about a user's file quotes.

Base layer: imports nothing from hiersmooth, so any module may use it.
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


def error_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name where the message is empty (``EOFError()``)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

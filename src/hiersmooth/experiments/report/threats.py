"""Threats in a report: the results key of a threat (parsed from text by :func:`hiersmooth.threat.parse_threat_text`,
the one threat text of the CLI, the report and the CSV columns), and its printed text and file slug.

A threat is the attacker's budget a certified accuracy holds against: r changed rows and the budget of one kind
of threat (:data:`hiersmooth.threat.BUDGETS`) — an ℓ2 budget ε (gaussian-type results, column ``eps``), ra bits
added and rd bits deleted (sparse/graph results, columns ``ra``, ``rd``), an ℓ1 budget (uniform-type results,
column ``l1``) — or the number of changed rows r alone. The threat columns of a results table are its *axes*
(threat-grid axis names, ``rows`` first; their column names are :data:`hiersmooth.threat.TEXT_NAMES`), and the
results key of a threat is the tuple of its values on those axes: (r, ε), (r, ra, rd), (r, ℓ1) or (r,).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...threat import INTEGER_AXES, SPELLINGS, TEXT_NAMES, Threat

if TYPE_CHECKING:
    from .reading import Results

_SYMBOLS = {"eps": "ε"}  # how the report prints an axis where it is not its text name


def symbol(axis: str) -> str:
    """How the report prints a threat axis: ε for ``eps``, else its name in threat text (r, ra, rd, l1)."""
    return _SYMBOLS.get(axis, TEXT_NAMES[axis])


def axis_value(axis: str, value) -> int | float:
    """A value on a threat axis as it is in a results key: an int on a count axis, a float rounded to 9 digits
    on a norm axis (so 0.1 read from a CSV and 0.1 given by a user are the same key)."""
    return int(value) if axis in INTEGER_AXES else round(float(value), 9)


def threat_key(threat: dict | Threat, axes: tuple[str, ...]) -> tuple:
    """The results key of a threat (a mapping axis → value, any spelling of :data:`hiersmooth.threat.SPELLINGS`,
    or a :class:`~hiersmooth.threat.Threat`) for results with threat axes ``axes``: its values on those axes,
    e.g. (rows, eps) for ``axes == ("rows", "eps")``. A missing one of several budget axes counts as 0 (a missing
    one of added/deleted, as in ``Threat``)."""
    if isinstance(threat, Threat):
        threat = threat.axes
    wrong = (
        f"these results have threat columns {', '.join(TEXT_NAMES[axis] for axis in axes)}; give {' and '.join(axes)}"
    )
    if not isinstance(threat, dict) or not set(threat) <= set(SPELLINGS):
        raise ValueError(f"threat {threat!r}: {wrong}")
    threat = {SPELLINGS[name]: value for name, value in threat.items()}
    budget, given = set(axes) - {"rows"}, set(threat) - {"rows"}
    if "rows" not in threat or not given <= budget or (budget and not given):
        raise ValueError(f"threat {threat!r}: {wrong}")
    try:
        return tuple(axis_value(axis, threat.get(axis, 0)) for axis in axes)
    except (TypeError, ValueError):
        counts = ", ".join(axis for axis in axes if axis in INTEGER_AXES)
        norms = "".join(f" and {axis} a number" for axis in axes if axis not in INTEGER_AXES)
        raise ValueError(f"threat {threat!r}: {counts} must be integers{norms}") from None


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _threat_text(key: tuple, axes: tuple[str, ...]) -> str:
    """The printed threat: ``r=1, ε=0.5``, ``r=1, ra=0, rd=2``, ``r=1, l1=0.5``, ``r=2``."""
    return ", ".join(f"{symbol(axis)}={_number(value)}" for axis, value in zip(axes, key))


def _threat_slug(key: tuple, axes: tuple[str, ...]) -> str:
    """The threat in a file name: ``r1_eps0.5``, ``r1_ra0_rd2``, ``r1_l1_0.5`` (a name ending in a digit is
    parted from its value by ``_``), ``r2``."""
    parts = []
    for axis, value in zip(axes, key):
        name = TEXT_NAMES[axis]
        parts.append(f"{name}{'_' if name[-1].isdigit() else ''}{_number(value)}")
    return "_".join(parts)


def _available(results: Results) -> str:
    keys = results.threat_keys()
    return "; ".join(
        f"{TEXT_NAMES[axis]} in {{{', '.join(f'{value:g}' for value in sorted({key[i] for key in keys}))}}}"
        for i, axis in enumerate(results.axes)
    )

"""Threats in a report: the results key of a threat (parsed from text by :func:`hiersmooth.threat.parse_threat_text`,
the one threat text of the CLI, the report and the CSV columns), and its printed text and file slug.

A threat is the attacker's budget a certified accuracy holds against: r changed rows and an ℓ2 budget ε
(gaussian-type results, ``kind == "eps"``), r changed rows with ra bits added and rd bits deleted
(sparse/graph results, ``kind == "bits"``), or the number of changed rows r alone (``kind == "rows"``). Its
results key is the tuple of those numbers in that order: (r, ε), (r, ra, rd) or (r,).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...threat import SPELLINGS

if TYPE_CHECKING:
    from .reading import Results

_AXIS_NAMES = {"eps": ("r", "eps"), "bits": ("r", "ra", "rd"), "rows": ("r",)}


def threat_key(threat: dict, kind: str) -> tuple:
    """The results key of a threat dict: (rows, eps) for ``kind == "eps"``, (rows, added, deleted) for
    ``kind == "bits"`` (a missing one of added/deleted counts as 0, as in ``Threat``), (rows,) for
    ``kind == "rows"``. The short names r, l2, ra, rd are accepted too."""
    if not isinstance(threat, dict) or not set(threat) <= set(SPELLINGS):
        raise ValueError(f"threat {threat!r}: give rows and eps, or rows, added and deleted")
    threat = {SPELLINGS[name]: value for name, value in threat.items()}
    axes = {"eps": {"eps"}, "bits": {"added", "deleted"}, "rows": set()}[kind]
    given = set(threat) - {"rows"}
    if "rows" not in threat or not given <= axes or (axes and not given):
        columns = ", ".join(_AXIS_NAMES[kind])
        raise ValueError(
            f"threat {threat!r}: these results have threat columns {columns}; "
            f"give {' and '.join(['rows', *sorted(axes)])}"
        )
    try:
        if kind == "eps":
            return int(threat["rows"]), round(float(threat["eps"]), 9)
        if kind == "bits":
            return int(threat["rows"]), int(threat.get("added", 0)), int(threat.get("deleted", 0))
        return (int(threat["rows"]),)
    except (TypeError, ValueError):
        raise ValueError(f"threat {threat!r}: rows, added, deleted must be integers and eps a number") from None


def _threat_text(key: tuple) -> str:
    if len(key) == 1:
        return f"r={key[0]}"
    if len(key) == 2:
        return f"r={key[0]}, ε={key[1]:g}"
    return f"r={key[0]}, ra={key[1]}, rd={key[2]}"


def _threat_slug(key: tuple) -> str:
    if len(key) == 1:
        return f"r{key[0]}"
    if len(key) == 2:
        return f"r{key[0]}_eps{key[1]:g}"
    return f"r{key[0]}_ra{key[1]}_rd{key[2]}"


def _available(results: Results) -> str:
    keys = results.threat_keys()
    return "; ".join(
        f"{name} in {{{', '.join(f'{value:g}' for value in sorted({key[i] for key in keys}))}}}"
        for i, name in enumerate(_AXIS_NAMES[results.kind])
    )

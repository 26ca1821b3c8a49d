"""Threats in a report: parsing command-line text, the results key of a threat, and its text and file slug.

A threat is the attacker's budget a certified accuracy holds against: r changed rows and an ℓ2 budget ε
(gaussian-type results, ``kind == "eps"``), r changed rows with ra bits added and rd bits deleted
(sparse/graph results, ``kind == "bits"``), or the number of changed rows r alone (``kind == "rows"``). Its
results key is the tuple of those numbers in that order: (r, ε), (r, ra, rd) or (r,).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reading import Results

_THREAT_ALIASES = {
    "r": "rows",
    "rows": "rows",
    "eps": "eps",
    "l2": "eps",
    "ra": "added",
    "added": "added",
    "rd": "deleted",
    "deleted": "deleted",
}
_AXIS_NAMES = {"eps": ("r", "eps"), "bits": ("r", "ra", "rd"), "rows": ("r",)}


def parse_threat(text: str) -> dict:
    """A threat dict from command-line text: ``r=2,eps=0.25`` → {rows: 2, eps: 0.25}; ``r=1,ra=0,rd=5`` →
    {rows: 1, added: 0, deleted: 5} (also accepted: rows, l2, added, deleted)."""
    threat: dict = {}
    for part in text.replace(" ", "").split(","):
        name, _, value = part.partition("=")
        if name not in _THREAT_ALIASES or not value:
            raise ValueError(f"threat {text!r}: expected r=R,eps=E or r=R,ra=A,rd=D (got {part!r})")
        key = _THREAT_ALIASES[name]
        try:
            threat[key] = float(value) if key == "eps" else int(value)
        except ValueError:
            raise ValueError(f"threat {text!r}: {name}={value!r} is not a number") from None
    return threat


def threat_key(threat: dict, kind: str) -> tuple:
    """The results key of a threat dict: (rows, eps) for ``kind == "eps"``, (rows, added, deleted) for
    ``kind == "bits"`` (a missing one of added/deleted counts as 0, as in ``Threat``), (rows,) for
    ``kind == "rows"``. The short names r, l2, ra, rd are accepted too."""
    if not isinstance(threat, dict) or not set(threat) <= set(_THREAT_ALIASES):
        raise ValueError(f"threat {threat!r}: give rows and eps, or rows, added and deleted")
    threat = {_THREAT_ALIASES[name]: value for name, value in threat.items()}
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

"""Dataset-level results: threat grids and certified accuracy / certified ratio per threat (SPEC.md §4).

The certified accuracy at a threat is the fraction of points whose selected class A equals the label and that
are certified for that threat; the certified ratio counts certified points whatever their label. The default
grid reaches every threat at which any point is certified, and one step beyond.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from ..smoothing.noise import Ablation, Gaussian, Sparse
from ..threat import MAX_THREATS, Threat, axis_values
from .certificates import Certificate

if TYPE_CHECKING:
    from .certification import VoteCertificates

_SEARCH_LIMIT = 1 << 20


def _largest(predicate, start: int, limit: int | None = None) -> int:
    """Largest k >= start with predicate(k) true, for a predicate true up to some k and false after; start − 1 if none.

    Exponential then binary search; stops at ``limit`` (inclusive) when given.
    """
    if not predicate(start):
        return start - 1
    good, step = start, 1
    while True:
        probe = good + step
        if limit is not None and probe >= limit:
            if predicate(limit):
                return limit
            bad = limit
            break
        if probe > _SEARCH_LIMIT:
            raise ValueError(f"points stay certified beyond {_SEARCH_LIMIT} changes; give the threat grid explicitly")
        if not predicate(probe):
            bad = probe
            break
        good, step = probe, 2 * step
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if predicate(middle) else (good, middle)
    return good


def _any_certified(certificates: tuple[Certificate, ...], threats) -> bool:
    return any(cert.certified(threat).any() for cert in certificates for threat in threats)


def _nice_step(largest: float, points: int = 100) -> float:
    """The smallest of 1, 2.5, 5 × 10^k giving at most ``points`` steps up to ``largest``."""
    if not largest > 0 or not math.isfinite(largest):
        return 0.05
    exponent = math.floor(math.log10(largest / points))
    return min(m * 10.0**e for e in (exponent, exponent + 1) for m in (1, 2.5, 5) if m * 10.0**e * points >= largest)


def default_axes(result: VoteCertificates) -> dict[str, list]:
    """Threat-grid axes covering every threat at which some point is certified (by either certificate)."""
    smoothing, certs = result.smoothing, result.certificates
    noise, constant_from = smoothing.noise, smoothing.selection.constant_from
    if isinstance(noise, Gaussian):
        last_row = max(1, _largest(lambda r: any((c.largest_l2([r]) > 0).any() for c in certs), 1, constant_from))
        rows = list(range(1, last_row + 1))
        largest = max(float(c.largest_l2(rows).max()) for c in certs)
        step = _nice_step(largest)
        return {"rows": rows, "eps": [round(step * k, 12) for k in range(int(largest / step) + 2)]}
    if isinstance(noise, Sparse):
        last_row = max(1, _largest(lambda r: _any_certified(certs, [Threat(r, added=a, deleted=r - a) for a in range(r + 1)]), 1, constant_from))
        last_added = _largest(lambda a: _any_certified(certs, [Threat(1, added=a, deleted=0)]), 0)
        last_deleted = _largest(lambda d: _any_certified(certs, [Threat(1, added=0, deleted=d)]), 0)
        return {
            "rows": list(range(1, last_row + 1)),
            "added": list(range(max(last_added, 0) + 2)),
            "deleted": list(range(max(last_deleted, 0) + 2)),
        }
    largest = max(float(np.max(c.largest_rows())) for c in certs)
    last_row = constant_from if math.isinf(largest) else max(int(largest), 0)
    return {"rows": list(range(0, last_row + 2))}


def threat_axes(noise) -> tuple[str, ...]:
    """The axes of a threat grid for ``noise``: rows, then eps (gaussian), added and deleted (sparse), none (ablation)."""
    return ("rows",) + (("eps",) if isinstance(noise, Gaussian) else ("added", "deleted") if isinstance(noise, Sparse) else ())


def grid_axes(result: VoteCertificates, **given) -> dict[str, list]:
    """The threat grid: each axis given (``rows=``, ``eps=``, ``added=``, ``deleted=``: a list of values, or text as
    on the command line such as ``1-4`` or ``0:1:0.05``; None for the default) checked by
    :func:`hiersmooth.threat.axis_values`, the others from :func:`default_axes`. An axis that does not fit the
    noise, or a grid of more than ``MAX_THREATS`` threats, is a ValueError naming it."""
    given = {name: values for name, values in given.items() if values is not None}
    fits = threat_axes(result.smoothing.noise)
    for name in given:
        if name not in fits:
            kind = type(result.smoothing.noise).__name__.lower()
            known = name in ("rows", "eps", "added", "deleted")
            raise ValueError(f"--{name} {'does not apply to' if known else 'is no threat axis of'} {kind} noise "
                             f"(threat options for it: {', '.join(f'--{n}' for n in sorted(fits))})")
    axes = {name: axis_values(name, values) for name, values in given.items()}
    if set(axes) != set(fits):
        axes = {**default_axes(result), **axes}
    size = math.prod(len(values) for values in axes.values())
    if size > MAX_THREATS:
        sizes = " x ".join(f"{len(values)} {name}" for name, values in axes.items())
        raise ValueError(f"the threat grid has {sizes} = {size} threats, more than {MAX_THREATS}; "
                         "give shorter --rows/--eps/--added/--deleted lists")
    return {name: axes[name] for name in fits}


_COLUMNS = {"rows": "r", "eps": "eps", "added": "ra", "deleted": "rd"}  # axis → tidy-table column


def certified_accuracy_table(result: VoteCertificates, axes: dict[str, list]) -> list[dict]:
    """One row per (certificate, threat of the grid ``axes``): r, then eps or ra, rd the
    certified accuracy and the certified ratio over all points."""
    names = [_COLUMNS[axis] for axis in axes]
    threats = [dict(zip(names, values)) for values in itertools.product(*axes.values())]
    table = []
    for cert in result.certificates:
        certified = cert.certified_on_axes(axes)
        accuracy = (certified & result.correct[:, None]).mean(axis=0).tolist()
        ratio = certified.mean(axis=0).tolist()
        table += [{"certificate": cert.name, **threat, "certified_accuracy": acc, "certified_ratio": share}
                  for threat, acc, share in zip(threats, accuracy, ratio)]
    return table

"""Dataset-level results: threat grids and certified accuracy / certified ratio per threat (SPEC.md §4).

The certified accuracy at a threat is the fraction of points whose selected class A equals the label and that
are certified for that threat; the certified ratio counts certified points whatever their label. The default
grid reaches every threat at which any point is certified, and one step beyond.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from ..threat import GRID_AXES, MAX_THREATS, TEXT_NAMES, axis_values

if TYPE_CHECKING:
    from .certification import VoteCertificates


def default_axes(result: VoteCertificates) -> dict[str, list]:
    """Threat-grid axes covering every threat at which some point is certified (by either certificate): the noise
    family's choice (:meth:`hiersmooth.smoothing.noise.Noise.default_axes`)."""
    return result.smoothing.noise.default_axes(result.certificates, result.smoothing.selection)


def threat_axes(noise) -> tuple[str, ...]:
    """The axes of a threat grid for ``noise``: rows, then the family's own (eps; added, deleted; l1; none)."""
    return ("rows", *noise.axes)


def grid_axes(result: VoteCertificates, **given) -> dict[str, list]:
    """The threat grid: each axis given (``rows=``, ``eps=``, ``added=``, ``deleted=``: a list of values, or text as
    on the command line such as ``1-4`` or ``0:1:0.05``; None for the default) checked by
    :func:`hiersmooth.threat.axis_values`, the others from :func:`default_axes`. An axis that does not fit the
    noise, or a grid of more than ``MAX_THREATS`` threats, is a ValueError naming it."""
    fits = threat_axes(result.smoothing.noise)
    axes = given_axes(result.smoothing.noise, **given)
    if set(axes) != set(fits):
        axes = {**default_axes(result), **axes}
    size = math.prod(len(values) for values in axes.values())
    if size > MAX_THREATS:
        sizes = " x ".join(f"{len(values)} {name}" for name, values in axes.items())
        raise ValueError(
            f"the threat grid has {sizes} = {size} threats, more than {MAX_THREATS}; "
            f"give shorter {'/'.join(f'--{axis}' for axis in axes)} lists"
        )
    return {name: axes[name] for name in fits}


def given_axes(noise, **given) -> dict[str, list]:
    """The threat-grid axes given (not None), each checked by :func:`hiersmooth.threat.axis_values`; an axis the
    noise has not (a typo, or ``eps`` for sparse noise) is a ValueError naming it. Callers that count votes check
    their grid with it before the first sample."""
    given = {name: values for name, values in given.items() if values is not None}
    fits = threat_axes(noise)
    for name in given:
        if name not in fits:
            known = name in GRID_AXES
            raise ValueError(
                f"--{name} {'does not apply to' if known else 'is no threat axis of'} {noise.kind} noise "
                f"(threat options for it: {', '.join(f'--{n}' for n in sorted(fits))})"
            )
    return {name: axis_values(name, values) for name, values in given.items()}


def column_name(axis: str) -> str:
    """The tidy-table (CSV) column of a threat-grid axis: its name in threat text (r, eps, ra, rd, l1)."""
    return TEXT_NAMES[axis]


def certified_accuracy_table(result: VoteCertificates, axes: dict[str, list]) -> list[dict]:
    """One row per (certificate, threat of the grid ``axes``): r, then eps or ra, rd the
    certified accuracy and the certified ratio over all points."""
    names = [column_name(axis) for axis in axes]
    threats = [dict(zip(names, values)) for values in itertools.product(*axes.values())]
    table = []
    for cert in result.certificates:
        certified = cert.certified_on_axes(axes)
        accuracy = (certified & result.correct[:, None]).mean(axis=0).tolist()
        ratio = certified.mean(axis=0).tolist()
        table += [
            {"certificate": cert.name, **threat, "certified_accuracy": acc, "certified_ratio": share}
            for threat, acc, share in zip(threats, accuracy, ratio)
        ]
    return table

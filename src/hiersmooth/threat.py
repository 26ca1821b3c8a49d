"""The adversary's budget (SPEC.md §1).

An adversary changes at most ``rows`` rows (entities) of the input X and is bounded over the whole change:
either in ℓ2 norm (continuous data, ``l2`` = ε), in ℓ1 norm (``l1`` = ε) or by the number of bits it turns 0→1
(``added`` = ra) and 1→0 (``deleted`` = rd) over all changed rows together (binary data). A threat with no bound
lets the changed rows take any value (the threat ablation smoothing certifies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Integral, Real

from .checks import check_integer

_INT64_MAX = (1 << 63) - 1


def _check_count(name: str, value) -> int:
    return check_integer(name, value, rule="must be a non-negative integer")


TEXT_NAMES = {"rows": "r", "eps": "eps", "added": "ra", "deleted": "rd", "l1": "l1"}
"""Each threat-grid axis and its name in threat text (``r=1,eps=0.5``, ``r=1,ra=0,rd=8``) and in CSV columns."""
SPELLINGS = {**{name: axis for axis, name in TEXT_NAMES.items()}, **{axis: axis for axis in TEXT_NAMES}, "l2": "eps"}
"""Every accepted spelling of an axis in threat text: the text name, the axis name, and ``l2`` for ``eps``."""


BUDGETS = {"rows": (), "l2": ("eps",), "bits": ("added", "deleted"), "l1": ("l1",)}
"""Each kind of threat (:attr:`Threat.kind`) and the threat-grid axes of its budget beside ``rows``: a threat's
:attr:`Threat.axes` are ``rows`` and those of its kind (the threat columns of a results table: r, then eps | ra,
rd | l1 | nothing)."""
_FIELDS = {axis: "l2" if axis == "eps" else axis for axis in TEXT_NAMES}
"""Each threat-grid axis and the field of :class:`Threat` holding it (``eps`` is held by ``l2``)."""


@dataclass(frozen=True, init=False)
class Threat:
    """At most ``rows`` changed rows; optionally ‖vec(X − X̃)‖₂ ≤ ``l2``, ‖vec(X − X̃)‖₁ ≤ ``l1``, or ``added`` /
    ``deleted`` bits.

    Each budget has the name it has in threat text (:meth:`parse`, the CLI, the CSV columns and the report) and
    a field name; either is a keyword: ``Threat(r=1, eps=0.5)`` = ``Threat(rows=1, l2=0.5)`` is the continuous
    threat (r, ε); ``Threat(r=1, ra=0, rd=8)`` = ``Threat(rows=1, added=0, deleted=8)`` the binary threat
    (r, ra, rd) (a missing one of ra, rd counts as 0); ``Threat(r=1, l1=0.5)`` the ℓ1 threat; ``Threat(r=2)``
    leaves the values of the changed rows free. ``str(threat)`` is its threat text: ``Threat.parse(str(t)) == t``.
    """

    rows: int
    l2: float | None = None
    added: int | None = None
    deleted: int | None = None
    l1: float | None = None

    def __init__(
        self,
        rows: int | None = None,
        l2: float | None = None,
        added: int | None = None,
        deleted: int | None = None,
        l1: float | None = None,
        *,
        r: int | None = None,
        eps: float | None = None,
        ra: int | None = None,
        rd: int | None = None,
    ):
        given = {"rows": rows, "l2": l2, "added": added, "deleted": deleted, "l1": l1}
        spelled = {field: field for field in given}  # the name the caller used, for errors
        for text, value in {"r": r, "eps": eps, "ra": ra, "rd": rd}.items():
            field = _FIELDS[SPELLINGS[text]]
            if value is not None:
                if given[field] is not None:
                    raise ValueError(
                        f"Threat: give {text} or {field}, not both ({text}={value!r}, {field}={given[field]!r})"
                    )
                given[field], spelled[field] = value, text
        if given["rows"] is None:
            raise TypeError("Threat: give the changed rows, r=R (or rows=R)")
        for field, value in given.items():
            object.__setattr__(self, field, value)
        self._check(spelled)

    def _check(self, spelled: dict):
        object.__setattr__(self, "rows", _check_count(spelled["rows"], self.rows))
        norms = [name for name in ("l2", "l1") if getattr(self, name) is not None]
        if norms:
            if len(norms) > 1 or self.added is not None or self.deleted is not None:
                raise ValueError("Threat: give one budget, l2 or l1 (continuous) or added/deleted (binary), not both")
            value = getattr(self, norms[0])
            if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0 or value == float("inf"):
                raise ValueError(f"{spelled[norms[0]]}={value!r}: must be a finite number >= 0")
            object.__setattr__(self, norms[0], float(value) + 0.0)  # + 0.0: no -0.0
        elif self.added is not None or self.deleted is not None:
            for field in ("added", "deleted"):
                value = getattr(self, field)
                object.__setattr__(self, field, _check_count(spelled[field], 0 if value is None else value))

    @property
    def kind(self) -> str:
        """``"l2"``, ``"l1"``, ``"bits"`` or ``"rows"`` (rows only, values unbounded)."""
        if self.l2 is not None:
            return "l2"
        if self.l1 is not None:
            return "l1"
        if self.added is not None:
            return "bits"
        return "rows"

    @property
    def axes(self) -> dict:
        """The threat as a mapping threat-grid axis → value, ``rows`` and the axes of its kind (:data:`BUDGETS`):
        ``{"rows": 1, "eps": 0.5}``, ``{"rows": 1, "added": 0, "deleted": 8}``, ``{"rows": 1, "l1": 0.5}``,
        ``{"rows": 2}`` — what :func:`parse_threat_text` reads from the threat text."""
        return {axis: getattr(self, _FIELDS[axis]) for axis in ("rows", *BUDGETS[self.kind])}

    @property
    def text(self) -> str:
        """The threat text, ``r=1,eps=0.5``, ``r=1,ra=0,rd=8``, ``r=1,l1=0.5`` or ``r=2``: what :meth:`parse`
        reads back to this threat (``str(threat)`` is the same)."""
        return ",".join(f"{TEXT_NAMES[axis]}={_number_text(value)}" for axis, value in self.axes.items())

    def __str__(self) -> str:
        return self.text

    @property
    def changeable_rows(self) -> int:
        """How many rows the adversary can actually change: the r that enters Δ(r).

        An empty budget (ε = 0, or ra + rd = 0) changes nothing; ra + rd flipped bits touch at most ra + rd
        rows. Using this r rather than ``rows`` keeps the certificate exact (tight), never less sound.
        """
        if self.kind in ("l2", "l1"):
            return self.rows if getattr(self, self.kind) > 0 else 0
        if self.kind == "bits":
            return min(self.rows, self.added + self.deleted)
        return self.rows

    @property
    def effective(self) -> Threat:
        """The same threat with only what the adversary can spend: ``changeable_rows`` rows, no budget if none."""
        rows = self.changeable_rows
        if rows > 0:
            return replace(self, rows=rows)
        empty = {"l2": {"l2": 0.0}, "l1": {"l1": 0.0}, "bits": {"added": 0, "deleted": 0}}.get(self.kind, {})
        return replace(self, rows=0, **empty)

    @classmethod
    def parse(cls, text: str) -> Threat:
        """The threat written as text: ``r=1,eps=0.5``, ``r=1,ra=0,rd=8``, ``r=1,l1=0.5``, ``r=2`` (the threat text of
        the CLI, the report and the CSV columns; :func:`parse_threat_text`); ``str(threat)`` writes it."""
        if not isinstance(text, str):
            raise ValueError(f"threat {text!r}: must be text such as r=1,eps=0.5 or r=1,ra=0,rd=8")
        axes = parse_threat_text(text)
        if "rows" not in axes:
            raise ValueError(f"threat {text!r}: give the changed rows r=R (e.g. r=1,eps=0.5)")
        return cls(**{TEXT_NAMES[axis]: value for axis, value in axes.items()})


def _number_text(value) -> str:
    """A count as an integer; a norm in the shortest of ``:g`` and ``repr`` that reads back to the same float."""
    if isinstance(value, int):
        return str(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


MAX_THREATS = 1_000_000  # threats in one grid (the product of its axes), and values on one axis


def parse_list(name: str, text: str, integer: bool) -> list:
    """A comma-separated list; ``a-b`` is an inclusive integer range, ``start:stop:step`` an inclusive float range.

    Values must be >= 0, finite and (integers) at most 2^63 − 1; a list longer than ``MAX_THREATS`` is refused
    before any range is materialised."""
    values = []
    form = "integers or ranges like 0-40" if integer else "numbers or ranges like 0:1:0.05"
    try:
        for part in text.split(","):
            part = part.strip()
            if integer and "-" in part[1:]:
                low, high = (int(v) for v in part.split("-"))
                if low < 0 or high > _INT64_MAX:
                    raise ValueError(f"--{name}={text!r}: values must be integers in [0, 2^63 - 1]")
                count = max(high - low + 1, 0)
                if len(values) + count > MAX_THREATS:
                    raise ValueError(f"--{name}={text!r}: more than {MAX_THREATS} values; give a shorter range")
                values.extend(range(low, high + 1))
            elif not integer and part.count(":") == 2:
                start, stop, step = (float(v) for v in part.split(":"))
                if not (math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)) or step <= 0:
                    raise ValueError(f"--{name}={text!r}: a range start:stop:step needs finite numbers and a step > 0")
                span = (stop - start) / step
                count = (
                    int(math.floor(span + 1e-9)) + 1 if math.isfinite(span) and span < MAX_THREATS else MAX_THREATS + 1
                )
                if len(values) + max(count, 0) > MAX_THREATS:
                    raise ValueError(f"--{name}={text!r}: more than {MAX_THREATS} values; use a larger step")
                values.extend(round(start + k * step, 12) for k in range(count) if start + k * step <= stop + 1e-12)
            else:
                values.append(int(part) if integer else float(part))
                if len(values) > MAX_THREATS:
                    raise ValueError(f"--{name}: more than {MAX_THREATS} values")
    except ValueError as error:
        if str(error).startswith(f"--{name}"):
            raise
        raise ValueError(f"--{name}={text!r}: must be a comma-separated list of {form}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--{name}={text!r}: values must be >= 0")
    if integer and max(values) > _INT64_MAX:
        raise ValueError(f"--{name}={text!r}: values must be at most 2^63 - 1, found {max(values)}")
    if not integer and not all(math.isfinite(v) for v in values):
        raise ValueError(f"--{name}={text!r}: values must be finite numbers")
    return sorted(set(values))


def parse_threat_text(text: str) -> dict:
    """A threat as text, ``r=2,eps=0.25`` or ``r=1,ra=0,rd=5`` (or the axis names rows, l2, added, deleted, l1),
    as a mapping axis → value: {rows: 2, eps: 0.25}; counts are integers, norms floats; one-line ValueError else."""
    threat: dict = {}
    for part in text.replace(" ", "").split(","):
        name, _, value = part.partition("=")
        if name not in SPELLINGS or not value:
            raise ValueError(f"threat {text!r}: expected r=R,eps=E or r=R,ra=A,rd=D (got {part!r})")
        axis = SPELLINGS[name]
        try:
            threat[axis] = int(value) if axis in INTEGER_AXES else float(value)
        except ValueError:
            what = "an integer" if axis in INTEGER_AXES else "a number"
            raise ValueError(f"threat {text!r}: {name}={value!r} is not {what}") from None
    return threat


INTEGER_AXES = ("rows", "added", "deleted")  # the axes of a threat grid holding counts; "eps", "l1" hold norms
GRID_AXES = {  # every axis of a threat grid (the CLI's threat options), with what it holds
    "rows": "changed rows r, e.g. 1,2,3 or 1-4 (default: all r at which anything is certified)",
    "eps": "l2 budgets for gaussian noise, e.g. 0,0.25,0.5 or 0:1:0.05",
    "added": "bits added (ra) for sparse noise, e.g. 0-40",
    "deleted": "bits deleted (rd) for sparse noise, e.g. 0-60",
    "l1": "l1 budgets for uniform noise, e.g. 0:2:0.1",
}


def axis_values(name: str, values) -> list:
    """One axis of a threat grid (``rows``, ``eps``, ``added`` or ``deleted``), sorted and without repeats.

    ``values`` is text as on the command line (:func:`parse_list`: ``1-4``, ``0:1:0.05``, ``0,2,5``) or an
    iterable of numbers; either way every value must be >= 0 and finite, integers on the count axes, at most
    ``MAX_THREATS`` of them."""
    integer = name in INTEGER_AXES
    if isinstance(values, str):
        return parse_list(name, values, integer)
    try:
        values = list(values)
    except TypeError:
        raise ValueError(
            f"{name}={values!r}: must be a list of numbers or text like {'0-40' if integer else '0:1:0.05'}"
        ) from None
    if len(values) > MAX_THREATS:
        raise ValueError(f"{name}: more than {MAX_THREATS} values")
    kinds = (Integral,) if integer else (Real,)
    bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, kinds)), None)
    if bad is not None or not values:
        what = "integers" if integer else "numbers"
        raise ValueError(f"{name}: must be a non-empty list of {what}, found {bad!r}")
    values = [int(v) if integer else float(v) for v in values]
    if any(not math.isfinite(v) or v < 0 for v in values) or (integer and max(values) > _INT64_MAX):
        limit = "integers in [0, 2^63 - 1]" if integer else "finite numbers >= 0"
        raise ValueError(f"{name}: values must be {limit}")
    return sorted(set(values))

"""The adversary's budget (SPEC.md §1).

An adversary changes at most ``rows`` rows (entities) of the input X and is bounded over the whole change:
either in ℓ2 norm (continuous data, ``l2`` = ε) or by the number of bits it turns 0→1 (``added`` = ra) and
1→0 (``deleted`` = rd) over all changed rows together (binary data). A threat with neither bound lets the
changed rows take any value (the threat ablation smoothing certifies).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral, Real


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name}={value!r}: must be a non-negative integer")
    return int(value)


@dataclass(frozen=True)
class Threat:
    """At most ``rows`` changed rows; optionally ‖vec(X − X̃)‖₂ ≤ ``l2``, or ``added``/``deleted`` bits.

    ``Threat(rows=r, l2=ε)`` is the continuous threat (r, ε); ``Threat(rows=r, added=ra, deleted=rd)`` the
    binary threat (r, ra, rd); ``Threat(rows=r)`` leaves the values of the changed rows free.
    """

    rows: int
    l2: float | None = None
    added: int | None = None
    deleted: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "rows", _check_count("rows", self.rows))
        if self.l2 is not None:
            if self.added is not None or self.deleted is not None:
                raise ValueError("Threat: give either l2 (continuous) or added/deleted (binary), not both")
            if isinstance(self.l2, bool) or not isinstance(self.l2, Real) or not self.l2 >= 0 or self.l2 == float("inf"):
                raise ValueError(f"l2={self.l2!r}: must be a finite number >= 0")
            object.__setattr__(self, "l2", float(self.l2))
        elif self.added is not None or self.deleted is not None:
            object.__setattr__(self, "added", _check_count("added", 0 if self.added is None else self.added))
            object.__setattr__(self, "deleted", _check_count("deleted", 0 if self.deleted is None else self.deleted))

    @property
    def kind(self) -> str:
        """``"l2"``, ``"bits"`` or ``"rows"`` (rows only, values unbounded)."""
        if self.l2 is not None:
            return "l2"
        if self.added is not None:
            return "bits"
        return "rows"

    @property
    def changeable_rows(self) -> int:
        """How many rows the adversary can actually change: the r that enters Δ(r).

        An empty budget (ε = 0, or ra + rd = 0) changes nothing; ra + rd flipped bits touch at most ra + rd
        rows. Using this r rather than ``rows`` keeps the certificate exact (tight), never less sound.
        """
        if self.kind == "l2":
            return self.rows if self.l2 > 0 else 0
        if self.kind == "bits":
            return min(self.rows, self.added + self.deleted)
        return self.rows

    @property
    def effective(self) -> "Threat":
        """The same threat with only what the adversary can spend: ``changeable_rows`` rows, no budget if none."""
        rows = self.changeable_rows
        if rows > 0:
            return replace(self, rows=rows)
        return replace(self, rows=0, **{"l2": 0.0} if self.kind == "l2" else {"added": 0, "deleted": 0} if self.kind == "bits" else {})

    def __str__(self) -> str:
        if self.kind == "l2":
            return f"(r={self.rows}, eps={self.l2:g})"
        if self.kind == "bits":
            return f"(r={self.rows}, ra={self.added}, rd={self.deleted})"
        return f"(r={self.rows})"

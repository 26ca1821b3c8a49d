"""How much of the machine other processes took during a measurement (Linux ``/proc/stat``).

Timings on a shared 2-core machine are only meaningful when nothing else runs: torch's intra-op threads wait
for a core at every parallel operator, and a busy neighbour can slow a run several-fold.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_STAT = Path("/proc/stat")


def _busy_seconds() -> float:
    """CPU seconds spent by all processes since boot (everything but idle and iowait)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, _STAT.read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    return sum(os.times()[:4])


class OtherProcesses:
    """Context manager: ``share`` is the fraction of all cores other processes used while it was open."""

    share: float | None = None

    def __enter__(self):
        self._start = (time.perf_counter(), _busy_seconds(), _own_seconds()) if _STAT.exists() else None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            wall, busy, own = (
                now - then for now, then in zip((time.perf_counter(), _busy_seconds(), _own_seconds()), self._start)
            )
            self.share = max(0.0, busy - own) / (wall * os.cpu_count())

    def __str__(self) -> str:
        return "n/a" if self.share is None else f"{self.share:.0%}"

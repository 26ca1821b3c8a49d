"""Progress bars on long work (tqdm, imported when a bar is made)."""

from __future__ import annotations


def progress_bar(enabled: bool, total: int, description: str, unit: str = "sample"):
    """A tqdm progress bar with its rate (``unit``/s) and ETA; with ``enabled`` False a silent stand-in with the
    same methods. ``total`` is the number of units expected, ``description`` the bar's label."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit=unit, unit_scale=unit == "sample", disable=not enabled, leave=False)

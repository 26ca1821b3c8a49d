"""What the report's figures share: a figure on its own Agg canvas, saving it as PNG, each method's colour
and marker, and placing point labels where they overlap nothing.

matplotlib is imported inside these functions, only when a figure is drawn: importing the report does not
import it.
"""

from __future__ import annotations

from pathlib import Path

from ...results import atomic_file
from .reading import Results

_MARKERS = "osD^vPX*"


def _figure(width: float, height: float):
    """A matplotlib figure on its own Agg canvas (no pyplot, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=130)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> None:
    with atomic_file(path, "wb") as file:
        figure.savefig(file, format="png", bbox_inches="tight")


def _style(results: Results) -> dict[str, tuple[str, str]]:
    """Colour and marker of each method."""
    from matplotlib import colormaps

    colours = colormaps["tab10"].colors
    return {
        method: (colours[i % len(colours)], _MARKERS[i % len(_MARKERS)]) for i, method in enumerate(results.methods)
    }


def _place_labels(axes, labels: list[tuple[float, float, str, str, bool]]) -> None:
    """Write each label next to its point at the first of a few offsets where it overlaps no point, no
    earlier label and stays inside the axes; front labels (last tuple entry true) are placed first and always
    shown, other labels are left out where nothing fits."""
    from matplotlib.transforms import Bbox

    renderer = axes.figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    taken = []
    for x, y, *_ in labels:
        px, py = axes.transData.transform((x, y))
        taken.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    offsets = [
        (7, 4, "left", "bottom"),
        (7, -4, "left", "top"),
        (-7, 4, "right", "bottom"),
        (-7, -4, "right", "top"),
        (0, 9, "center", "bottom"),
        (0, -9, "center", "top"),
    ]
    for x, y, text, colour, front in sorted(labels, key=lambda label: not label[4]):
        for dx, dy, ha, va in offsets:
            label = axes.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=8,
                color=colour,
                alpha=1.0 if front else 0.55,
            )
            box = label.get_window_extent(renderer)
            inside_axes = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if inside_axes and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            label.remove()
        else:
            if front:
                dx, dy, ha, va = offsets[0]
                axes.annotate(
                    text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8, color=colour
                )

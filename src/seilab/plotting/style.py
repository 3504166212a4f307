"""The one figure helper: every figure of seilab is made and saved here (one DPI, one style).

Figures are :class:`matplotlib.figure.Figure` objects on the Agg canvas (no pyplot, no global
state, no display).  Plotting functions return them; the stages save them with
:func:`save_figure` (atomically, PNG at :data:`DPI`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: Resolution of every saved figure (dots per inch).
DPI = 150
#: Sequential colour map of every figure (monotone in lightness, so greyscale-safe).
CMAP = "viridis"
#: Line styles and markers that tell curves apart without colour.
LINE_STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ((0, (5, 1, 1, 1)), "v")]
#: Font sizes and line widths of every figure.
STYLE: dict[str, float | str] = {
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 7.0,
    "lines.linewidth": 1.2,
}


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout Figure (inches) on the Agg canvas, in seilab's style."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matplotlib.rcParams.update(STYLE)  # read when artists are made; same for every figure
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG at :data:`DPI`, atomically (temporary file, then rename)."""
    from seilab.io import atomic_save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))

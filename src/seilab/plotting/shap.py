"""The one SHAP beeswarm of seilab (CE regressors and failure classifiers alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seilab import schema
from seilab.plotting.style import CMAP, new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def swarm_offsets(x: np.ndarray, nbins: int = 100, row_height: float = 0.4) -> np.ndarray:
    """Vertical offsets that spread points with similar x into a swarm (as shap's beeswarm)."""
    n = len(x)
    if n == 0:
        return np.zeros(0)
    span = float(np.ptp(x)) or 1.0
    q = np.round(nbins * (x - x.min()) / span).astype(int)
    order = np.argsort(q + np.random.default_rng(0).random(n) * 1e-3)
    ys = np.zeros(n)
    layer = 0
    last = None
    for i in order:
        if q[i] != last:
            layer = 0
        ys[i] = np.ceil(layer / 2) * ((layer % 2) * 2 - 1)
        layer += 1
        last = q[i]
    mx = np.max(np.abs(ys)) or 1.0
    return ys * (row_height / mx)


def beeswarm(
    values: np.ndarray,
    data: np.ndarray,
    columns: Sequence[str],
    *,
    title: str,
    xlabel: str,
    max_display: int = 20,
    importance: bool = False,
) -> Figure:
    """SHAP beeswarm: one row per feature (most important on top), dots coloured by value.

    Parameters
    ----------
    values
        SHAP values (rows x features).
    data
        Feature values of the same rows (rows x features), for the dot colour (5-95 %
        percentile range of each feature, low to high).
    columns
        Feature column names (labelled in the paper's vocabulary).
    title
        Figure title.
    xlabel
        Axis label of the SHAP values, with their unit.
    max_display
        Features shown at most.
    importance
        Add a bar panel of the mean |SHAP| per feature.

    Returns
    -------
    matplotlib.figure.Figure
        One row of dots per shown feature (``len(fig.axes[0].collections)`` rows).
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    values = np.asarray(values, dtype=float)
    data = np.asarray(data, dtype=float)
    imp = np.abs(values).mean(axis=0)
    order = np.argsort(imp, kind="stable")[::-1][:max_display][::-1]  # least important at bottom
    k = len(order)
    fig = new_figure(9.0 if importance else 7.0, 1.2 + 0.42 * k)
    if importance:
        ax, bx = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [2.2, 1.0]})
    else:
        ax, bx = fig.add_subplot(), None
    cmap = colormaps[CMAP]
    for row, j in enumerate(order):
        v = values[:, j]
        d = data[:, j]
        lo, hi = np.nanpercentile(d, 5), np.nanpercentile(d, 95)
        if hi <= lo:
            lo, hi = np.nanmin(d), np.nanmax(d)
        c = np.clip((d - lo) / (hi - lo), 0, 1) if hi > lo else np.full(len(d), 0.5)
        ax.scatter(
            v, row + swarm_offsets(v), c=cmap(c), s=9, alpha=0.85, linewidths=0, rasterized=True
        )
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_yticks(range(k))
    ax.set_yticklabels([schema.label(columns[j]) for j in order])
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    cb = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=cmap), ax=ax, aspect=30, pad=0.01)
    cb.set_ticks([0, 1])
    cb.set_ticklabels(["low", "high"])
    cb.set_label("feature value")
    if bx is not None:
        bx.barh(range(k), imp[order], color="0.4")
        bx.set_xlabel("mean |SHAP|")
        bx.set_title("importance")
    return fig

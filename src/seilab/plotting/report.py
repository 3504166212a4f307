"""Figures of the data-set section of the report (``seilab run``): CE against cycle.

Drawn on matplotlib's Agg canvas (no display, no global pyplot state) and saved as PNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seilab import schema
from seilab.plotting.style import new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def ce_vs_cycle(
    data: pd.DataFrame, *, threshold: float | None = 70.0, max_lines: int = 2000
) -> Figure:
    """CE against cycle for every run (thin lines), with the median and 10-90 % band per cycle.

    Parameters
    ----------
    data
        Per-cycle data set with ``run_id``, ``cycle`` and ``ce_pct`` (NaN CE is left as a gap).
    threshold
        Failure threshold drawn as a dashed line (None: not drawn).
    max_lines
        At most this many runs are drawn as lines (all runs enter the median and band).

    Returns
    -------
    matplotlib.figure.Figure
        The written file.
    """
    fig = new_figure(7.5, 4.4)
    ax = fig.add_subplot()
    runs = list(data[schema.RUN_ID].drop_duplicates())
    n = len(runs)
    alpha = float(np.clip(6.0 / max(n, 1), 0.06, 0.8))
    for _rid, grp in list(data.groupby(schema.RUN_ID, sort=False))[:max_lines]:
        g = grp.sort_values(schema.CYCLE)
        ax.plot(g[schema.CYCLE], g[schema.TARGET], lw=0.7, color="#4a6fa5", alpha=alpha)
    per_cycle = data.groupby(schema.CYCLE)[schema.TARGET]
    med = per_cycle.median()
    lo, hi = per_cycle.quantile(0.1), per_cycle.quantile(0.9)
    ax.fill_between(med.index, lo, hi, color="#f0a202", alpha=0.25, lw=0, label="10-90 % of runs")
    ax.plot(med.index, med.values, color="#c0392b", lw=2.0, label="median over runs")
    if threshold is not None:
        ax.axhline(
            threshold, color="k", ls="--", lw=1.0, label=f"failure threshold ({threshold:g} %)"
        )
    ax.axhline(100.0, color="#7f7f7f", ls=":", lw=1.0)
    ax.set_xlabel("cycle")
    ax.set_ylabel("Coulombic efficiency, CE (%)")
    ax.set_title(f"CE against cycle, {n} run{'s' if n != 1 else ''}")
    ax.legend(loc="best", fontsize=8)
    return fig

"""Figures of the failure analysis (``seilab analyze failure``).

Every figure is drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
display), with labelled axes and units, features named in the paper's vocabulary
(:func:`seilab.schema.label`) and colour maps that stay readable in greyscale (viridis, cividis,
greys); curves differ by line style and marker as well as by colour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.plotting.style import CMAP, LINE_STYLES, new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from seilab.analysis.failure import ClassifierResults, IntervalTable

HEATMAP_CMAP = CMAP
_STYLES = LINE_STYLES


def _text_colour(value: float, cmap: Any, vmin: float = 0.0, vmax: float = 1.0) -> str:
    """Black on light cells, white on dark ones (by the luminance of the cell colour)."""
    if not np.isfinite(value):
        return "black"
    r, g, b, _ = cmap((value - vmin) / (vmax - vmin) if vmax > vmin else 0.5)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _annotated_heatmap(ax: Any, values: np.ndarray, cmap_name: str, fmt: str = "{:.2f}") -> Any:
    import matplotlib

    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="white")
    masked = np.ma.masked_invalid(values)
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    fontsize = 7 if values.shape[1] > 4 else 8
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            txt = fmt.format(v) if np.isfinite(v) else "n/a"
            ax.text(
                j, i, txt, ha="center", va="center", fontsize=fontsize, color=_text_colour(v, cmap)
            )
    return im


def plot_ce_interval_heatmap(table: IntervalTable) -> Figure:
    """Heatmap of the mean min-max-normalised features in each CE interval.

    Parameters
    ----------
    table
        :func:`seilab.analysis.failure.ce_interval_table` result.

    Returns
    -------
    matplotlib.figure.Figure
    """
    norm = table.normalised
    n_feat, n_int = norm.shape
    fig = new_figure(1.0 + 0.75 * n_int + 1.8, 1.2 + 0.32 * n_feat)
    ax = fig.add_subplot()
    im = _annotated_heatmap(ax, norm.to_numpy(dtype=float), HEATMAP_CMAP)
    ax.set_yticks(range(n_feat), [schema.label(f) for f in norm.index], fontsize=8)
    ax.set_xticks(
        range(n_int),
        [f"{c}\nn={int(table.counts[c])}" for c in norm.columns],
        fontsize=7,
    )
    ax.set_xlabel("CE interval (%)  [n = cycles in the interval]")
    ax.set_title(
        "Mean normalised feature per CE interval (n/a: no cycle in the interval)", fontsize=9
    )
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("mean min-max-normalised value (0-1, dimensionless)")
    return fig


def plot_failure_vs_nonfailure(table: pd.DataFrame) -> Figure:
    """Heatmap of the normalised means of the failure and non-failure groups plus the relative change.

    Parameters
    ----------
    table
        :func:`seilab.analysis.failure.failure_vs_nonfailure_table` result.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_feat = len(table)
    fig = new_figure(8.0, 1.2 + 0.32 * n_feat)
    ax, bx = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.0, 1.6]})
    vals = table[["norm_nonfailure", "norm_failure"]].to_numpy(dtype=float)
    im = _annotated_heatmap(ax, vals, "cividis")
    n_non = int(table["n_cycles_nonfailure"].iloc[0])
    n_fail = int(table["n_cycles_failure"].iloc[0])
    ax.set_xticks(
        [0, 1], [f"non-failure\nn={n_non} cycles", f"failure\nn={n_fail} cycles"], fontsize=8
    )
    ax.set_yticks(range(n_feat), [schema.label(f) for f in table.index], fontsize=8)
    ax.set_title("mean normalised value", fontsize=9)
    cb = fig.colorbar(im, ax=ax, location="bottom", shrink=0.9)
    cb.set_label("min-max-normalised (0-1)")
    rel = table["rel_change_pct"].to_numpy(dtype=float)
    y = np.arange(n_feat)
    finite = np.isfinite(rel)
    colours = np.where(rel >= 0, "0.25", "0.7")
    bx.barh(y[finite], rel[finite], color=colours[finite], edgecolor="black", linewidth=0.5)
    for yi, r in zip(y, rel, strict=True):
        txt = f"{r:+.0f} %" if np.isfinite(r) else "n/a"
        xr = r if np.isfinite(r) else 0.0
        bx.text(xr, yi, f" {txt} ", va="center", ha="left" if xr >= 0 else "right", fontsize=7)
    bx.axvline(0.0, color="black", linewidth=0.8)
    lim = np.nanmax(np.abs(rel)) if finite.any() else 1.0
    bx.set_xlim(-1.35 * lim - 1e-9, 1.35 * lim + 1e-9)
    bx.set_xlabel("relative change, failure vs non-failure (%)")
    bx.set_title("100 (failure - non-failure) / |non-failure| of the raw means", fontsize=9)
    return fig


def plot_failure_cycle_box(
    outcomes: pd.DataFrame, stats: dict[str, Any], threshold: float
) -> Figure:
    """Boxplot of the failure cycle of the failing runs, with its summary statistics.

    Parameters
    ----------
    outcomes
        :func:`seilab.analysis.failure.run_outcomes` result.
    stats
        :func:`seilab.analysis.failure.failure_cycle_stats` result.
    threshold
        Failure threshold (%), for the axis label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fc = outcomes["failure_cycle"].dropna().to_numpy(dtype=float)
    fig = new_figure(6.5, 2.8)
    ax = fig.add_subplot()
    import matplotlib

    # ``orientation`` replaced ``vert`` in matplotlib 3.10.
    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    ax.boxplot(
        fc,
        **horizontal,
        widths=0.5,
        showfliers=False,
        medianprops={"color": "black", "linewidth": 2},
        boxprops={"facecolor": "0.85"},
        patch_artist=True,
    )
    rng = np.random.default_rng(0)
    ax.scatter(
        fc,
        1 + rng.uniform(-0.18, 0.18, fc.size),
        s=10,
        color="0.2",
        alpha=0.6,
        zorder=3,
        label="failing run",
    )
    ax.set_yticks([1], ["failing\nruns"])
    ax.set_xlabel(f"failure cycle (first cycle with CE < {threshold:g} %)")
    ax.set_title(
        f"{stats['n_failed']} of {stats['n_runs']} runs fail "
        f"({100 * stats['fraction_failing']:.0f} %); median {stats['median']:g}, "
        f"IQR {stats['q1']:g}-{stats['q3']:g} (width {stats['iqr']:g} cycles)",
        fontsize=9,
    )
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    return fig


def plot_roc_curves(results: ClassifierResults) -> Figure:
    """ROC curves of the classifiers on the held-out split, with test and CV AUC in the legend.

    Parameters
    ----------
    results
        :func:`seilab.analysis.failure.fit_classifiers` result.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib
    from sklearn.metrics import roc_curve

    cmap = matplotlib.colormaps["viridis"]
    fig = new_figure(5.6, 5.0)
    ax = fig.add_subplot()
    names = list(results.test_scores)
    for k, name in enumerate(names):
        fpr, tpr, _ = roc_curve(results.y_test, results.test_scores[name])
        m = results.metrics.loc[name]
        ls, mk = _STYLES[k % len(_STYLES)]
        cv = (
            f"; CV {m['cv_auc_mean']:.2f} ± {m['cv_auc_sd']:.2f}"
            if np.isfinite(m.get("cv_auc_mean", np.nan))
            else ""
        )
        chosen = " (chosen)" if name == results.chosen else ""
        ax.plot(
            fpr,
            tpr,
            linestyle=ls,
            marker=mk,
            markersize=3,
            markevery=0.1,
            color=cmap(k / max(len(names) - 1, 1) * 0.9),
            label=f"{name}{chosen}: AUC {m['auc']:.2f}{cv}",
        )
    ax.plot([0, 1], [0, 1], color="0.5", linewidth=0.8, linestyle=":", label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (non-failing runs flagged, fraction)")
    ax.set_ylabel("true positive rate (failing runs caught, fraction)")
    ax.set_title(f"ROC on the held-out split (n = {len(results.y_test)} runs)", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return fig


def plot_confusion_matrices(results: ClassifierResults) -> Figure:
    """Confusion matrices (counts and row percentages) of the classifiers on the held-out split.

    Parameters
    ----------
    results
        :func:`seilab.analysis.failure.fit_classifiers` result.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    names = list(results.test_scores)
    fig = new_figure(2.6 * len(names), 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    cmap = matplotlib.colormaps["Greys"]
    y = results.y_test.astype(int)
    for ax, name in zip(axes, names, strict=True):
        p = (results.test_scores[name] >= 0.5).astype(int)
        cm = np.array([[np.sum((y == a) & (p == b)) for b in (0, 1)] for a in (0, 1)])
        rows = cm.sum(axis=1, keepdims=True)
        frac = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
        ax.imshow(frac, cmap=cmap, vmin=0, vmax=1)
        for a in (0, 1):
            for b in (0, 1):
                ax.text(
                    b,
                    a,
                    f"{cm[a, b]}\n{100 * frac[a, b]:.0f} %",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=_text_colour(frac[a, b], cmap),
                )
        ax.set_xticks([0, 1], ["no failure", "failure"], fontsize=8)
        ax.set_yticks([0, 1], ["no failure", "failure"], fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(name + (" (chosen)" if name == results.chosen else ""), fontsize=9)
    fig.suptitle(
        "Confusion matrices on the held-out split (count, % of the actual class)", fontsize=9
    )
    return fig


def plot_kaplan_meier(km: pd.DataFrame, outcomes: pd.DataFrame, threshold: float) -> Figure:
    """Kaplan-Meier curve of the failure-free fraction with its 95 % band and censoring marks.

    Parameters
    ----------
    km
        :func:`seilab.analysis.failure.kaplan_meier` result.
    outcomes
        :func:`seilab.analysis.failure.run_outcomes` result (for the title).
    threshold
        Failure threshold (%), for the axis label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from seilab.analysis.failure import km_median

    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    t = km["time"].to_numpy(dtype=float)
    ax.step(t, km["survival"], where="post", color="black", label="Kaplan-Meier estimate")
    ax.fill_between(
        t, km["ci_lower"], km["ci_upper"], step="post", color="0.8", label="95 % pointwise band"
    )
    cens = km[km["n_censored"] > 0]
    ax.plot(
        cens["time"],
        cens["survival"],
        linestyle="none",
        marker="|",
        markersize=9,
        color="0.3",
        label="censored runs (end without failing)",
    )
    med = km_median(km)
    if med is not None:
        ax.axhline(0.5, color="0.5", linewidth=0.7, linestyle="--")
        ax.axvline(med, color="0.5", linewidth=0.7, linestyle="--")
        ax.annotate(
            f"median {med:g}", (med, 0.5), xytext=(4, 6), textcoords="offset points", fontsize=8
        )
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(0, max(float(t.max()), 1.0) * 1.02)
    ax.set_xlabel("cycle")
    ax.set_ylabel(f"failure-free fraction (CE ≥ {threshold:g} % so far)")
    n, d = len(outcomes), int(outcomes["event"].sum())
    ax.set_title(f"Failure-free fraction: {n} runs, {d} failures, {n - d} censored", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    return fig


def plot_early_warning(table: pd.DataFrame) -> Figure:
    """Cross-validated AUC of failure prediction against the number of cycles observed.

    Parameters
    ----------
    table
        :func:`seilab.analysis.failure.early_warning` table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    ok = table[table["auc_mean"].notna()]
    ax.errorbar(
        ok["n_cycles"],
        ok["auc_mean"],
        yerr=ok["auc_sd"].fillna(0.0),
        color="black",
        marker="o",
        capsize=3,
        label="mean ± sd over CV folds",
    )
    ax.plot(
        ok["n_cycles"],
        ok["auc_pooled"],
        linestyle="--",
        marker="s",
        color="0.5",
        markersize=4,
        label="pooled out-of-fold AUC",
    )
    for r in ok.itertuples():
        ax.annotate(
            f"{r.n_positive}/{r.n_eligible}",
            (r.n_cycles, r.auc_mean),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=7,
        )
    ax.axhline(0.5, color="0.6", linewidth=0.8, linestyle=":", label="chance")
    low = float(np.nanmin(ok["auc_mean"] - ok["auc_sd"].fillna(0.0))) if len(ok) else 0.5
    ax.set_ylim(max(0.0, min(0.3, low - 0.05)), 1.02)
    ax.set_xlabel("cycles observed, N")
    ax.set_ylabel("ROC AUC of failure after cycle N")
    ax.set_title("Early warning (labels: failing later / eligible runs)", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return fig

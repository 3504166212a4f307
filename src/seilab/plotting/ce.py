"""Figures of the CE analysis: parity plots, SHAP beeswarms, Bayesian-optimisation plots.

Figures are drawn on matplotlib's Agg canvas (no display, no global pyplot state) and saved
as PNG.  Axis labels carry units; feature names use the paper's vocabulary
(:func:`seilab.schema.label`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seilab.plotting.style import new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def parity_grid(
    panels: Mapping[str, Mapping[str, np.ndarray]],
    metrics: pd.DataFrame,
    *,
    titles: Mapping[str, str] | None = None,
) -> Figure:
    """Parity plots (predicted against simulated CE), one panel per model, train and test.

    Parameters
    ----------
    panels
        Model name -> ``{"y_train", "pred_train", "y_test", "pred_test"}`` arrays.
    metrics
        Metrics table indexed by model (``test_rmse``, ``test_r2``, ``train_r2`` columns used).
    titles
        Model name -> panel title.
    """
    names = list(panels)
    n = len(names)
    ncol = 2 if n > 1 else 1
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(5.0 * ncol, 4.6 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    allv = np.concatenate([np.concatenate([p["y_train"], p["y_test"]]) for p in panels.values()])
    lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
    pad = 0.03 * (hi - lo or 1.0)
    lims = (lo - pad, hi + pad)
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        p = panels[name]
        ax.scatter(
            p["y_train"],
            p["pred_train"],
            s=4,
            alpha=0.35,
            color="#7f7f7f",
            label="train",
            rasterized=True,
        )
        ax.scatter(
            p["y_test"],
            p["pred_test"],
            s=5,
            alpha=0.6,
            color="#1f4e9c",
            marker="^",
            label="test",
            rasterized=True,
        )
        ax.plot(lims, lims, color="black", lw=1, ls="--")
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_aspect("equal")
        ax.set_xlabel("simulated CE (%)")
        ax.set_ylabel("predicted CE (%)")
        title = (titles or {}).get(name, name)
        ax.set_title(f"({chr(97 + i)}) {title}")
        if name in metrics.index:
            m = metrics.loc[name]
            ax.text(
                0.04,
                0.96,
                f"test RMSE = {m['test_rmse']:.2f} %\ntest R$^2$ = {m['test_r2']:.3f}\n"
                f"train R$^2$ = {m['train_r2']:.3f}",
                transform=ax.transAxes,
                va="top",
                fontsize=9,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            )
        ax.legend(loc="lower right", fontsize=8, markerscale=3)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def ranking_bars(ranking: pd.DataFrame, *, top: int = 15) -> Figure:
    """Horizontal bars of mean |SHAP| per feature, one panel per model."""
    models = list(dict.fromkeys(ranking["model"]))
    fig = new_figure(5.5 * len(models), 0.8 + 0.35 * top)
    axes = np.atleast_1d(fig.subplots(1, len(models), squeeze=False)).ravel()
    for ax, m in zip(axes, models, strict=True):
        sub = ranking[ranking["model"] == m].nsmallest(top, "rank_overall")[::-1]
        ax.barh(sub["label"], sub["mean_abs_shap"], color="#1f4e9c")
        ax.set_xlabel("mean |SHAP| (percentage points of CE)")
        ax.set_title(m)
    return fig


def optimisation_history(history: pd.DataFrame, *, converged_trial: int | None) -> Figure:
    """Objective per trial and best-so-far, with the convergence trial marked.

    Parameters
    ----------
    history
        Columns ``trial`` (0-based number), ``value`` (predicted CE, %), ``best_so_far``.
    converged_trial
        Trial number at which the search converged (vertical line), or None.
    """
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    ax.scatter(history["trial"], history["value"], s=12, color="#7f7f7f", label="trial")
    ax.step(
        history["trial"],
        history["best_so_far"],
        where="post",
        color="#1f4e9c",
        lw=2,
        label="best so far",
    )
    if converged_trial is not None:
        ax.axvline(
            converged_trial,
            color="#c0392b",
            ls="--",
            lw=1.2,
            label=f"converged (trial {converged_trial})",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel("predicted mean CE (%)")
    ax.set_title("Bayesian optimisation (TPE) of pair-bonding energies")
    ax.legend(loc="lower right", fontsize=9)
    return fig


def pair_curves(
    curves: Mapping[str, pd.DataFrame],
    dft: Mapping[str, float],
    best: Mapping[str, float],
) -> Figure:
    """Predicted CE against each optimised pair energy (others at the optimum), DFT marked.

    Parameters
    ----------
    curves
        Pair name -> DataFrame with ``energy_ev``, ``ce_pct`` and optionally ``lower``/``upper``.
    dft
        Pair name -> DFT energy (eV), drawn as a red vertical line.
    best
        Pair name -> optimum energy (eV), drawn as a marker.
    """
    n = len(curves)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(4.2 * ncol, 3.4 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, (pair, df) in zip(axes, curves.items(), strict=False):
        if {"lower", "upper"} <= set(df.columns):
            ax.fill_between(
                df["energy_ev"],
                df["lower"],
                df["upper"],
                color="#1f4e9c",
                alpha=0.15,
                label="interval",
            )
        ax.plot(df["energy_ev"], df["ce_pct"], color="#1f4e9c", marker="o", ms=3)
        ax.axvline(dft[pair], color="#c0392b", lw=1.5, label=f"DFT {dft[pair]:.2f} eV")
        if pair in best:
            yb = float(np.interp(best[pair], df["energy_ev"], df["ce_pct"]))
            ax.plot(
                [best[pair]],
                [yb],
                marker="*",
                color="black",
                ms=12,
                ls="none",
                label=f"optimum {best[pair]:.1f} eV",
            )
        ax.set_xlabel(f"{pair} pair energy (eV)")
        ax.set_ylabel("predicted mean CE (%)")
        ax.legend(fontsize=7, loc="best")
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def surface_3d(
    e1: np.ndarray,
    e2: np.ndarray,
    ce: np.ndarray,
    *,
    names: tuple[str, str],
    dft: tuple[float, float],
    best: tuple[float, float] | None = None,
) -> Figure:
    """3D surface of predicted CE over two pair energies (e.g. SFO-Li x F-Li).

    Parameters
    ----------
    e1, e2
        Grids (eV) of the two energies (1-D).
    ce
        Predicted CE (%), shape ``(len(e2), len(e1))``.
    names
        Pair names of the two axes.
    dft
        DFT energies, marked on the surface.
    best
        Optimum energies, marked on the surface.
    """
    fig = new_figure(7.0, 5.6)
    ax = fig.add_subplot(projection="3d")
    E1, E2 = np.meshgrid(e1, e2)
    ax.plot_surface(E1, E2, ce, cmap="viridis", edgecolor="none", alpha=0.9)
    ax.contour(E1, E2, ce, zdir="z", offset=float(np.nanmin(ce)), cmap="viridis", levels=10)

    def _z(a: float, b: float) -> float:
        i = int(np.argmin(np.abs(e1 - a)))
        j = int(np.argmin(np.abs(e2 - b)))
        return float(ce[j, i])

    ax.scatter([dft[0]], [dft[1]], [_z(*dft)], color="#c0392b", s=50, label="DFT", depthshade=False)
    if best is not None:
        ax.scatter(
            [best[0]],
            [best[1]],
            [_z(*best)],
            color="black",
            marker="*",
            s=90,
            label="optimum",
            depthshade=False,
        )
    ax.set_xlabel(f"{names[0]} (eV)")
    ax.set_ylabel(f"{names[1]} (eV)")
    ax.set_zlabel("predicted mean CE (%)")
    ax.set_title(f"Predicted CE over {names[0]} x {names[1]}")
    ax.legend(fontsize=8)
    return fig


def verification(report: pd.DataFrame) -> Figure:
    """Predicted (surrogate) against simulated mean CE of verified proposals, with spread.

    Parameters
    ----------
    report
        Columns ``label``, ``predicted_ce_pct``, ``predicted_lower``, ``predicted_upper``,
        ``simulated_ce_pct``, ``simulated_std`` (replicate standard deviation).
    """
    fig = new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    x = report["simulated_ce_pct"].to_numpy(float)
    y = report["predicted_ce_pct"].to_numpy(float)
    xerr = report["simulated_std"].fillna(0).to_numpy(float)
    yerr = None
    if {"predicted_lower", "predicted_upper"} <= set(report.columns):
        yerr = np.vstack(
            [
                y - report["predicted_lower"].to_numpy(float),
                report["predicted_upper"].to_numpy(float) - y,
            ]
        )
        yerr = np.where(np.isfinite(yerr), yerr, 0)
    is_dft = report["label"].astype(str).str.startswith("DFT").to_numpy()
    ax.errorbar(
        x[~is_dft],
        y[~is_dft],
        xerr=xerr[~is_dft],
        yerr=None if yerr is None else yerr[:, ~is_dft],
        fmt="o",
        color="#1f4e9c",
        capsize=3,
        label="BO proposals",
    )
    if is_dft.any():
        ax.errorbar(
            x[is_dft],
            y[is_dft],
            xerr=xerr[is_dft],
            yerr=None if yerr is None else yerr[:, is_dft],
            fmt="s",
            color="#c0392b",
            capsize=3,
            label="DFT defaults",
        )
    allv = np.concatenate([x, y])
    lims = (float(np.nanmin(allv)) - 1, float(np.nanmax(allv)) + 1)
    ax.plot(lims, lims, ls="--", color="black", lw=1)
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel("simulated mean CE (%) (replicate mean ± std)")
    ax.set_ylabel("surrogate-predicted mean CE (%)")
    ax.set_title("Verification of BO proposals in the simulator")
    ax.legend(fontsize=8)
    return fig

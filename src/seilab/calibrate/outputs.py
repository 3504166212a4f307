"""What ``seilab calibrate`` writes: trial table, candidate-vs-target table, best model, figures.

Files in the output folder (each written to a temporary name, then renamed):

``trials.csv``
    One row per completed trial: number, loss, knob values, statistics, folder, simulations.
``candidates.csv`` / ``candidates.md``
    One row per target: statistic, unit, target, tolerance, source, then the best trial's value
    and z-score and the values of the next best trials.
``best-model.toml``
    The base model with the best knob values, each changed key commented with its range and
    evidence; the header records the spec and targets hashes, the trial and the loss.
    ``seilab model validate best-model.toml`` accepts it.
``figures/loss.png``, ``figures/targets.png``
    Loss against trial (with the best so far) and, per statistic, target +- tolerance against
    the best trials' values (:func:`fig_loss`, :func:`fig_targets` return the Figures).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab.calibrate.spec import CalibrationSpec, TargetSet

TOP = 3


# ------------------------------------------------------------------------------ tables
def trials_table(study: Any, spec: CalibrationSpec, targets: TargetSet) -> pd.DataFrame:
    """One row per completed trial: ``trial``, ``loss``, knob values, ``stat:<target>`` columns."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        row: dict[str, Any] = {"trial": t.number, "loss": float(t.value)}
        row.update({k.name: t.params.get(k.name) for k in spec.knobs})
        stats = t.user_attrs.get("stats", {})
        for tg in targets.targets:
            v = stats.get(tg.name)
            row[f"stat:{tg.name}"] = math.nan if v is None else float(v)
        row["folder"] = t.user_attrs.get("folder")
        row["n_runs"] = t.user_attrs.get("n_runs")
        row["run_wall_s"] = t.user_attrs.get("run_wall_s")
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["trial", "loss"])
    df = pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)
    df["best_so_far"] = df["loss"].cummin()
    return df


def _fmt(v: Any) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if math.isnan(float(v)):
            return "undefined"
        return f"{float(v):.4g}"
    return str(v)


def candidates_table(trials: pd.DataFrame, targets: TargetSet, top: int = TOP) -> pd.DataFrame:
    """Candidate-vs-target table: one row per target, the best ``top`` trials as columns."""
    from seilab.calibrate.statistics import STATISTICS

    best = trials.sort_values(["loss", "trial"]).head(top)
    rows = []
    for tg in targets.targets:
        st = STATISTICS[tg.statistic]
        stat = tg.statistic + (
            "(" + ", ".join(f"{k}={v}" for k, v in tg.params.items()) + ")" if tg.params else ""
        )
        row: dict[str, Any] = {
            "target": tg.name,
            "statistic": stat,
            "unit": st.unit,
            "value": tg.value,
            "tolerance": tg.tolerance,
        }
        for rank, (_, r) in enumerate(best.iterrows()):
            v = r[f"stat:{tg.name}"]
            tag = "best" if rank == 0 else f"#{rank + 1}"
            row[f"{tag} (trial {int(r['trial'])})"] = v
            if rank == 0:
                row["best z"] = (v - tg.value) / tg.tolerance if not math.isnan(v) else math.nan
        row["source"] = tg.source
        rows.append(row)
    loss_row: dict[str, Any] = {"target": "loss", "statistic": "mean z^2", "unit": "-"}
    for rank, (_, r) in enumerate(best.iterrows()):
        tag = "best" if rank == 0 else f"#{rank + 1}"
        loss_row[f"{tag} (trial {int(r['trial'])})"] = r["loss"]
    rows.append(loss_row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A pipe table of a DataFrame (numbers with 4 significant digits, NaN as 'undefined')."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            nan = isinstance(v, float) and math.isnan(v)
            blank = v is None or (
                nan and (r.get("target") == "loss" or c in ("value", "tolerance"))
            )
            cells.append("" if blank else _fmt(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ figures
def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fig_loss(trials: pd.DataFrame):
    """Loss of every trial and the best so far (log scale)."""
    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(trials["trial"], trials["loss"], s=14, color="tab:blue", label="trial")
    ax.step(
        trials["trial"], trials["best_so_far"], where="post", color="tab:red", label="best so far"
    )
    if (trials["loss"] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel("loss (mean z$^2$)")
    ax.legend(fontsize=8)
    return fig


def fig_targets(trials: pd.DataFrame, targets: TargetSet, top: int = TOP):
    """Per statistic: target +- tolerance and the values of the best ``top`` trials."""
    from seilab.calibrate.statistics import STATISTICS

    n = len(targets.targets)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig = _figure(3.0 * ncol, 2.2 * nrow)
    best = trials.sort_values(["loss", "trial"]).head(top)
    colors = ["tab:red", "tab:orange", "tab:olive"]
    for i, tg in enumerate(targets.targets):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        ax.errorbar(
            [0], [tg.value], yerr=[tg.tolerance], fmt="s", color="black", capsize=4, label="target"
        )
        for j, (_, r) in enumerate(best.iterrows()):
            v = r[f"stat:{tg.name}"]
            if not math.isnan(v):
                ax.plot(
                    [1 + 0.25 * j], [v], "o", color=colors[j % 3], label=f"trial {int(r['trial'])}"
                )
        ax.set_xlim(-0.6, 2.0)
        ax.set_xticks([])
        ax.set_title(tg.name, fontsize=8)
        ax.set_ylabel(STATISTICS[tg.statistic].unit, fontsize=7)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6)
    return fig


# ------------------------------------------------------------------------------ writing
def _atomic_text(text: str, path: Path) -> Path:
    from seilab.io import atomic_write_text

    return atomic_write_text(text, path)


def _save(fig: Any, path: Path) -> Path:
    from seilab.plotting.style import save_figure  # one DPI, atomic

    return save_figure(fig, path)


def write_outputs(
    res: Any,
    spec: CalibrationSpec,
    targets: TargetSet,
    model: Any,
    model_arg: str,
    cycles: int,
    study: Any,
) -> list[Path]:
    """Write every output file of a calibration (see the module docstring)."""
    from seilab.calibrate.modelfile import best_model_text, native

    out = Path(res.out)
    files = [_atomic_text(res.trials.to_csv(index=False), out / "trials.csv")]
    cand = candidates_table(res.trials, targets)
    files.append(_atomic_text(cand.to_csv(index=False), out / "candidates.csv"))
    best = res.best
    knobs = ", ".join(f"{k.name} = {_fmt(native(best[k.name]))}" for k in spec.knobs)
    md = [
        f"# Calibration `{spec.name}`: candidates against targets",
        "",
        f"Model `{model_arg}`, spec `{spec.path}`, targets `{targets.path}`; {len(res.trials)} "
        f"trials, {res.n_simulations} simulations ({res.sim_wall_s:.0f} s summed run time).",
        f"Best trial {int(best['trial'])}: loss {float(best['loss']):.4g}; {knobs}.",
        "",
        markdown(cand),
    ]
    files.append(_atomic_text("\n".join(md), out / "candidates.md"))
    text = best_model_text(best, spec, targets, model, model_arg, cycles)
    files.append(_atomic_text(text, out / "best-model.toml"))
    files.append(_save(fig_loss(res.trials), out / "figures" / "loss.png"))
    files.append(_save(fig_targets(res.trials, targets), out / "figures" / "targets.png"))
    return files

"""The optimisation driver of the ``bo`` stage: surrogate, Optuna study, outputs, verification.

It writes into the stage folder (the study database, the surrogate cache, tables, figures) and
runs the verification simulations (:mod:`seilab.stages.bo_verify`); the pure pieces live in
:mod:`seilab.analysis.optimize`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.defaults import DFT_PAIR_ENERGIES, full_energies
from seilab.analysis.optimize.space import (
    CONVERGENCE_TOL_PCT,
    GRID_HIGH,
    GRID_LOW,
    GRID_STEP_EV,
    BOSettings,
    RunSpecs,
    _n_complete,
    _n_simulator,
    best_proposals,
    convergence_trial,
    history_table,
    make_objective,
    missing_trials,
    open_study,
    run_trials,
    trial_energies,
)
from seilab.analysis.optimize.surrogate import (
    CESurrogate,
    fit_surrogate,
    pair_ranking,
    surrogate_cache_key,
)
from seilab.analysis.optimize.verify import _tell_verified, best_vs_dft, verification_verdict
from seilab.errors import AnalysisError
from seilab.io import atomic_write_csv, atomic_write_json
from seilab.stages.base import Stage, StageContext
from seilab.stages.bo import (
    BEST_ENERGIES,
    BEST_VS_DFT,
    HISTORY,
    HISTORY_PLOT,
    OUTPUTS,
    PAIR_CURVES,
    PAIR_CURVES_PLOT,
    PAIR_RANKING,
    SUMMARY,
    SURFACE,
    SURFACE_PLOT,
    SURROGATE,
    VERIFICATION,
    VERIFICATION_PLOT,
    VERIFY_DIR,
    record_bo_outputs,
    study_storage,
)
from seilab.stages.bo_verify import (
    campaign_runner,
    campaign_simulator_options,
    simulate,
    verify_campaign_dir,
)


# ---------------------------------------------------------------------- the command
@dataclass
class OptimizeResult:
    """What :func:`run_optimization` produced."""

    out: Path
    study_name: str
    storage: str
    params: list[str]
    history: pd.DataFrame
    best: pd.DataFrame
    converged_trial: int
    surrogate: CESurrogate
    settings: BOSettings = field(default_factory=BOSettings)
    verification: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def run_optimization(
    folder: str | Path | None,
    out: str | Path,
    settings: BOSettings | None = None,
    *,
    ranking: str | Path | None = None,
    run_specs: RunSpecs | None = None,
    simulator_options: Mapping[str, Any] | None = None,
    data: pd.DataFrame | None = None,
    progress: bool = True,
) -> OptimizeResult:
    """Bayesian optimisation of pair energies on the CE surrogate, with optional verification.

    Parameters
    ----------
    folder
        Campaign folder (ignored when ``data`` is given).
    out
        Output folder (the Optuna database :data:`~seilab.stages.bo.STUDY_DB`, the tables and
        figures; :data:`seilab.stages.bo.OUTPUTS`).
    settings
        The whole recipe (:class:`~seilab.analysis.optimize.BOSettings`: pairs, surrogate,
        study, verification); default ``BOSettings()``.  Its :meth:`~BOSettings.to_dict` and
        :meth:`~BOSettings.settings_hash` are recorded in ``summary.json``.
    ranking
        A ``shap_ranking.csv`` from ``seilab analyze ce`` to choose the ``top_k`` pairs when
        ``settings.params`` is ``None``; default: SHAP of the surrogate itself.
    run_specs
        Simulator callable ``(param_sets, replicates, out_dir) -> DataFrame[spec, seed,
        ce_mean_pct]``; default: :func:`campaign_runner` with ``simulator_options``.
    simulator_options
        Options of ``seilab.campaign.run_param_sets`` (``base_model``, ``cycles``, ``box``,
        ``overrides``, ``workers``, ``seed``) for the default runner; ``None`` values are left
        out.  They replace the campaign's own settings, which the default runner otherwise
        reads from ``folder/campaign.toml`` (:func:`campaign_simulator_options`), so that the
        verification simulates the model, box, cycles and ``--set`` overrides the surrogate was
        trained on.
    data
        Per-cycle data in memory instead of ``folder``.
    progress
        Show progress and step times on stderr.
    """
    import optuna

    from seilab.analysis.ce import StepTimer
    from seilab.analysis.dataset import load_campaign
    from seilab.io import versions
    from seilab.stages.base import console_steps

    bo = settings or BOSettings()
    sim_options: dict[str, Any] = {}
    if bo.verify and run_specs is None:
        # the campaign's own simulator settings, then what the caller gives explicitly
        sim_options = campaign_simulator_options(folder if data is None else None)
        sim_options.update({k: v for k, v in (simulator_options or {}).items() if v is not None})
        run_specs = campaign_runner(**sim_options)
    out = Path(out)
    timer = StepTimer(console_steps(progress))
    source = "in-memory data" if data is not None else str(folder)
    with timer.step("dataset"):
        if data is None:
            if folder is None:
                raise AnalysisError("no campaign folder given")
            data = load_campaign(folder)
    out.mkdir(parents=True, exist_ok=True)  # only once the data are known to be usable
    with timer.step(f"surrogate ({bo.surrogate})"):
        surrogate = cached_surrogate(out / SURROGATE, data, bo)
    rank_source = "given with --params"
    rank_table = None
    chosen = list(bo.params) if bo.params is not None else None
    if chosen is None:
        from seilab.analysis.explain import top_pairs

        with timer.step("pair ranking"):
            if ranking is not None:
                rp = Path(ranking)
                if not rp.is_file():
                    raise AnalysisError(f"{rp}: ranking table not found")
                rank_table = pd.read_csv(rp)
                need = {"model", "feature", "mean_abs_shap"}
                if not need <= set(rank_table.columns):
                    raise AnalysisError(
                        f"{rp}: missing column(s) {sorted(need - set(rank_table.columns))}"
                    )
                rank_source = f"mean |SHAP| ranking in {rp}" + (
                    " (pairs that beat the shadow-feature null)"
                    if "selected" in rank_table.columns
                    else ""
                )
            else:
                rank_table = pair_ranking(
                    surrogate, data, seed=bo.seed, size=bo.size, n_jobs=bo.n_jobs
                )
                rank_source = (
                    f"stable mean |SHAP| ranking of the pair energies ({bo.surrogate}, "
                    "5 refits with shadow features; pairs that beat the null)"
                )
            chosen = top_pairs(rank_table, bo.top_k)
            if "selected" in rank_table.columns:
                pair_rows = rank_table["feature"].isin(schema.PAIR_COLUMNS)
                if not rank_table.loc[pair_rows, "selected"].astype(bool).any():
                    rank_source += "; none does, so only the most important pair"
            atomic_write_csv(rank_table, out / PAIR_RANKING)
    assert chosen is not None
    attrs = {
        "params": list(chosen),
        "fingerprint": surrogate.fingerprint,
        "surrogate_model": bo.surrogate,
        "objective": f"mean predicted ce_pct over cycles 1..{len(surrogate.cycles)}, per-cycle "
        "predictions clipped to the training CE range, minus "
        f"{bo.support_penalty:g} x support penalty",
        "grid": "integer tenths of eV, 0..15 (0.0..1.5 eV)",
        "optuna_version": optuna.__version__,
        "sampler": {"name": "TPESampler", **bo.sampler_settings()},
        "dft_energies_ev": dict(DFT_PAIR_ENERGIES),
    }
    storage = study_storage(out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial on stderr
    with timer.step(f"BO ({bo.trials} trials)"):
        study = open_study(storage, bo, attrs=attrs)
        added = _search(
            study, make_objective(surrogate, chosen, bo.support_penalty), bo.trials, progress
        )

    files = _write_bo_outputs(out, study, chosen, surrogate, timer)
    hist = files["history"]
    conv = files["converged_trial"]
    best_table = files["best"]

    verification = None
    if bo.verify:
        assert run_specs is not None
        with timer.step(f"verification ({bo.rounds} round(s))"):
            verification = verify_loop(
                out, study, chosen, surrogate, data, run_specs, bo, attrs=attrs, progress=progress
            )

    best_e = {**dict(DFT_PAIR_ENERGIES), **trial_energies(study.best_trial, chosen)}
    ptab = files["prediction"].set_index("setting")
    dft_pred = float(ptab.loc["DFT defaults", "predicted_ce_pct"])
    summary = {
        "command": "seilab optimize",
        "source": source,
        "settings": bo.to_dict(),
        "settings_hash": bo.settings_hash(),
        "storage": storage,
        "study_name": bo.study_name,
        "optuna_version": optuna.__version__,
        "sampler": attrs["sampler"],
        "trials": _n_complete(study),
        "trials_added_this_run": added,
        "params": chosen,
        "params_chosen_by": rank_source,
        "pair_ranking": _ranking_summary(rank_table),
        "objective": attrs["objective"] + " with the other pairs at their DFT values",
        "surrogate": {
            "model": bo.surrogate,
            "size": bo.size,
            "simulations": surrogate.n_runs,
            "interval_halfwidth_pct": surrogate.quantile,
            "interval_level": 1 - bo.alpha,
            "test_coverage_runmean": surrogate.test_coverage,
            **surrogate.metrics,
        },
        "best_value_pct": study.best_value,
        "best_trial": study.best_trial.number,
        "best_energies_ev": {p: best_e[p] for p in chosen},
        "dft_predicted_pct": dft_pred,
        "best_predicted_pct": float(ptab.loc["BO optimum", "predicted_ce_pct"]),
        "predicted_gain_pct": float(ptab.loc["BO optimum", "predicted_gain_pct"]),
        "best_support_distance_ev": float(ptab.loc["BO optimum", "support_distance_ev"]),
        "support_reference_ev": float(ptab.loc["BO optimum", "support_reference_ev"]),
        "training_ce_range_pct": list(surrogate.ce_range) if surrogate.ce_range else None,
        "support_penalty": bo.support_penalty,
        "converged_trial": conv,
        "convergence_rule": f"first trial whose best-so-far is within {CONVERGENCE_TOL_PCT} percentage points of the final best",
        "timings_s": timer.timings,
        "versions": versions(),
    }
    if verification is not None:
        summary["verification"] = verification_verdict(verification)
        if sim_options:
            summary["verification"]["simulator_options"] = sim_options
    atomic_write_json(summary, out / SUMMARY)
    return OptimizeResult(
        out=out,
        study_name=bo.study_name,
        storage=storage,
        params=list(chosen),
        history=hist,
        best=best_table,
        converged_trial=conv,
        surrogate=surrogate,
        settings=bo,
        verification=verification,
        timings=timer.timings,
        summary=summary,
    )


def cached_surrogate(path: Path, data: pd.DataFrame, settings: BOSettings) -> CESurrogate:
    """:func:`~seilab.analysis.optimize.fit_surrogate` with the recipe's surrogate settings,
    reusing ``path`` when it holds one fitted on the same data and settings.

    A resumed study must keep the objective it started with; the cache guarantees that (and
    saves the fit).  The key is :func:`~seilab.analysis.optimize.surrogate_cache_key`.
    """
    import pickle

    from seilab.io import atomic_write_bytes

    kwargs = {
        "model": settings.surrogate,
        "seed": settings.seed,
        "size": settings.size,
        "n_jobs": settings.n_jobs,
        "alpha": settings.alpha,
    }
    key = surrogate_cache_key(data, **kwargs)
    if path.is_file():
        try:
            with path.open("rb") as fh:
                saved = pickle.load(fh)
            if saved.get("key") == key:
                return saved["surrogate"]
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
    sur = fit_surrogate(data, **kwargs)
    atomic_write_bytes(pickle.dumps({"key": key, "surrogate": sur}), path)
    return sur


def _search(study, objective, n_total: int, progress: bool) -> int:
    """:func:`~seilab.analysis.optimize.run_trials` with a rich progress bar on stderr."""
    missing = missing_trials(study, n_total)
    if not progress or missing == 0:
        return run_trials(study, objective, n_total)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("BO trials", total=missing)
        return run_trials(study, objective, n_total, callbacks=[lambda s, t: bar.advance(task)])


def _ranking_summary(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """The pair rows of the ranking that chose the pairs, with their spread (for the report)."""
    if table is None:
        return None
    pair_cols = set(schema.PAIR_COLUMNS)
    keep = [
        c
        for c in (
            "model",
            "feature",
            "mean_abs_shap",
            "mean_abs_shap_std",
            "rank_overall",
            "rank_q25",
            "rank_q75",
            "beats_null_frac",
            "selected",
        )
        if c in table.columns
    ]
    sub = table[table["feature"].isin(pair_cols)].sort_values("mean_abs_shap", ascending=False)
    return json.loads(sub[keep].head(8).to_json(orient="records"))


def _write_bo_outputs(
    out: Path, study, params: Sequence[str], surrogate: CESurrogate, timer
) -> dict[str, Any]:
    """History, best-vs-DFT table, 2D curves and the SFO-Li x F-Li surface."""
    from seilab.plotting import ce as plots
    from seilab.plotting.style import save_figure

    hist = history_table(study, params)
    conv = convergence_trial(hist)
    atomic_write_csv(hist, out / HISTORY)
    best_e = full_energies(trial_energies(study.best_trial, params))
    dft = dict(DFT_PAIR_ENERGIES)
    best_table = pd.DataFrame(
        {
            "pair": list(schema.PAIRS),
            "optimised": [p in params for p in schema.PAIRS],
            "best_ev": [best_e[p] for p in schema.PAIRS],
            "dft_ev": [dft[p] for p in schema.PAIRS],
        }
    )
    best_table["delta_ev"] = best_table["best_ev"] - best_table["dft_ev"]
    atomic_write_csv(best_table, out / BEST_ENERGIES)
    pred_table = best_vs_dft(surrogate, best_e, params)
    best_table.attrs["predicted"] = pred_table["predicted_ce_pct"].to_numpy()
    atomic_write_csv(pred_table, out / BEST_VS_DFT)
    with timer.step("BO plots"):
        save_figure(plots.optimisation_history(hist, converged_trial=conv), out / HISTORY_PLOT)
        grid = np.round(np.arange(GRID_LOW, GRID_HIGH + 1) * GRID_STEP_EV, 1)
        curves: dict[str, pd.DataFrame] = {}
        for p in params:
            sets = [{**best_e, p: float(v)} for v in grid]
            m = surrogate.predict_mean(sets)
            cl, ch = surrogate.interval(m)
            curves[p] = pd.DataFrame(
                {"pair": p, "energy_ev": grid, "ce_pct": m, "lower": cl, "upper": ch}
            )
        pd.concat(curves.values(), ignore_index=True).pipe(atomic_write_csv, out / PAIR_CURVES)
        save_figure(
            plots.pair_curves(curves, dft, {p: best_e[p] for p in params}), out / PAIR_CURVES_PLOT
        )
        a, b = "SFO-Li", "F-Li"
        sets = [{**best_e, a: float(x), b: float(yv)} for yv in grid for x in grid]
        z = surrogate.predict_mean(sets).reshape(len(grid), len(grid))
        pd.DataFrame(
            {
                f"{a} (eV)": np.tile(grid, len(grid)),
                f"{b} (eV)": np.repeat(grid, len(grid)),
                "ce_pct": z.ravel(),
            }
        ).pipe(atomic_write_csv, out / SURFACE)
        save_figure(
            plots.surface_3d(
                grid,
                grid,
                z,
                names=(a, b),
                dft=(dft[a], dft[b]),
                best=(best_e[a], best_e[b]),
            ),
            out / SURFACE_PLOT,
        )
    return {"history": hist, "converged_trial": conv, "best": best_table, "prediction": pred_table}


def verify_loop(
    out: Path,
    study,
    params: Sequence[str],
    surrogate: CESurrogate,
    data: pd.DataFrame,
    run_specs: RunSpecs,
    settings: BOSettings,
    *,
    attrs: Mapping[str, Any],
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate the best proposals (and the DFT defaults), feed the results back, repeat.

    Round ``r`` simulates the ``settings.verify`` best distinct, not yet simulated proposals of
    the current study (round 0: the main study; the DFT defaults are simulated in round 0 too),
    ``settings.replicates`` seeds each, for ``settings.rounds`` rounds.  Results are told to
    the study ``<name>-verified`` (the record of simulator evaluations).  Between rounds, runs
    written by ``run_specs`` as a campaign folder are added to the data, the surrogate is
    refitted, and a new study ``<name>-round<r>`` is seeded with every verified result
    (ask/tell) before its ``settings.trials`` surrogate trials propose the next batch.

    Returns
    -------
    pandas.DataFrame
        The verification report (also written as ``verification.csv`` and ``.png``).
    """
    from seilab.campaign import load_dataset
    from seilab.plotting import ce as plots
    from seilab.plotting.style import save_figure

    storage = study_storage(out)
    n, replicates, rounds = settings.verify, settings.replicates, settings.rounds
    verified_study = open_study(
        storage,
        settings,
        attrs={**attrs, "purpose": "simulator results"},
        name=f"{settings.study_name}-verified",
    )
    reports: list[pd.DataFrame] = []
    cur_study, cur_sur, cur_data = study, surrogate, data
    done: list[dict[str, float]] = []
    for r in range(rounds):
        props = best_proposals(cur_study, params, n, exclude=done)
        if not props and r > 0:
            break
        specs = [full_energies(p["energies"]) for p in props]
        labels = [f"round {r} proposal {i + 1}" for i in range(len(props))]
        if r == 0:
            specs.append(dict(DFT_PAIR_ENERGIES))
            labels.append("DFT defaults")
        rdir = out / VERIFY_DIR / f"round{r}"
        sim = simulate(run_specs, specs, replicates, rdir)
        pred = cur_sur.predict_mean(specs)
        lo, hi = cur_sur.interval(pred)
        rep = pd.DataFrame(
            {
                "round": r,
                "label": labels,
                **{f"{p} (eV)": [s[p] for s in specs] for p in params},
                "predicted_ce_pct": pred,
                "predicted_lower": lo,
                "predicted_upper": hi,
            }
        )
        rep["spec"] = np.arange(len(specs))
        rep = rep.merge(sim, on="spec", how="left")
        rep["within_interval"] = (rep["simulated_ce_pct"] >= rep["predicted_lower"]) & (
            rep["simulated_ce_pct"] <= rep["predicted_upper"]
        )
        reports.append(rep)
        on_grid = rep[rep["label"] != "DFT defaults"]
        _tell_verified(verified_study, params, on_grid, r)
        done += [p["energies"] for p in props]
        if r + 1 < rounds:
            try:
                extra = load_dataset(verify_campaign_dir(run_specs, specs, replicates, rdir))
                extra = extra.assign(
                    **{schema.RUN_ID: f"verify{r}-" + extra[schema.RUN_ID].astype(str)}
                )
                cur_data = pd.concat([cur_data, extra], ignore_index=True, sort=False)
            except (AnalysisError, OSError, ValueError, KeyError):
                pass  # the runner wrote no campaign folder: refit on the data we have
            cur_sur = fit_surrogate(
                cur_data,
                model=cur_sur.model,
                seed=settings.seed + r + 1,
                size=settings.size,
                n_jobs=settings.n_jobs,
                alpha=settings.alpha,
            )
            cur_study = open_study(
                storage,
                settings,
                attrs={**attrs, "fingerprint": cur_sur.fingerprint, "round": r + 1},
                name=f"{settings.study_name}-round{r + 1}",
            )
            allv = pd.concat(reports, ignore_index=True)
            _tell_verified(cur_study, params, allv[allv["label"] != "DFT defaults"], r)
            n_sim = _n_simulator(cur_study)
            _search(
                cur_study,
                make_objective(cur_sur, params, settings.support_penalty),
                settings.trials + n_sim,
                progress,
            )
    report = pd.concat(reports, ignore_index=True).drop(columns=["spec"])
    dft_sim = report.loc[report["label"] == "DFT defaults", "simulated_ce_pct"]
    if len(dft_sim):
        report["delta_vs_dft_pct"] = report["simulated_ce_pct"] - float(dft_sim.iloc[0])
    atomic_write_csv(report, out / VERIFICATION)
    save_figure(plots.verification(report), out / VERIFICATION_PLOT)
    return report


class BOStage(Stage):
    """Bayesian optimisation (Optuna TPE on a CE surrogate) with verification, ``DIR/bo``."""

    name = "bo"
    title = "Bayesian optimisation + verification"
    folder = "bo"
    summary = SUMMARY
    after = "ce"

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return OUTPUTS

    def recipe(self, ctx: StageContext) -> Any:
        """The :class:`~seilab.analysis.optimize.BOSettings` of a run (the stage's one recipe)."""
        from seilab.analysis.optimize import BOSettings

        p = ctx.preset
        return BOSettings(
            top_k=p.bo_top_k,
            surrogate=p.bo_surrogate,
            size=p.bo_size,
            n_jobs=ctx.jobs,
            trials=p.bo_trials,
            seed=ctx.seed,
            verify=p.verify,
            replicates=p.verify_replicates,
        )

    def settings(self, ctx: StageContext) -> dict[str, Any]:
        """The recipe's identity (threads left out) and the simulator of the verification."""
        from seilab.stages.campaign import campaign_identity

        return {**self.recipe(ctx).identity(), "simulator": campaign_identity(ctx)}

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from seilab.stages.ce import SHAP_RANKING, SHAP_RANKING_STABILITY

        p = ctx.preset
        # the stable ranking (refits with shadow features) when the CE stage wrote one: only
        # pairs that beat the null are optimised; the plain mean |SHAP| table has no null
        ce_dir = ctx.stage_dir("ce")
        names = (SHAP_RANKING_STABILITY, SHAP_RANKING)
        found = [ce_dir / n for n in names if (ce_dir / n).is_file()]
        res = run_optimization(
            ctx.campaign,
            out,
            self.recipe(ctx),
            ranking=found[0] if found else None,
            simulator_options={
                "base_model": ctx.model,
                "cycles": p.cycles,
                "box": None if p.box is None else list(p.box),
                "overrides": dict(p.set) or None,
                "workers": ctx.workers,
                "seed": ctx.seed,
                "backend": ctx.backend,
                "scheduler": ctx.scheduler,
            },
            progress=ctx.progress,
        )
        record_bo_outputs(out)
        note = f"converged at trial {res.converged_trial} of {res.summary['trials']}"
        v = res.summary.get("verification")
        if v:
            note += f"; verification: holds = {v.get('holds')}"
        return {"note": note}

"""The CE analysis (pure): regressors of the per-cycle CE, their metrics, intervals and SHAP.

:func:`analyse_ce` takes a data set and a :class:`CESettings` and returns a :class:`CEResult`; the
``ce`` stage (:mod:`seilab.stages.ce`, ``seilab analyze ce``) writes its files and figures.

Pipeline (all splits by simulation):

1. load the campaign folder and build the data set (features by group, target ``ce_pct``);
2. split simulations into train / calibration / test (``GroupShuffleSplit``, seeded);
3. fit the four regressors on the train simulations and score them on train and test;
4. split-conformal prediction intervals from the calibration simulations, with their measured
   coverage on the test simulations;
5. SHAP: the dense NN with the permutation explainer and XGBoost with TreeExplainer, on the same
   sample of test rows; beeswarms per feature group and a mean |SHAP| ranking table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.dataset import (
    CEDataset,
    build_ce_dataset,
    train_calib_test_split,
)
from seilab.analysis.regressors import (
    MODEL_TITLES,
    make_regressor,
    regression_metrics,
    resolve_models,
)
from seilab.analysis.uncertainty import (
    ConformalRegressor,
    conformal_quantile,
    coverage_ci,
    exchangeability_pvalue,
    group_conformal_quantile,
)
from seilab.io import versions


@dataclass
class CESettings:
    """Settings of the CE analysis (all recorded in ``summary.json``).

    Attributes
    ----------
    groups
        Feature groups (default: events, mobility, pairs).
    include_cycle
        Use ``cycle`` as a feature.
    models
        Regressors to train (default: all four).
    test_size
        Fraction of simulations in the test set.
    calib_size
        Fraction of the remaining simulations held out for conformal calibration.
    alpha
        Miscoverage of the prediction intervals (0.1: 90 % intervals).
    seed
        Seed of splits, models and SHAP sampling.
    size
        ``"full"`` (paper-size models) or ``"small"`` (fast; tests).
    n_jobs
        Threads for torch / XGBoost / Extra Trees.
    shap_samples
        Test rows explained by SHAP.
    shap_background
        Training rows of the SHAP background sample.
    shap_permutations
        Antithetic permutations per row for the model-agnostic explainer.
    stability_models
        Models whose mean |SHAP| ranking is repeated with shadow features
        (:func:`seilab.analysis.explain.stable_ranking`); empty: none.
    stability_repeats
        Refits per model (each on ``stability_subsample`` of the training simulations).
    stability_subsample
        Fraction of the training simulations per refit.
    stability_quorum
        Fraction of the refits in which a feature must beat every shadow to be ``selected``.
    """

    groups: tuple[str, ...] = ("events", "mobility", "pairs")
    include_cycle: bool = True
    models: tuple[str, ...] = tuple(MODEL_TITLES)
    test_size: float = 0.2
    calib_size: float = 0.2
    alpha: float = 0.1
    seed: int = 0
    size: str = "full"
    n_jobs: int = 2
    shap_samples: int = 200
    shap_background: int = 50
    shap_permutations: int = 1
    stability_models: tuple[str, ...] = ("xgboost",)
    stability_repeats: int = 5
    stability_subsample: float = 0.8
    stability_quorum: float = 0.8


@dataclass
class CEResult:
    """What :func:`analyse_ce` computed.

    Attributes
    ----------
    dataset
        The feature matrix, target and groups.
    metrics
        One row per regressor (train/test metrics, interval width and coverage, fit time).
    ranking
        Mean |SHAP| ranking of the explained regressors.
    models, conformal
        Fitted regressors and their conformal wrappers.
    summary
        JSON-ready summary (settings, data set, split, interval, SHAP, metrics, versions).
    predictions
        Every row, every model, with its interval and split.
    panels
        Regressor -> train/test targets and predictions (the parity figure's data).
    explained_rows
        The test rows explained by SHAP.
    shap_values
        Regressor -> its SHAP values (one row per explained row, plus ``row``, ``base_value``).
    explanations
        Regressor -> the shap Explanation.
    stability
        Ranking stability over refits with shadow features.
    timings
        Step -> seconds.
    out, files
        Set by the ``ce`` stage once it has written the outputs.
    """

    dataset: CEDataset
    metrics: pd.DataFrame
    ranking: pd.DataFrame
    models: dict[str, Any]
    conformal: dict[str, ConformalRegressor]
    summary: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    panels: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    explained_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    shap_values: dict[str, pd.DataFrame] = field(default_factory=dict)
    explanations: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    out: Path | None = None
    files: list[Path] = field(default_factory=list)
    stability: pd.DataFrame = field(default_factory=pd.DataFrame)


#: Wraps one named step of an analysis (a context manager per step): how a caller shows
#: progress, e.g. :func:`seilab.stages.base.console_steps`; the analysis itself prints nothing.
StepHook = Callable[[str], AbstractContextManager[Any]]


class StepTimer:
    """Times named steps (``timings``, seconds); ``hook`` wraps each step (progress display).

    Parameters
    ----------
    hook
        Called with the step's name; the context manager it returns is entered around the step.
        ``None``: no display.
    """

    def __init__(self, hook: StepHook | None = None) -> None:
        self.hook = hook
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with self.hook(name) if self.hook is not None else nullcontext():
            yield
        self.timings[name] = time.perf_counter() - t0


def fit_regressor(name: str, est: Any, X: pd.DataFrame, y: pd.Series, groups: pd.Series) -> Any:
    """Fit one regressor; the neural networks draw their early-stopping validation set by
    simulation (:func:`seilab.analysis.regressors.fit_grouped`)."""
    from seilab.analysis.regressors import fit_grouped

    return fit_grouped(est, X, y, groups)


def analyse_ce(
    data: pd.DataFrame,
    settings: CESettings | None = None,
    *,
    source: str = "in-memory data",
    steps: StepHook | None = None,
) -> CEResult:
    """Run the CE analysis on a per-cycle data set (pure: no file, no figure).

    Parameters
    ----------
    data
        Per-cycle data set (``seilab.campaign.load_dataset``; see ``docs/schema.md``).
    settings
        The recipe (defaults: :class:`CESettings`).
    source
        Where the data come from (recorded in the summary).
    steps
        Wraps each named step (the caller's progress display); the step times are returned in
        :attr:`CEResult.timings` whatever it is.

    Returns
    -------
    CEResult
        Metrics, predictions, parity panels, fitted models, conformal wrappers, SHAP values and
        ranking (and its stability), the JSON-ready summary and step timings.  The ``ce``
        stage (:mod:`seilab.stages.ce`) writes them.
    """
    from seilab.analysis.explain import (
        additivity_error,
        explain_model,
        explain_tree,
        sample_rows,
        shap_ranking,
        stable_ranking,
    )

    s = settings or CESettings()
    models = resolve_models(s.models)
    timer = StepTimer(steps)

    with timer.step("dataset"):
        ds = build_ce_dataset(data, groups=s.groups, include_cycle=s.include_cycle, source=source)
        split = train_calib_test_split(
            ds.groups, test_size=s.test_size, calib_size=s.calib_size, seed=s.seed
        )
        X, y, g = ds.X, ds.y, ds.groups
        Xtr, ytr, gtr = X.iloc[split.train], y.iloc[split.train], g.iloc[split.train]
        Xte, yte, gte = X.iloc[split.test], y.iloc[split.test], g.iloc[split.test]
        yca, gca = y.iloc[split.calib], g.iloc[split.calib]
        overlap = set(g.iloc[split.train]) & set(g.iloc[split.test])
        assert not overlap, f"simulations in both train and test: {sorted(overlap)[:5]}"

    fitted: dict[str, Any] = {}
    conformal: dict[str, ConformalRegressor] = {}
    rows = []
    pred_table = pd.DataFrame(
        {
            schema.RUN_ID: g.to_numpy(),
            schema.CYCLE: data_cycle(ds),
            "split": split.labels(len(y)),
            schema.TARGET: y,
        }
    )
    panels: dict[str, dict[str, np.ndarray]] = {}
    for name in models:
        with timer.step(f"fit {name}"):
            est = make_regressor(name, seed=s.seed, size=s.size, n_jobs=s.n_jobs)
            t0 = time.perf_counter()
            fit_regressor(name, est, Xtr, ytr, gtr)
            fit_s = time.perf_counter() - t0
        fitted[name] = est
        p_all = np.asarray(est.predict(X), dtype=np.float64)
        p_tr, p_te = p_all[split.train], p_all[split.test]
        m_tr = regression_metrics(ytr, p_tr)
        m_te = regression_metrics(yte, p_te)
        row: dict[str, Any] = {"model": name, "title": MODEL_TITLES[name]}
        row.update({f"train_{k}": v for k, v in m_tr.items()})
        row.update({f"test_{k}": v for k, v in m_te.items()})
        cr = ConformalRegressor(est, alpha=s.alpha)
        method = "none (no calibration simulations)"
        if len(split.calib):
            r_cal = yca.to_numpy() - p_all[split.calib]
            cr.quantile_ = group_conformal_quantile(r_cal, gca.to_numpy(), s.alpha)
            method = "simulation"
            if not np.isfinite(cr.quantile_):
                # fewer than 1/alpha - 1 calibration simulations: no simulation-level guarantee;
                # the row rule gives a finite width, flagged as not guaranteed
                cr.quantile_ = conformal_quantile(r_cal, s.alpha)
                method = "row (too few calibration simulations: coverage not guaranteed)"
            cr.n_calib_ = len(split.calib)
        conformal[name] = cr
        lo, hi = p_all - cr.quantile_, p_all + cr.quantile_
        cov = coverage_ci(yte, lo[split.test], hi[split.test], gte, seed=s.seed)
        if not np.isfinite(cr.quantile_):
            cov = dict.fromkeys(cov, np.nan)
        row.update(
            {
                "interval_level": 1 - s.alpha,
                "interval_halfwidth": cr.quantile_,
                "interval_calibration": method,
                "test_coverage": cov["coverage"],
                "test_coverage_ci95_low": cov["ci_low"],
                "test_coverage_ci95_high": cov["ci_high"],
                "test_coverage_by_simulation": cov["coverage_by_simulation"],
                "calib_test_exchangeable_p": exchangeability_pvalue(
                    yca.to_numpy() - p_all[split.calib],
                    gca.to_numpy(),
                    yte.to_numpy() - p_te,
                    gte.to_numpy(),
                    seed=s.seed,
                )
                if len(split.calib)
                else np.nan,
                "fit_s": fit_s,
                "n_train_rows": len(split.train),
                "n_calib_rows": len(split.calib),
                "n_test_rows": len(split.test),
            }
        )
        if hasattr(est, "n_epochs_"):  # the networks: epochs run and the epoch kept
            row["epochs"] = est.n_epochs_
            row["best_epoch"] = est.best_epoch_
        rows.append(row)
        pred_table[f"pred_{name}"] = p_all
        pred_table[f"lower_{name}"] = lo
        pred_table[f"upper_{name}"] = hi
        panels[name] = {
            "y_train": ytr.to_numpy(),
            "pred_train": p_tr,
            "y_test": yte.to_numpy(),
            "pred_test": p_te,
        }

    metrics = pd.DataFrame(rows).set_index("model")

    # ------------------------------------------------------------------ SHAP
    explanations: dict[str, Any] = {}
    shap_values: dict[str, pd.DataFrame] = {}
    additivity: dict[str, float] = {}
    explain_rows = sample_rows(Xte, s.shap_samples, seed=s.seed, groups=g.iloc[split.test])
    background = sample_rows(Xtr, s.shap_background, seed=s.seed + 1, groups=gtr)
    shap_models = [m for m in ("dense_nn", "xgboost") if m in fitted]
    for name in shap_models:
        with timer.step(f"SHAP {name}"):
            if name == "xgboost":
                expl = explain_tree(fitted[name], explain_rows)
            else:
                expl = explain_model(
                    fitted[name],
                    background,
                    explain_rows,
                    n_permutations=s.shap_permutations,
                    seed=s.seed,
                )
        explanations[name] = expl
        additivity[name] = additivity_error(expl, fitted[name].predict(explain_rows))
        vals = pd.DataFrame(np.asarray(expl.values), columns=explain_rows.columns)
        vals.insert(0, "row", explain_rows.index.to_numpy())
        vals["base_value"] = np.asarray(expl.base_values).reshape(-1)
        shap_values[name] = vals
    ranking = pd.DataFrame()
    if explanations:
        ranking = shap_ranking(explanations, ds.feature_groups)

    stability = pd.DataFrame()
    stab_models = [m for m in s.stability_models if m]
    if stab_models and s.stability_repeats > 0:
        with timer.step(f"ranking stability ({', '.join(stab_models)})"):
            stability = stable_ranking(
                Xtr,
                ytr,
                gtr,
                models=resolve_models(stab_models),
                repeats=s.stability_repeats,
                subsample=s.stability_subsample,
                quorum=s.stability_quorum,
                seed=s.seed,
                size=s.size,
                n_jobs=s.n_jobs,
                n_explain=s.shap_samples,
                n_background=s.shap_background,
                feature_groups=ds.feature_groups,
            )

    summary = {
        "command": "seilab analyze ce",
        "source": source,
        "settings": asdict(s),
        "dataset": {
            "rows": len(y),
            "rows_dropped_missing_target_or_feature": ds.n_dropped,
            "simulations": ds.n_runs,
            "features": ds.features,
            "feature_groups": {k: list(v) for k, v in ds.feature_groups.items()},
            "fingerprint": ds.fingerprint(),
            "split": {
                "method": "GroupShuffleSplit by run_id (test), then by run_id again (calibration)",
                "train_simulations": int(g.iloc[split.train].nunique()),
                "calib_simulations": int(g.iloc[split.calib].nunique()) if len(split.calib) else 0,
                "test_simulations": int(g.iloc[split.test].nunique()),
            },
        },
        "interval": {
            "method": "split-conformal on absolute residuals of held-out calibration "
            "simulations, pooled per simulation (equal weight, finite-sample correction "
            "with the number of simulations)",
            "level": 1 - s.alpha,
            "coverage_ci": "95 % bootstrap over test simulations",
            "exchangeability": "permutation test of per-simulation mean |residual|, "
            "calibration vs test simulations (calib_test_exchangeable_p)",
        },
        "shap": {
            "explained_rows": len(explain_rows),
            "background_rows": len(background),
            "explainers": {
                m: ("TreeExplainer" if m == "xgboost" else "PermutationExplainer")
                for m in explanations
            },
            "max_additivity_error": additivity,
            "stability": {
                "models": stab_models,
                "repeats": s.stability_repeats,
                "subsample_of_training_simulations": s.stability_subsample,
                "null": "shadow features: a permuted copy of every input (pair energies "
                "permuted across simulations, others across rows)",
                "selected_rule": f"beats every shadow in at least {s.stability_quorum:.0%} "
                "of the refits",
                "selected": {
                    m: stability.loc[
                        (stability["model"] == m) & stability["selected"], "feature"
                    ].tolist()
                    for m in stab_models
                }
                if len(stability)
                else {},
            },
        },
        "metrics": json.loads(metrics.reset_index().to_json(orient="records")),
        "timings_s": timer.timings,
        "versions": versions(),
    }
    return CEResult(
        summary=summary,
        predictions=pred_table,
        panels=panels,
        explained_rows=explain_rows,
        shap_values=shap_values,
        explanations=explanations,
        dataset=ds,
        metrics=metrics,
        ranking=ranking,
        models=fitted,
        conformal=conformal,
        timings=timer.timings,
        stability=stability,
    )


GROUP_TITLES = {
    "events": "chemical-process events",
    "mobility": "species mobility",
    "pairs": "pair-bonding energies",
    "cycle": "cycle",
}


def data_cycle(ds: CEDataset) -> np.ndarray:
    """Cycle index of every row of a data set (NaN when ``cycle`` is not a feature)."""
    if schema.CYCLE in ds.X.columns:
        return ds.X[schema.CYCLE].to_numpy()
    return np.asarray(ds.extra.get("cycle", np.full(len(ds.y), np.nan)))


def parse_list(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Split a comma-separated CLI value into a tuple (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)

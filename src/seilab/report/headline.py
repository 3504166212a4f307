"""The headline table: this run's figures against the paper's."""

from __future__ import annotations

from seilab import schema
from seilab.calibrate.validation import FAILURE_KEYS
from seilab.report.markup import _e, _Folder, _num, _p, _stage_problem, _table, fmt, pct
from seilab.report.sections_failure import _failure_summary, _no_classifier_reason
from seilab.stages import bo as bo_out
from seilab.stages import ce as ce_out
from seilab.stages import dataset as ds_out

#: The paper's headline figures (Guerrero Navarro et al., J. Phys. Chem. C 2025, 129, 14687).
PAPER: dict[str, str] = {
    "dense_nn_rmse": "≈ 1.93 %",
    "dense_nn_r2": "≈ 0.99",
    "regressor_order": "DenseNN, MLPRegressor, XGBoost, Extra Trees (best first; "
    "only the DenseNN's RMSE and R2 are given)",
    "rf_auc": "0.864 (highest)",
    "xgb_auc": "0.835 (second highest; chosen for precision and recall)",
    "other_auc": "not given in the text (Figure S5)",
    "failure_fraction": 'not stated ("almost 50 % of the simulations reached failure in the '
    'range of 75-83 cycles")',
    "median_failure_cycle": "78",
    "failure_iqr": "75-83",
    "bo_convergence": "≈ 40 of 150 trials",
    "chosen_classifier": "XGBoost",
}


def headline_rows(f: _Folder) -> list[list[str]]:
    """Rows ``[figure, paper, this run]`` of the headline table (every cell filled)."""
    rows: list[list[str]] = []
    m = f.csv("ce", ce_out.METRICS)
    prob_ce = _stage_problem(f, "ce")
    na_ce = "n/a (" + ("CE analysis not run" if m is None else "") + ")"
    for model, title in schema.REGRESSOR_TITLES.items():
        r = None
        if m is not None and "model" in m.columns and model in set(m["model"]):
            r = m[m["model"] == model].iloc[0]
        paper_rmse = PAPER["dense_nn_rmse"] if model == "dense_nn" else "not given"
        paper_r2 = PAPER["dense_nn_r2"] if model == "dense_nn" else "not given"
        rows.append(
            [
                f"{title}: test RMSE (%)",
                paper_rmse,
                fmt(r["test_rmse"]) if r is not None else (prob_ce or na_ce),
            ]
        )
        rows.append(
            [
                f"{title}: test R2",
                paper_r2,
                fmt(r["test_r2"]) if r is not None else (prob_ce or na_ce),
            ]
        )
    if m is not None and "test_rmse" in m.columns and len(m):
        order = ", ".join(
            schema.REGRESSOR_TITLES.get(x, x) for x in m.sort_values("test_rmse")["model"]
        )
        rows.append(["regressors by test RMSE", PAPER["regressor_order"], order])
    s = _failure_summary(f)
    prob_f = _stage_problem(f, "failure") or "failure analysis not run"
    aucs = (s or {}).get("classifier_auc") or {}
    reason = prob_f if s is None else "not trained: " + _no_classifier_reason(s, short=True)
    for name in schema.CLASSIFIER_NAMES:
        paper = {"RandomForest": PAPER["rf_auc"], "XGBoost": PAPER["xgb_auc"]}.get(
            name, PAPER["other_auc"]
        )
        a = aucs.get(name)
        cell = (
            f"{fmt(a.get('test'))} (CV {fmt(a.get('cv_mean'))} ± {fmt(a.get('cv_sd'))})"
            if a
            else f"n/a ({reason})"
        )
        rows.append([f"{name}: ROC AUC", paper, cell])
    rows.append(
        [
            "chosen classifier",
            PAPER["chosen_classifier"],
            str(s.get("chosen_classifier"))
            if s and s.get("chosen_classifier")
            else f"n/a ({reason})",
        ]
    )
    if s is None:
        rows.append(["failure fraction", PAPER["failure_fraction"], f"n/a ({prob_f})"])
        rows.append(["median failure cycle", PAPER["median_failure_cycle"], f"n/a ({prob_f})"])
        rows.append(["failure cycle, q1-q3", PAPER["failure_iqr"], f"n/a ({prob_f})"])
    else:
        frac = _num(s.get("fraction_failing"))
        rows.append(
            [
                "failure fraction",
                PAPER["failure_fraction"],
                f"{100 * frac:.1f} % ({s.get('n_failed')} of {s.get('n_runs')} runs)"
                + (
                    f"; {s['n_cut_by_budget']} cut by the step budget before failing (unknown)"
                    if s.get("n_cut_by_budget")
                    else ""
                )
                if frac is not None
                else "n/a",
            ]
        )
        fc = s.get("failure_cycle") or {}
        none = f"n/a (no run fails: CE never below {pct(s.get('threshold_pct'))})"
        rows.append(
            [
                "median failure cycle",
                PAPER["median_failure_cycle"],
                fmt(fc["median"]) if fc.get("median") is not None else none,
            ]
        )
        rows.append(
            [
                "failure cycle, q1-q3",
                PAPER["failure_iqr"],
                f"{fmt(fc['q1'])}-{fmt(fc['q3'])}" if fc.get("q1") is not None else none,
            ]
        )
    b = f.json("bo", bo_out.SUMMARY)
    if b is None:
        rows.append(
            [
                "BO convergence trial",
                PAPER["bo_convergence"],
                f"n/a ({_stage_problem(f, 'bo') or 'not run'})",
            ]
        )
    else:
        rows.append(
            [
                "BO convergence trial",
                PAPER["bo_convergence"],
                f"{fmt(b.get('converged_trial'))} of {fmt(b.get('trials'))} trials",
            ]
        )
        v = b.get("verification")
        holds = None if not v else v.get("holds")
        rows.append(
            [
                "BO optimum holds in the simulator",
                "not tested in the paper",
                "not verified"
                if not v
                else ("undecided" if holds is None else ("yes" if holds else "no")),
            ]
        )
    v = f.csv("dataset", ds_out.VALIDATION, dtype=str, keep_default_na=False)
    if v is None:
        why = _stage_problem(f, "dataset") or "data-set validation not written"
        rows.append(["data-set statistics against the paper", "see the paper", f"n/a ({why})"])
    else:
        # the failure rows once: from the failure stage when it ran, else from the data set
        skip = set(FAILURE_KEYS) if s is not None and "key" in v.columns else set()
        rows.extend(
            [str(r.statistic), str(r.paper), str(r.this_run)]
            for r in v.itertuples()
            if getattr(r, "key", None) not in skip
        )
    return rows


def _headline(f: _Folder) -> list[str]:
    rows = headline_rows(f)
    return [
        _p(
            "The paper's figures are from its 380-run data set of 100 cycles each; this run's are "
            "from the data of this folder (preset "
            f"<b>{_e(f.status.get('preset'))}</b>), so they agree only as far as the data do. "
            "The last rows compare the data set itself with what the paper reports; the model "
            "was calibrated on the original engine's reference run, never on these figures."
        ),
        _table(
            ["figure", "paper", "this run"],
            rows,
            left=3,
            table_id="headline-table",
            caption="Headline figures",
        ),
    ]

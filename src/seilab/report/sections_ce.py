"""Report sections of the CE analysis and the Bayesian optimisation."""

from __future__ import annotations

from seilab import schema
from seilab.report.markup import (
    _e,
    _figure,
    _Folder,
    _num,
    _opening,
    _p,
    _stage_problem,
    _table,
    fmt,
    pct,
)
from seilab.stages import bo as bo_out
from seilab.stages import ce as ce_out


def _regression(f: _Folder) -> list[str]:
    m = f.csv("ce", ce_out.METRICS)
    body, found = _opening(f, "ce", m, "No CE-analysis results in this folder.")
    if not found:
        return body
    summ = f.json("ce", ce_out.SUMMARY) or {}
    d = summ.get("dataset") or {}
    sp = d.get("split") or {}
    body.append(
        _p(
            f"Four regressors of the per-cycle CE, trained on {fmt(sp.get('train_simulations'))} "
            f"simulations, calibrated on {fmt(sp.get('calib_simulations'))} and tested on "
            f"{fmt(sp.get('test_simulations'))} held-out simulations ({fmt(d.get('rows'))} rows, "
            f"{len(d.get('features') or [])} features: events, mobilities, pair energies and the "
            "cycle). Split by simulation; intervals are split-conformal."
        )
    )
    cols = [
        ("test_rmse", "test RMSE (%)"),
        ("test_mae", "test MAE (%)"),
        ("test_r2", "test R2"),
        ("train_rmse", "train RMSE (%)"),
        ("train_r2", "train R2"),
        ("interval_halfwidth", "interval half-width (%)"),
        ("test_coverage", "interval coverage (test)"),
        ("fit_s", "fit time (s)"),
    ]
    cols = [(c, t) for c, t in cols if c in m.columns]
    rows = [
        [schema.REGRESSOR_TITLES.get(r["model"], r["model"]), *[r[c] for c, _ in cols]]
        for _, r in m.iterrows()
    ]
    body.append(
        _table(
            ["model", *[t for _, t in cols]],
            rows,
            caption="Regression metrics",
            table_id="regression-metrics",
        )
    )
    body.append(
        _p(
            "Caveat inherited from the paper's feature set: the CE is the ratio of the "
            "stripping count to the charge events, and both are among the event features, so "
            "the regressors can rebuild the CE from its own numerator and denominator (see "
            "docs/analysis.md).",
            "note",
        )
    )
    body.append(
        _figure(
            f.png("ce", ce_out.PARITY),
            "parity plots of the four regressors",
            "Predicted against simulated CE: (a) DenseNN, (b) MLPRegressor, (c) XGBoost, "
            "(d) Extra Trees; training simulations grey, test simulations blue.",
        )
    )
    return body


def _shap(f: _Folder) -> list[str]:
    prob = _stage_problem(f, "ce")
    rk = f.csv("ce", ce_out.SHAP_RANKING)
    if rk is None:
        return [_p(_e(prob or "No SHAP results in this folder."), "missing")]
    body = [
        _p(
            "SHAP values in percentage points of CE: the DenseNN with the permutation "
            "explainer, XGBoost with the exact tree explainer, on the same held-out rows. "
            "Features are ranked by mean |SHAP|."
        )
    ]
    for model in dict.fromkeys(rk["model"]):
        sub = rk[rk["model"] == model].sort_values("rank_overall").head(10)
        rows = [
            [r["label"], r["group"], r["mean_abs_shap"], r["mean_shap"]] for _, r in sub.iterrows()
        ]
        body.append(
            _table(
                ["feature", "group", "mean |SHAP| (pp CE)", "mean SHAP (pp CE)"],
                rows,
                left=2,
                caption=f"Ten most important features, {schema.REGRESSOR_TITLES.get(model, model)}",
            )
        )
    body.append(
        _figure(
            f.png("ce", ce_out.SHAP_RANKING_PLOT), "mean |SHAP| ranking", "Mean |SHAP| per feature."
        )
    )
    groups = {
        "events": "chemical-process events",
        "mobility": "species mobility",
        "pairs": "pair-bonding energies",
    }
    for model in ("dense_nn", "xgboost"):
        for grp, title in groups.items():
            data = f.png("ce", ce_out.shap_beeswarm_file(model, grp))
            if data is not None:
                body.append(
                    _figure(
                        data,
                        f"SHAP beeswarm, {schema.REGRESSOR_TITLES[model]}, {title}",
                        f"SHAP beeswarm of the {schema.REGRESSOR_TITLES[model]}: {title} (colour: feature value).",
                    )
                )
    return body


def _optimisation(f: _Folder) -> list[str]:
    s = f.json("bo", bo_out.SUMMARY)
    body, found = _opening(f, "bo", s, "No optimisation results in this folder.")
    if not found:
        return body
    sur = s.get("surrogate") or {}
    body.append(
        _p(
            f"Optuna TPE over the grid 0.0-1.5 eV (step 0.1 eV) of the pairs "
            f"<b>{_e(', '.join(s.get('params') or []))}</b> (chosen by {_e(s.get('params_chosen_by'))}); "
            f"objective: {_e(s.get('objective'))}; surrogate {_e(sur.get('model'))} trained on "
            f"{fmt(sur.get('simulations'))} simulations (interval half-width "
            f"{pct(sur.get('interval_halfwidth_pct'))}). {fmt(s.get('trials'))} trials; converged "
            f"at trial <b>{fmt(s.get('converged_trial'))}</b> ({_e(s.get('convergence_rule'))}). "
            f"Best predicted CE {pct(s.get('best_value_pct'))} against "
            f"{pct(s.get('dft_predicted_pct'))} at the DFT energies."
        )
    )
    best = f.csv("bo", bo_out.BEST_ENERGIES)
    if best is not None and "optimised" in best.columns:
        sub = best[best["optimised"].astype(str).str.lower() == "true"]
        rows = [[r["pair"], r["best_ev"], r["dft_ev"], r["delta_ev"]] for _, r in sub.iterrows()]
        body.append(
            _table(
                ["pair", "optimum (eV)", "DFT (eV)", "difference (eV)"],
                rows,
                caption="Optimised pair-bonding energies against the DFT values",
                table_id="bo-best",
            )
        )
    pred = f.csv("bo", bo_out.BEST_VS_DFT)
    if pred is not None:
        rows = [
            [r["setting"], r["predicted_ce_pct"], r["lower"], r["upper"]]
            for _, r in pred.iterrows()
        ]
        body.append(
            _table(
                ["setting", "predicted mean CE (%)", "lower", "upper"],
                rows,
                caption="Surrogate prediction",
            )
        )
    body.append(
        _figure(
            f.png("bo", bo_out.HISTORY_PLOT),
            "optimisation history",
            "Objective per trial and best so far; the dashed line marks convergence.",
        )
    )
    body.append(
        _figure(
            f.png("bo", bo_out.PAIR_CURVES_PLOT),
            "predicted CE against each optimised energy",
            "Predicted CE against each optimised energy, the others at the optimum (red: DFT value).",
        )
    )
    body.append(
        _figure(
            f.png("bo", bo_out.SURFACE_PLOT),
            "predicted CE over SFO-Li and F-Li",
            "Predicted CE over SFO-Li x F-Li, the other pairs at the optimum.",
        )
    )
    body.append("<h3>Verification in the simulator</h3>")
    ver = f.csv("bo", bo_out.VERIFICATION)
    v = s.get("verification")
    if ver is None or v is None:
        body.append(_p("The optimum was not verified in the simulator (verify = 0).", "note"))
        return body
    holds = v.get("holds")
    verdict = (
        "not decided (no simulated CE)"
        if holds is None
        else (
            '<span class="ok">holds</span>' if holds else '<span class="bad">does not hold</span>'
        )
    )
    body.append(
        _p(
            f"The best proposals and the DFT defaults were simulated with replicate seeds. "
            f"Verdict: the surrogate's optimum {verdict}"
            + (f" ({_e(v.get('rule'))})" if v.get("rule") else "")
            + f". Best simulated proposal {pct(v.get('best_simulated_pct'))} against "
            f"{pct(v.get('dft_simulated_pct'))} for the DFT defaults; "
            f"{pct(100 * (_num(v.get('predictions_within_interval')) or 0))} of the predictions "
            "fall within their interval."
        )
    )
    cols = [
        ("label", "set"),
        ("predicted_ce_pct", "predicted CE (%)"),
        ("predicted_lower", "lower"),
        ("predicted_upper", "upper"),
        ("simulated_ce_pct", "simulated CE (%)"),
        ("simulated_std", "sd"),
        ("replicates", "replicates"),
        ("within_interval", "within interval"),
    ]
    cols = [(c, t) for c, t in cols if c in ver.columns]
    rows = [[r[c] for c, _ in cols] for _, r in ver.iterrows()]
    body.append(
        _table([t for _, t in cols], rows, caption="Verification", table_id="bo-verification")
    )
    body.append(
        _figure(
            f.png("bo", bo_out.VERIFICATION_PLOT),
            "verification in the simulator",
            "Predicted (with interval) against simulated mean CE of the verified sets.",
        )
    )
    return body

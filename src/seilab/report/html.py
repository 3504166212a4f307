"""The report of a run folder: one self-contained HTML file (figures embedded as base64 PNG).

The report is built from the files in the run folder only (``seilab-run.json``,
``campaign/campaign.toml``, the stage folders' JSON, CSV and PNG files), so ``seilab report DIR``
rewrites it for any finished (or partly finished) folder without recomputing anything.  A part
that is missing (a stage not run, failed, or skipped by the analysis because the data do not
allow it) is said so in its section.  No matplotlib here: the figures are the stages' PNG files.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.errors import SeilabError
from seilab.report.pipeline import (
    REPORT_FILE,
    STAGE_DIRS,
    STAGE_TITLES,
    STAGES,
    atomic_write_text,
    read_status,
    utc_now,
)

#: Section ids and titles of the report, in order (they follow the paper).
SECTIONS: dict[str, str] = {
    "overview": "Overview",
    "dataset": "Data set",
    "regression": "CE regression: results and parity plots",
    "shap": "SHAP: what drives the CE",
    "optimisation": "Bayesian optimisation and its verification in the simulator",
    "failure": "Failure analysis",
    "classifiers": "Classifiers of failure",
    "survival": "Survival and early warning",
    "headline": "Headline figures: this run against the paper",
    "provenance": "Provenance",
}

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


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 max-width:1100px;margin:0 auto;padding:1.5em;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #1f4e9c;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #c8c8c8;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#eef2f8} td.l,th.l{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}
.note{background:#fff8e1;border-left:4px solid #f0a202;padding:.5em .8em}
.missing{background:#fdecea;border-left:4px solid #c0392b;padding:.5em .8em}
.ok{color:#1e7b34} .bad{color:#c0392b} code{background:#f3f3f3;padding:0 .2em}
nav ol{columns:2}
"""


class _Folder:
    """Read-only access to a run folder's files (None for what is missing or unreadable)."""

    def __init__(self, folder: Path, status: Mapping[str, Any]) -> None:
        self.folder = folder
        self.status = status

    def path(self, stage: str, name: str) -> Path:
        return self.folder / STAGE_DIRS[stage] / name

    def json(self, stage: str, name: str) -> dict[str, Any] | None:
        p = self.path(stage, name)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def csv(self, stage: str, name: str, **kwargs: Any) -> Any:
        import pandas as pd

        p = self.path(stage, name)
        if not p.is_file():
            return None
        try:
            return pd.read_csv(p, **kwargs)
        except (OSError, ValueError):
            return None

    def png(self, stage: str, name: str) -> bytes | None:
        p = self.path(stage, name)
        try:
            data = p.read_bytes()
        except OSError:
            return None
        return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None

    def campaign_toml(self) -> dict[str, Any]:
        p = self.path("campaign", "campaign.toml")
        try:
            return tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def stage(self, name: str) -> dict[str, Any]:
        return dict((self.status.get("stages") or {}).get(name) or {})


# ------------------------------------------------------------------------------ HTML helpers
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (integers as they are; missing as n/a)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    v = _num(value)
    if v is None:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return str(value)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def pct(value: Any) -> str:
    """A percentage: ``fmt(value) + " %"``, or n/a."""
    return "n/a" if _num(value) is None else f"{fmt(value)} %"


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{text}</p>' if cls else f"<p>{text}</p>"


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    left: int = 1,
    table_id: str | None = None,
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned text, cells are escaped."""
    out = [f'<table id="{_e(table_id)}">' if table_id else "<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append(
        "<thead><tr>"
        + "".join(
            f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
            for i, h in enumerate(header)
        )
        + "</tr></thead><tbody>"
    )
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = v if isinstance(v, str) else fmt(v)
            cells.append(f'<td class="l">{_e(text)}</td>' if i < left else f"<td>{_e(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure(data: bytes | None, alt: str, caption: str, missing: str | None = None) -> str:
    if data is None:
        return _p(_e(missing or f"Figure not available: {alt}."), "missing")
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _stage_problem(f: _Folder, stage: str) -> str | None:
    """A sentence when the stage did not finish (None when it did)."""
    rec = f.stage(stage)
    status = rec.get("status")
    if status == "done":
        return None
    title = STAGE_TITLES.get(stage, stage)
    if status == "failed":
        return f"The {title} stage failed: {rec.get('error') or 'unknown error'}."
    if status in ("running", "interrupted"):
        return (
            f"The {title} stage did not finish ({status}); run `seilab run` on this folder again."
        )
    return f"The {title} stage has not run."


def _section(sid: str, body: Sequence[str]) -> str:
    return f'<section id="{sid}"><h2>{_e(SECTIONS[sid])}</h2>' + "".join(body) + "</section>"


# ------------------------------------------------------------------------------ sections
def _overview(f: _Folder) -> list[str]:
    s = f.status
    settings = s.get("settings") or {}
    toml = f.campaign_toml()
    sim, camp = toml.get("simulator", {}), toml.get("campaign", {})
    ds = f.json("dataset", "summary.json") or {}
    body = [
        _p(
            f"Run folder <code>{_e(f.folder.resolve())}</code>, preset <b>{_e(s.get('preset'))}</b>: "
            f"{_e(settings.get('description', ''))}."
        ),
        _p(
            "This report re-creates, on this run's data, the workflow of Guerrero Navarro et al., "
            "<i>J. Phys. Chem. C</i> 2025, 129, 14687 (doi 10.1021/acs.jpcc.5c04292): a kinetic "
            "Monte Carlo data set of SEI growth on Li metal, regressors of the Coulombic "
            "efficiency (CE) with SHAP, Bayesian optimisation of the pair-bonding energies, and "
            "the failure analysis."
        ),
    ]
    if camp or sim:
        box = sim.get("box")
        body.append(
            _p(
                f"Campaign: design <b>{_e(camp.get('design'))}</b>, {_e(camp.get('n_runs'))} runs, "
                f"model <code>{_e(sim.get('model'))}</code>, {_e(sim.get('cycles'))} cycles, box "
                f"{_e(' x '.join(str(v) for v in box) if box else 'n/a')} cubes, seed "
                f"{_e(camp.get('seed'))}."
            )
        )
    rows = []
    for st in STAGES:
        rec = f.stage(st)
        status = rec.get("status", "not run")
        if st == "report" and status == "running":
            status = "this file"
        rows.append(
            [
                STAGE_TITLES[st],
                status,
                fmt(rec.get("wall_s")) if rec.get("wall_s") is not None else "",
                rec.get("error") or rec.get("note") or "",
            ]
        )
    body.append(
        _table(["stage", "status", "wall time (s)", "note"], rows, left=2, caption="Stages")
    )
    ce = ds.get("ce_pct") or {}
    frac = _num(ce.get("fraction_above_100"))
    if frac:
        body.append(
            _p(
                f"Caveat: {100 * frac:.1f} % of the simulated cycles have a CE above 100 % "
                f"(maximum {pct(ce.get('max'))}). A CE above 100 % means more Li was stripped "
                "than plated in that cycle; it is what the simulator's current default model "
                "gives, and the numbers below describe these data, not the paper's.",
                "note",
            )
        )
    toc = "".join(
        f'<li><a href="#{sid}">{_e(title)}</a></li>'
        for sid, title in SECTIONS.items()
        if sid != "overview"
    )
    body.append(f"<nav><ol>{toc}</ol></nav>")
    return body


def _dataset(f: _Folder) -> list[str]:
    body: list[str] = []
    prob = _stage_problem(f, "dataset")
    ds = f.json("dataset", "summary.json")
    if ds is None:
        return [_p(_e(prob or "No data-set summary in this folder."), "missing")]
    if prob:
        body.append(_p(_e(prob), "missing"))
    ce = ds.get("ce_pct") or {}
    cpr = ds.get("cycles_per_run") or {}
    body.append(
        _p(
            f"{fmt(ds.get('n_runs_done'))} of {fmt(ds.get('n_runs_design'))} simulations finished "
            f"({fmt(ds.get('n_runs_failed'))} failed to run), {fmt(ds.get('n_rows'))} cycles in "
            f"all, {fmt(cpr.get('min'))}-{fmt(cpr.get('max'))} cycles per run. CE over all "
            f"cycles: mean {pct(ce.get('mean'))}, median {pct(ce.get('median'))}, range "
            f"{fmt(ce.get('min'))}-{pct(ce.get('max'))}; {fmt(ce.get('n_missing'))} cycles "
            "without a CE (nothing charged)."
        )
    )
    ends = ds.get("end_reasons") or {}
    if ends:
        body.append(
            _p("End of the runs: " + _e(", ".join(f"{k} {v}" for k, v in ends.items())) + ".")
        )
    body.append(
        _figure(
            f.png("dataset", "ce_vs_cycle.png"),
            "CE against cycle for every run",
            "CE against cycle for every run (thin lines), the median over runs and the band of "
            "10-90 % of runs at each cycle; dashed: the failure threshold of the failure analysis.",
        )
    )
    desc = f.csv("dataset", "descriptive_stats.csv")
    if desc is not None and not desc.empty:
        cols = ["mean", "std", "min", "25%", "50%", "75%", "max"]
        rows = [[r["feature"], *[r.get(c) for c in cols]] for _, r in desc.iterrows()]
        body.append(
            _table(
                ["feature", "mean", "std", "min", "25 %", "50 %", "75 %", "max"],
                rows,
                caption="Descriptive statistics of the per-cycle features (all cycles of all "
                "runs; events and formations per cycle, mobility as species moved per cycle) "
                "and of the CE (%)",
                table_id="descriptive-statistics",
            )
        )
    else:
        body.append(_p("Descriptive statistics table not available.", "missing"))
    return body


def _opening(f: _Folder, stage: str, data: object, absent: str) -> tuple[list[str], bool]:
    """A section's first paragraphs: the stage's problem if any, or why there is nothing to show.

    Returns the paragraphs and whether the section's data exist.
    """
    prob = _stage_problem(f, stage)
    if data is None:
        return [_p(_e(prob or absent), "missing")], False
    return ([_p(_e(prob), "missing")] if prob else []), True


def _regression(f: _Folder) -> list[str]:
    m = f.csv("ce", "metrics.csv")
    body, found = _opening(f, "ce", m, "No CE-analysis results in this folder.")
    if not found:
        return body
    summ = f.json("ce", "summary.json") or {}
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
            f.png("ce", "parity.png"),
            "parity plots of the four regressors",
            "Predicted against simulated CE: (a) DenseNN, (b) MLPRegressor, (c) XGBoost, "
            "(d) Extra Trees; training simulations grey, test simulations blue.",
        )
    )
    return body


def _shap(f: _Folder) -> list[str]:
    prob = _stage_problem(f, "ce")
    rk = f.csv("ce", "shap_ranking.csv")
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
        _figure(f.png("ce", "shap_ranking.png"), "mean |SHAP| ranking", "Mean |SHAP| per feature.")
    )
    groups = {
        "events": "chemical-process events",
        "mobility": "species mobility",
        "pairs": "pair-bonding energies",
    }
    for model in ("dense_nn", "xgboost"):
        for grp, title in groups.items():
            data = f.png("ce", f"shap_{model}_{grp}.png")
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
    s = f.json("bo", "summary.json")
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
    best = f.csv("bo", "best_energies.csv")
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
    pred = f.csv("bo", "best_vs_dft_prediction.csv")
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
            f.png("bo", "history.png"),
            "optimisation history",
            "Objective per trial and best so far; the dashed line marks convergence.",
        )
    )
    body.append(
        _figure(
            f.png("bo", "pair_curves.png"),
            "predicted CE against each optimised energy",
            "Predicted CE against each optimised energy, the others at the optimum (red: DFT value).",
        )
    )
    body.append(
        _figure(
            f.png("bo", "surface_sfo-li_f-li.png"),
            "predicted CE over SFO-Li and F-Li",
            "Predicted CE over SFO-Li x F-Li, the other pairs at the optimum.",
        )
    )
    body.append("<h3>Verification in the simulator</h3>")
    ver = f.csv("bo", "verification.csv")
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
            f.png("bo", "verification.png"),
            "verification in the simulator",
            "Predicted (with interval) against simulated mean CE of the verified sets.",
        )
    )
    return body


def _failure_summary(f: _Folder) -> dict[str, Any] | None:
    return f.json("failure", "failure_summary.json")


def _messages(s: Mapping[str, Any]) -> str:
    msgs = s.get("messages") or []
    if not msgs:
        return ""
    return (
        '<div class="note"><p>Notes of the analysis:</p><ul>'
        + "".join(f"<li>{_e(m)}</li>" for m in msgs)
        + "</ul></div>"
    )


def _failure(f: _Folder) -> list[str]:
    s = _failure_summary(f)
    body, found = _opening(f, "failure", s, "No failure-analysis results in this folder.")
    if not found:
        return body
    thr = s.get("threshold_pct")
    n_f, n = s.get("n_failed", 0), s.get("n_runs", 0)
    frac = _num(s.get("fraction_failing"))
    body.append(
        _p(
            f"A run fails at the first cycle with CE &lt; {pct(thr)}. "
            f"<b>{fmt(n_f)} of {fmt(n)} runs fail</b>"
            + (f" ({100 * frac:.1f} %)" if frac is not None else "")
            + "."
        )
    )
    if not n_f:
        body.append(
            _p(
                f"No run fails: no cycle of any run has a CE below {pct(thr)}. The failure-cycle "
                "distribution, the failure/non-failure comparison, the classifiers, their SHAP, "
                "the survival model and the early warning need failing runs and are not computed; "
                "the CE-interval heatmap and the Kaplan-Meier curve (flat at 1) are shown.",
                "note",
            )
        )
    body.append(_messages(s))
    fc = s.get("failure_cycle") or {}
    if fc.get("median") is not None:
        body.append(
            _table(
                ["median", "q1", "q3", "IQR", "mean", "min", "max"],
                [[fc.get(k) for k in ("median", "q1", "q3", "iqr", "mean", "min", "max")]],
                left=0,
                caption="Failure cycle of the failing runs",
            )
        )
    body.append(
        _figure(
            f.png("failure", "ce_interval_heatmap.png"),
            "CE-interval heatmap",
            "Mean min-max-normalised feature per CE interval (columns: cycles per interval).",
            "CE-interval heatmap not available (no cycle in the CE intervals 10-100 %, or no "
            "event/mobility features).",
        )
    )
    if n_f:
        body.append(
            _figure(
                f.png("failure", "failure_vs_nonfailure_heatmap.png"),
                "failure against non-failure",
                "Normalised feature means of failing and non-failing runs, and their relative change.",
                "Failure/non-failure comparison not available (see the notes).",
            )
        )
        body.append(
            _figure(
                f.png("failure", "failure_cycle_boxplot.png"),
                "failure-cycle distribution",
                "Failure cycle of the failing runs (box: IQR, whiskers: min-max, dots: runs).",
            )
        )
    return body


def _no_classifier_reason(s: Mapping[str, Any], short: bool = False) -> str:
    """Why the failure analysis trained no classifier."""
    n_f, n = s.get("n_failed") or 0, s.get("n_runs") or 0
    if not n_f:
        return "no run fails"
    if n_f == n:
        return "every run fails"
    if short:
        return "too few runs of a class"
    why = [m for m in s.get("messages") or [] if "classifier" in m]
    return (
        why[0].removeprefix("classifiers skipped: ")
        if why
        else f"too few runs of a class ({n_f} failing, {n - n_f} not)"
    )


def _classifiers(f: _Folder) -> list[str]:
    prob = _stage_problem(f, "failure")
    s = _failure_summary(f)
    if s is None:
        return [_p(_e(prob or "No failure-analysis results in this folder."), "missing")]
    if not s.get("classifiers"):
        reason = _no_classifier_reason(s)
        return [
            _p(
                "The five classifiers of failure (logistic regression, random forest, gradient "
                f"boosting, CatBoost, XGBoost) were not trained: {_e(reason)}.",
                "note",
            )
        ]
    sp = s.get("classifier_split") or {}
    body = [
        _p(
            f"Classifiers of 'fails before the end of the run' from the pair energies; "
            f"{fmt(sp.get('n_train'))} training and {fmt(sp.get('n_test'))} test runs, "
            f"{fmt(sp.get('n_cv_folds'))} cross-validation folds. Chosen (explained with SHAP): "
            f"<b>{_e(s.get('chosen_classifier'))}</b> ({_e(s.get('selection_rule'))})."
        )
    ]
    keys = (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "cv_auc_mean",
        "cv_auc_sd",
        "cv_f1_mean",
    )
    rows = [[name, *[c.get(k) for k in keys]] for name, c in s["classifiers"].items()]
    body.append(
        _table(
            [
                "classifier",
                "accuracy",
                "precision",
                "recall",
                "F1",
                "test AUC",
                "CV AUC",
                "CV AUC sd",
                "CV F1",
            ],
            rows,
            caption="Classifier metrics (test split; CV: mean over folds)",
            table_id="classifier-metrics",
        )
    )
    body.append(
        _figure(f.png("failure", "roc_curves.png"), "ROC curves", "ROC curves on the test split.")
    )
    body.append(
        _figure(
            f.png("failure", "confusion_matrices.png"),
            "confusion matrices",
            "Confusion matrices (test split).",
        )
    )
    body.append(
        _figure(
            f.png("failure", "shap_chosen_classifier.png"),
            "SHAP of the chosen classifier",
            "SHAP of the chosen classifier over the pair energies (positive: towards failure).",
        )
    )
    return body


def _survival(f: _Folder) -> list[str]:
    prob = _stage_problem(f, "failure")
    s = _failure_summary(f)
    if s is None:
        return [_p(_e(prob or "No failure-analysis results in this folder."), "missing")]
    km = s.get("km_median_cycle")
    body = [
        _p(
            "Kaplan-Meier estimate of the failure-free fraction against cycle (runs that never "
            "fail are censored at their last cycle). Median failure-free cycle: "
            + (
                f"<b>{fmt(km)}</b>"
                if km is not None
                else "undefined (fewer than half the runs fail)"
            )
            + "."
        ),
        _figure(
            f.png("failure", "kaplan_meier.png"),
            "Kaplan-Meier curve",
            "Failure-free fraction with its 95 % band.",
        ),
    ]
    sm = s.get("survival_model")
    if sm:
        body.append(
            _p(
                f"Censoring-aware model of the failure cycle from the pair energies "
                f"({_e(sm.get('model'))}): held-out concordance index "
                f"<b>{fmt(sm.get('c_index_test'))}</b> (training {fmt(sm.get('c_index_train'))})."
            )
        )
    else:
        body.append(_p("No survival model: it needs failing runs.", "note"))
    ew = s.get("early_warning")
    body.append("<h3>Early warning</h3>")
    if ew:
        rows = [
            [
                r.get("n_cycles"),
                r.get("n_eligible"),
                r.get("n_positive"),
                r.get("auc_mean"),
                r.get("auc_sd"),
                r.get("note") or "",
            ]
            for r in ew
        ]
        body.append(
            _table(
                ["first N cycles", "eligible runs", "fail later", "CV AUC", "sd", "note"],
                rows,
                left=0,
                caption="Early warning of failure from the first N cycles",
                table_id="early-warning",
            )
        )
        body.append(
            _figure(
                f.png("failure", "early_warning_auc.png"),
                "early-warning AUC",
                "AUC of the early-warning model against the cycles observed.",
                "Early-warning figure not available (no N with enough runs of both classes).",
            )
        )
    else:
        body.append(_p("No early warning: it needs runs that fail after the first cycles.", "note"))
    return body


def headline_rows(f: _Folder) -> list[list[str]]:
    """Rows ``[figure, paper, this run]`` of the headline table (every cell filled)."""
    rows: list[list[str]] = []
    m = f.csv("ce", "metrics.csv")
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
    b = f.json("bo", "summary.json")
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
    return rows


def _headline(f: _Folder) -> list[str]:
    rows = headline_rows(f)
    return [
        _p(
            "The paper's figures are from its 380-run data set of 100 cycles each; this run's are "
            "from the data of this folder (preset "
            f"<b>{_e(f.status.get('preset'))}</b>), so they agree only as far as the data do."
        ),
        _table(
            ["figure", "paper", "this run"],
            rows,
            left=3,
            table_id="headline-table",
            caption="Headline figures",
        ),
    ]


def _provenance(f: _Folder) -> list[str]:
    s = f.status
    toml = f.campaign_toml()
    sim, camp = toml.get("simulator", {}), toml.get("campaign", {})
    ce = f.json("ce", "summary.json") or {}
    bo = f.json("bo", "summary.json") or {}
    fa = _failure_summary(f) or {}
    ident = s.get("campaign_identity") or {}
    rows = [
        ["model", str(sim.get("model", ident.get("model", "n/a")))],
        [
            "model hash (sha256, with the campaign-wide options)",
            str(sim.get("model_sha256", "n/a")),
        ],
        [
            "campaign seed (every run's seed derives from it)",
            fmt(camp.get("seed", ident.get("seed"))),
        ],
        ["seed scheme", str(camp.get("seed_scheme", "n/a"))],
        ["CE-analysis seed", fmt((ce.get("settings") or {}).get("seed"))],
        ["BO sampler seed", fmt((bo.get("sampler") or {}).get("seed"))],
        ["failure-analysis seed", fmt(fa.get("seed"))],
        [
            "data fingerprint (CE analysis)",
            str((ce.get("dataset") or {}).get("fingerprint", "n/a")),
        ],
        [
            "campaign options",
            json.dumps(
                {
                    k: ident.get(k)
                    for k in ("design", "n", "pairs", "replicates", "cycles", "box", "set")
                }
            ),
        ],
        ["execution", json.dumps(s.get("execution") or {})],
        ["platform", json.dumps(s.get("platform") or {})],
        ["run folder created", str(s.get("created_utc", "n/a"))],
        ["report written", utc_now()],
    ]
    body = [
        _table(
            ["item", "value"],
            rows,
            left=2,
            caption="Seeds, model and settings",
            table_id="provenance-table",
        )
    ]
    stage_rows = []
    for st in STAGES:
        rec = f.stage(st)
        stage_rows.append(
            [
                STAGE_TITLES[st],
                rec.get("status", "not run"),
                fmt(rec.get("wall_s")) if rec.get("wall_s") is not None else "",
                rec.get("started_utc") or "",
                rec.get("finished_utc") or "",
            ]
        )
    body.append(
        _table(
            ["stage", "status", "wall time (s)", "started (UTC)", "finished (UTC)"],
            stage_rows,
            left=2,
            caption="Wall time of each stage (of the session that computed it)",
            table_id="stage-times",
        )
    )
    sess = s.get("sessions") or []
    if sess:
        body.append(
            _table(
                ["started (UTC)", "command", "stages run", "stages skipped", "wall time (s)"],
                [
                    [
                        x.get("started_utc", ""),
                        x.get("command", ""),
                        ", ".join(x.get("ran") or []),
                        ", ".join(x.get("skipped") or []),
                        fmt(x.get("wall_s")),
                    ]
                    for x in sess
                ],
                left=4,
                caption="Sessions (seilab run on this folder)",
            )
        )
    vers = dict(s.get("versions") or {})
    for k, v in (toml.get("versions") or {}).items():
        vers.setdefault(k, v)
    if vers:
        body.append(
            _table(
                ["package", "version"],
                sorted(vers.items()),
                left=2,
                caption="Versions",
                table_id="versions",
            )
        )
    return body


_BUILDERS = {
    "overview": _overview,
    "dataset": _dataset,
    "regression": _regression,
    "shap": _shap,
    "optimisation": _optimisation,
    "failure": _failure,
    "classifiers": _classifiers,
    "survival": _survival,
    "headline": _headline,
    "provenance": _provenance,
}


def render_report(folder: str | Path, status: Mapping[str, Any] | None = None) -> str:
    """The report of a run folder as an HTML string.

    Parameters
    ----------
    folder
        Run folder (see :mod:`seilab.report.pipeline`).
    status
        Its status document (default: read from ``seilab-run.json``).

    Returns
    -------
    str
        A complete HTML5 document, figures embedded as ``data:`` URIs.
    """
    folder = Path(folder)
    st = dict(status) if status is not None else read_status(folder)
    f = _Folder(folder, st)
    parts = []
    for sid, build in _BUILDERS.items():
        try:
            body = build(f)
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not lose the report
            body = [
                _p(_e(f"This section could not be built: {type(exc).__name__}: {exc}"), "missing")
            ]
        parts.append(_section(sid, body))
    title = f"seilab report: {folder.resolve().name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f"<p>SEI growth on Li metal: kMC campaign, CE analysis and failure analysis. "
        f"Written {_e(utc_now())} by seilab {_e((st.get('versions') or {}).get('seilab', ''))}.</p></header>"
        "<main>" + "".join(parts) + "</main></body></html>\n"
    )


def write_report(
    folder: str | Path, output: str | Path | None = None, *, status: Mapping[str, Any] | None = None
) -> Path:
    """(Re)write the self-contained HTML report of a run folder.

    Parameters
    ----------
    folder
        Run folder written by ``seilab run`` (finished or not).
    output
        Report file (default: ``DIR/report.html``).
    status
        Status document (default: read from the folder).

    Returns
    -------
    pathlib.Path
        The report file (written atomically).

    Raises
    ------
    SeilabError
        The folder is not a seilab run folder.
    """
    folder = Path(folder)
    if status is None:
        status = read_status(folder)
    out = Path(output) if output is not None else folder / REPORT_FILE
    if out.is_dir():
        raise SeilabError(f"--output {out}: is a folder; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(render_report(folder, status), out)

"""Report sections of the failure analysis: failure, classifiers, survival."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from seilab.stages import failure as fail_out


def _failure_summary(f: _Folder) -> dict[str, Any] | None:
    return f.json("failure", fail_out.SUMMARY)


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
            f.png("failure", fail_out.CE_INTERVAL_HEATMAP),
            "CE-interval heatmap",
            "Mean min-max-normalised feature per CE interval (columns: cycles per interval).",
            "CE-interval heatmap not available (no cycle in the CE intervals 10-100 %, or no "
            "event/mobility features).",
        )
    )
    if n_f:
        body.append(
            _figure(
                f.png("failure", fail_out.VS_NONFAILURE_HEATMAP),
                "failure against non-failure",
                "Normalised feature means of failing and non-failing runs, and their relative change.",
                "Failure/non-failure comparison not available (see the notes).",
            )
        )
        body.append(
            _figure(
                f.png("failure", fail_out.CYCLE_BOXPLOT),
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
    cut = s.get("n_cut_by_budget") or 0
    if n_f == n:
        return "every run fails"
    if n_f == n - cut:
        return f"every run with a known outcome fails ({cut} cut by the step budget)"
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
        _figure(
            f.png("failure", fail_out.ROC_CURVES), "ROC curves", "ROC curves on the test split."
        )
    )
    body.append(
        _figure(
            f.png("failure", fail_out.CONFUSION_MATRICES),
            "confusion matrices",
            "Confusion matrices (test split).",
        )
    )
    body.append(
        _figure(
            f.png("failure", fail_out.SHAP_BEESWARM),
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
            f.png("failure", fail_out.KAPLAN_MEIER_PLOT),
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
                f.png("failure", fail_out.EARLY_WARNING_PLOT),
                "early-warning AUC",
                "AUC of the early-warning model against the cycles observed.",
                "Early-warning figure not available (no N with enough runs of both classes).",
            )
        )
    else:
        body.append(_p("No early warning: it needs runs that fail after the first cycles.", "note"))
    return body

"""Failure analysis: when and why the Coulombic efficiency collapses, and who predicts it first.

A run *fails* at the first cycle whose CE is below a threshold (the paper's 70 %).  This package
holds the pure computations behind ``seilab analyze failure`` (see ``docs/analysis-failure.md``):

* per-run outcomes: failure cycle, event indicator and right-censoring (:func:`failure_cycle`,
  :func:`run_outcomes`);
* the CE-interval table (mean min-max-normalised features in each 10 % CE interval) and the
  failure against non-failure table (:func:`ce_interval_table`,
  :func:`failure_vs_nonfailure_table`);
* the failure-cycle distribution (:func:`failure_cycle_stats`);
* five binary classifiers of failure from the Li-X pair energies with a seeded stratified 60/40
  split and repeated stratified cross-validation, the selection rule and SHAP values of the chosen
  one (:func:`fit_classifiers`, :func:`choose_classifier`, :func:`shap_values`);
* survival analysis: Kaplan-Meier estimate, Harrell's concordance index and an XGBoost
  accelerated-failure-time model (:func:`kaplan_meier`, :func:`concordance_index`,
  :func:`fit_survival_model`);
* early warning: failure predicted from the first N cycles only
  (:func:`early_warning_features`, :func:`early_warning_labels`, :func:`early_warning`);
* the recipe that ties them together, pure (:class:`FailureSettings`, :func:`analyse_failure`);
  the ``failure`` stage (:mod:`seilab.stages.failure`) writes its outputs.

Heavy libraries (scikit-learn, XGBoost, CatBoost, SHAP) are imported inside the functions.
"""

from __future__ import annotations

from seilab.analysis.failure.classifiers import (
    _METRICS,
    CLASSIFIER_NAMES,
    MIN_PER_CLASS,
    SELECTION_RULE,
    XGB_THREADS,
    ClassifierResults,
    binary_metrics,
    choose_classifier,
    fit_classifiers,
    make_classifiers,
    roc_auc,
    shap_importance,
    shap_values,
)
from seilab.analysis.failure.early_warning import (
    EARLY_WARNING_N,
    early_warning,
    early_warning_feature_columns,
    early_warning_features,
    early_warning_labels,
    make_early_warning_model,
)
from seilab.analysis.failure.outcomes import (
    ABOVE_RANGE,
    BELOW_RANGE,
    CE_EDGES,
    DEFAULT_THRESHOLD,
    MISSING_CE,
    IntervalTable,
    assign_ce_interval,
    ce_interval_labels,
    ce_interval_table,
    default_heatmap_features,
    failure_cycle,
    failure_cycle_stats,
    failure_region_mask,
    failure_vs_nonfailure_table,
    minmax_normalise,
    run_outcomes,
)
from seilab.analysis.failure.recipe import (
    FailureResult,
    FailureSettings,
    analyse_failure,
    failure_settings,
    jsonable,
)
from seilab.analysis.failure.survival import (
    concordance_index,
    fit_survival_model,
    kaplan_meier,
    km_median,
)

__all__ = [
    "ABOVE_RANGE",
    "BELOW_RANGE",
    "CE_EDGES",
    "CLASSIFIER_NAMES",
    "DEFAULT_THRESHOLD",
    "EARLY_WARNING_N",
    "MIN_PER_CLASS",
    "MISSING_CE",
    "SELECTION_RULE",
    "XGB_THREADS",
    "_METRICS",
    "ClassifierResults",
    "FailureResult",
    "FailureSettings",
    "IntervalTable",
    "analyse_failure",
    "assign_ce_interval",
    "binary_metrics",
    "ce_interval_labels",
    "ce_interval_table",
    "choose_classifier",
    "concordance_index",
    "default_heatmap_features",
    "early_warning",
    "early_warning_feature_columns",
    "early_warning_features",
    "early_warning_labels",
    "failure_cycle",
    "failure_cycle_stats",
    "failure_region_mask",
    "failure_settings",
    "failure_vs_nonfailure_table",
    "fit_classifiers",
    "fit_survival_model",
    "jsonable",
    "kaplan_meier",
    "km_median",
    "make_classifiers",
    "make_early_warning_model",
    "minmax_normalise",
    "roc_auc",
    "run_outcomes",
    "shap_importance",
    "shap_values",
]

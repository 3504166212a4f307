"""Failure analysis: pure functions on hand-built data (outcomes, bins, metrics, KM, C-index,
early-warning features)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seilab import schema
from seilab.analysis import failure as fa
from seilab.errors import AnalysisError


def _frame(
    series: dict[str, list[float]], extra: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """Per-cycle frame from ``{run_id: [ce of cycle 1, 2, ...]}`` (+ optional per-cycle columns)."""
    rows = []
    for run, ce in series.items():
        for k, v in enumerate(ce, start=1):
            row = {schema.RUN_ID: run, schema.CYCLE: k, schema.TARGET: v}
            for col, vals in (extra or {}).items():
                row[col] = vals[k - 1]
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ failure cycle, censoring
@pytest.mark.parametrize(
    ("ce", "expected"),
    [
        ([95.0, 96.0, 94.0, 99.0], None),  # never fails
        ([50.0, 95.0, 96.0], 1),  # fails at once
        ([95.0, 65.0, 90.0, 92.0], 2),  # dips and recovers: the first crossing counts
        ([70.0, 70.0, 69.99], 3),  # exactly 70 is not a failure (strictly below)
        ([math.nan, 95.0, math.nan, 60.0], 4),  # NaN CE (no charge) is never a failure
        ([], None),
    ],
)
def test_failure_cycle_hand_series(ce: list[float], expected: int | None) -> None:
    assert fa.failure_cycle(ce, threshold=70.0) == expected


def test_failure_cycle_uses_cycle_numbers_and_order() -> None:
    assert fa.failure_cycle([60.0, 90.0, 95.0], cycles=[7, 5, 6]) == 7
    assert fa.failure_cycle([90.0, 60.0], cycles=[3, 4], threshold=50.0) is None
    with pytest.raises(ValueError):
        fa.failure_cycle([1.0, 2.0], cycles=[1])


def test_run_outcomes_censoring_and_labels() -> None:
    data = _frame(
        {
            "never": [95, 96, 94, 99, 97],
            "at_once": [50, 95, 96, 95, 95],
            "recovers": [95, 65, 90, 92, 93],
            "short": [95, 96, 97],  # ends early, never fails: censored at 3
            "nan": [math.nan, 95, math.nan, 60, 90],
        }
    )
    data = data.sample(frac=1.0, random_state=1)  # row order must not matter
    out = fa.run_outcomes(data, threshold=70.0)
    assert out.loc["never", "event"] == False  # noqa: E712
    assert math.isnan(out.loc["never", "failure_cycle"])
    assert out.loc["never", "time"] == 5
    assert out.loc["at_once", "failure_cycle"] == 1 and out.loc["at_once", "time"] == 1
    assert out.loc["recovers", "failure_cycle"] == 2
    assert out.loc["short", "time"] == 3 and out.loc["short", "last_cycle"] == 3
    assert out.loc["nan", "failure_cycle"] == 4 and out.loc["nan", "n_ce_missing"] == 2
    assert out["label"].to_dict() == {
        "at_once": 1.0,
        "nan": 1.0,
        "never": 0.0,
        "recovers": 1.0,
        "short": 0.0,
    }
    # consistency with the scalar function
    for run, g in data.groupby(schema.RUN_ID):
        fc = fa.failure_cycle(g[schema.TARGET], g[schema.CYCLE])
        assert (fc is None and not out.loc[run, "event"]) or fc == out.loc[run, "failure_cycle"]
    stats = fa.failure_cycle_stats(out)
    assert stats["n_runs"] == 5 and stats["n_failed"] == 3
    assert stats["fraction_failing"] == pytest.approx(0.6)
    assert stats["n_censored_early"] == 1  # "short"
    assert stats["median"] == 2.0 and stats["q1"] == 1.5 and stats["q3"] == 3.0
    assert stats["iqr"] == 1.5


def test_run_outcomes_horizon_excludes_runs_not_seen_to_it() -> None:
    data = _frame({"late": [95, 95, 95, 95, 60], "short": [95, 95], "early": [95, 60, 60]})
    out = fa.run_outcomes(data, threshold=70.0, horizon=4)
    assert out.loc["late", "label"] == 0.0  # fails after the horizon
    assert math.isnan(out.loc["short", "label"])  # ends before 4 without failing: unknown
    assert out.loc["early", "label"] == 1.0


def test_runs_cut_by_the_step_budget_have_no_label() -> None:
    """A run its compute budget ended is censored: no failure label unless it failed first."""
    series = {"natural": [95, 96, 97, 95], "cut": [95, 96], "cut_failed": [95, 50], "f": [60, 60]}
    reasons = {"natural": "exhausted", "cut": "step_limit", "cut_failed": "step_limit"}
    data = _frame(series)
    data["end_reason"] = data[schema.RUN_ID].map(reasons).fillna("completed")
    for horizon in (None, 2):
        out = fa.run_outcomes(data, threshold=70.0, horizon=horizon)
        assert out["cut_by_budget"].to_dict() == {
            "cut": True, "cut_failed": True, "f": False, "natural": False
        }  # fmt: skip
        if horizon is None:
            assert math.isnan(out.loc["cut", "label"])  # would it have failed? unknown
        else:
            assert out.loc["cut", "label"] == 0.0  # seen without failure up to the horizon
        assert out.loc["cut_failed", "label"] == 1.0 and out.loc["f", "label"] == 1.0
        assert out.loc["natural", "label"] == 0.0
        assert out.loc["cut", "time"] == 2 and not out.loc["cut", "event"]  # censored at 2
    stats = fa.failure_cycle_stats(fa.run_outcomes(data, threshold=70.0))
    assert stats["n_cut_by_budget"] == 1 and stats["n_failed"] == 2
    assert stats["fraction_failing"] == pytest.approx(0.5)
    assert stats["fraction_failing_known"] == pytest.approx(2 / 3)
    assert stats["n_censored_early"] == 0  # "cut" ends early, but by the budget: counted apart
    # without the column (an older data set) nothing changes
    out = fa.run_outcomes(data.drop(columns="end_reason"), threshold=70.0)
    assert out.loc["cut", "label"] == 0.0 and not out["cut_by_budget"].any()


def test_run_outcomes_carries_pair_energies_and_checks_columns() -> None:
    col = schema.PAIR_COLUMNS[0]
    data = _frame({"a": [95, 50], "b": [95, 96]}, extra={col: [0.3, 0.3]})
    out = fa.run_outcomes(data)
    assert out[col].tolist() == [0.3, 0.3]
    with pytest.raises(AnalysisError, match="ce_pct"):
        fa.run_outcomes(data.drop(columns=[schema.TARGET]))


def test_failure_cycle_stats_without_failures() -> None:
    out = fa.run_outcomes(_frame({"a": [95, 96], "b": [97, 98]}))
    stats = fa.failure_cycle_stats(out)
    assert stats["n_failed"] == 0 and stats["fraction_failing"] == 0.0
    assert stats["median"] is None and stats["iqr"] is None


# ------------------------------------------------------------------ CE intervals
def test_ce_interval_edges() -> None:
    ce = [10.0, 20.0, 70.0, 100.0, 9.999, 100.0001, math.nan, 0.0, 95.0, 89.999, 19.999, 69.99]
    codes = fa.assign_ce_interval(ce)
    assert codes.tolist() == [
        0,
        1,
        6,
        8,
        fa.BELOW_RANGE,
        fa.ABOVE_RANGE,
        fa.MISSING_CE,
        fa.BELOW_RANGE,
        8,
        7,
        0,
        5,
    ]
    labels = fa.ce_interval_labels()
    assert labels[0] == "[10, 20)" and labels[6] == "[70, 80)" and labels[-1] == "[90, 100]"
    assert len(labels) == 9
    with pytest.raises(ValueError):
        fa.assign_ce_interval([50.0], edges=[10.0, 10.0])


def test_ce_interval_table_means_and_outside_counts() -> None:
    feat = "n_rxn_fsi"
    data = pd.DataFrame(
        {
            schema.TARGET: [15.0, 19.0, 95.0, 100.0, 101.0, 5.0, math.nan],
            feat: [0.0, 2.0, 10.0, 6.0, 100.0, 50.0, 7.0],
            "mob_fsi": [1.0] * 7,  # constant: dropped
        }
    )
    t = fa.ce_interval_table(data, [feat, "mob_fsi"])
    assert t.dropped == ["mob_fsi"]
    assert t.absolute.loc[feat, "[10, 20)"] == pytest.approx(1.0)
    assert t.absolute.loc[feat, "[90, 100]"] == pytest.approx(8.0)
    # normalised over all rows: min 0, max 100
    assert t.normalised.loc[feat, "[10, 20)"] == pytest.approx(0.01)
    assert t.normalised.loc[feat, "[90, 100]"] == pytest.approx(0.08)
    assert math.isnan(t.normalised.loc[feat, "[50, 60)"])  # empty interval
    assert t.counts["[10, 20)"] == 2 and t.counts["[90, 100]"] == 2 and t.counts.sum() == 4
    assert t.outside == {"below": 1, "above": 1, "missing": 1}


def test_failure_vs_nonfailure_relative_change() -> None:
    data = _frame(
        {"f": [95, 60, 50], "ok": [95, 96, 97]},
        extra={"n_rxn_fsi": [0.0, 0.0, 0.0]},
    )
    data["n_rxn_fsi"] = [4.0, 8.0, 12.0, 2.0, 4.0, 6.0]
    out = fa.run_outcomes(data)
    by_run = fa.failure_vs_nonfailure_table(data, out, ["n_rxn_fsi"], grouping="run")
    row = by_run.loc["n_rxn_fsi"]
    assert row["mean_failure"] == 8.0 and row["mean_nonfailure"] == 4.0
    assert row["rel_change_pct"] == pytest.approx(100.0)
    assert row["norm_failure"] == pytest.approx(0.6) and row["norm_nonfailure"] == pytest.approx(
        0.2
    )
    by_cycle = fa.failure_vs_nonfailure_table(data, out, ["n_rxn_fsi"], grouping="cycle")
    # failure region = cycles 2, 3 of run f (8, 12); the rest (4, 2, 4, 6) is non-failure
    assert by_cycle.loc["n_rxn_fsi", "mean_failure"] == 10.0
    assert by_cycle.loc["n_rxn_fsi", "mean_nonfailure"] == 4.0
    assert by_cycle.loc["n_rxn_fsi", "rel_change_pct"] == pytest.approx(150.0)
    none_fail = data[data[schema.RUN_ID] == "ok"]
    with pytest.raises(AnalysisError, match="failure group is empty"):
        fa.failure_vs_nonfailure_table(none_fail, fa.run_outcomes(none_fail), ["n_rxn_fsi"])


# ------------------------------------------------------------------ metrics
def test_binary_metrics_hand_checked() -> None:
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    p = [1, 0, 1, 0, 1, 1, 0, 1]
    s = [0.9, 0.4, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7]
    m = fa.binary_metrics(y, p, s)
    # TP 3, FP 2, FN 1, TN 2
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # positives {.9,.8,.7,.4} beat 15 of the 16 negative scores {.6,.3,.2,.1}
    assert m["auc"] == pytest.approx(15 / 16)
    assert fa.roc_auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    empty = fa.binary_metrics([0, 0, 1], [0, 0, 0], [0.1, 0.2, 0.3])
    assert empty["precision"] == 0.0 and empty["f1"] == 0.0 and empty["auc"] == 1.0
    assert math.isnan(fa.binary_metrics([0, 0], [0, 1], [0.2, 0.3])["auc"])


def test_binary_metrics_agree_with_scikit_learn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.3 * y + rng.normal(0.35, 0.25, 200), 0, 1).round(2)  # with ties
    p = (s >= 0.5).astype(int)
    m = fa.binary_metrics(y, p, s)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["precision"] == pytest.approx(skm.precision_score(y, p))
    assert m["recall"] == pytest.approx(skm.recall_score(y, p))
    assert m["f1"] == pytest.approx(skm.f1_score(y, p))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, s))


def test_choose_classifier_rule() -> None:
    m = pd.DataFrame(
        {
            "cv_f1_mean": [0.80, 0.85, 0.85, 0.70, 0.85],
            "cv_auc_mean": [0.99, 0.80, 0.90, 0.95, 0.90],
        },
        index=list(fa.CLASSIFIER_NAMES),
    )
    # best F1 0.85 shared by RF, GB, XGB; GB and XGB tie on AUC 0.90 -> the earlier one, GB
    assert fa.choose_classifier(m) == "GradientBoosting"
    m.loc["XGBoost", "cv_auc_mean"] = 0.91
    assert fa.choose_classifier(m) == "XGBoost"
    m.loc["LogisticRegression", "cv_f1_mean"] = np.nan
    assert fa.choose_classifier(m) == "XGBoost"


# ------------------------------------------------------------------ survival
def test_kaplan_meier_hand_computed() -> None:
    time = [2, 3, 3, 5, 6, 8]
    event = [1, 1, 0, 1, 0, 1]
    km = fa.kaplan_meier(time, event)
    assert km["time"].tolist() == [0, 2, 3, 5, 6, 8]
    assert km["n_at_risk"].tolist() == [6, 6, 5, 3, 2, 1]
    assert km["n_events"].tolist() == [0, 1, 1, 1, 0, 1]
    assert km["n_censored"].tolist() == [0, 0, 1, 0, 1, 0]
    s1 = 5 / 6
    s2 = s1 * 4 / 5
    s3 = s2 * 2 / 3
    np.testing.assert_allclose(km["survival"], [1.0, s1, s2, s3, s3, 0.0])
    assert fa.km_median(km) == 5.0
    assert fa.km_median(fa.kaplan_meier([4, 5], [0, 0])) is None
    flat = fa.kaplan_meier([4, 5], [0, 0])
    assert flat["survival"].tolist() == [1.0, 1.0, 1.0]


def test_kaplan_meier_matches_lifelines() -> None:
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(0)
    t = rng.integers(1, 30, 80).astype(float)
    e = rng.random(80) < 0.6
    km = fa.kaplan_meier(t, e).set_index("time")
    kmf = KaplanMeierFitter().fit(t, e)
    sf = kmf.survival_function_["KM_estimate"]
    np.testing.assert_allclose(km["survival"].to_numpy(), sf.loc[km.index].to_numpy())
    ci = kmf.confidence_interval_
    np.testing.assert_allclose(
        km["ci_lower"].to_numpy()[1:-1], ci.iloc[1:-1, 0].loc[km.index[1:-1]], atol=1e-9
    )
    np.testing.assert_allclose(
        km["ci_upper"].to_numpy()[1:-1], ci.iloc[1:-1, 1].loc[km.index[1:-1]], atol=1e-9
    )


def test_concordance_index_hand_computed_and_lifelines() -> None:
    time = [1, 2, 3, 4]
    event = [1, 1, 0, 1]
    # comparable: (0,1) (0,2) (0,3) (1,2) (1,3); only (1,2) discordant
    assert fa.concordance_index(time, [1, 3, 2, 5], event) == pytest.approx(4 / 5)
    assert fa.concordance_index(time, [1, 3, 3, 5], event) == pytest.approx(4.5 / 5)
    assert math.isnan(fa.concordance_index([1, 2], [1, 2], [0, 0]))
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(1)
    t = rng.permutation(60).astype(float) + 1  # distinct times
    e = rng.random(60) < 0.7
    pred = t + rng.normal(0, 15, 60)
    assert fa.concordance_index(t, pred, e) == pytest.approx(concordance_index(t, pred, e))


# ------------------------------------------------------------------ early warning (structure)
def test_early_warning_features_hand_computed() -> None:
    data = _frame(
        {"a": [95, 95, 95, 95], "b": [95, 95, 95, 95]},
        extra={"n_rxn_fsi": [1.0, 3.0, 5.0, 100.0]},
    )
    data.loc[(data[schema.RUN_ID] == "b") & (data[schema.CYCLE] == 2), "n_rxn_fsi"] = np.nan
    f = fa.early_warning_features(data, 3, ["n_rxn_fsi"])
    assert f.loc["a", "n_rxn_fsi__mean"] == pytest.approx(3.0)
    assert f.loc["a", "n_rxn_fsi__last"] == 5.0
    assert f.loc["a", "n_rxn_fsi__slope"] == pytest.approx(2.0)
    assert f.loc["b", "n_rxn_fsi__mean"] == pytest.approx(3.0)  # NaN skipped
    assert f.loc["b", "n_rxn_fsi__slope"] == pytest.approx(2.0)  # fit through (1,1), (3,5)
    one = fa.early_warning_features(data, 1, ["n_rxn_fsi"])
    assert one["n_rxn_fsi__slope"].isna().all()  # one point: no slope


def test_early_warning_labels_rule() -> None:
    data = _frame(
        {
            "fails_before": [95, 60, 95, 95, 95],  # fails at 2 <= N: not eligible
            "fails_at_n": [95, 95, 60, 95, 95],  # fails at N=3: not eligible
            "fails_after": [95, 95, 95, 60, 95],  # eligible, label 1
            "never": [95, 95, 95, 95, 95],  # eligible, label 0
            "ends_at_n": [95, 95, 95],  # nothing seen after N: not eligible
        }
    )
    labels = fa.early_warning_labels(fa.run_outcomes(data), 3)
    assert labels.to_dict() == {"fails_after": 1, "never": 0}


@pytest.fixture(scope="module")
def warning_data(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Runs whose CE drifts down from cycle 1 and fail near cycle 25, against flat runs."""
    from synthetic import write_synthetic_campaign

    from seilab.campaign import load_dataset

    def ce_fn(e, cycles, rng):
        c = np.asarray(cycles, dtype=float)
        base = 97.0 + rng.normal(0, 0.4, c.shape)
        return base - 1.1 * c if e["SFO-Li"] >= 0.8 else base

    folder = tmp_path_factory.mktemp("warning")
    write_synthetic_campaign(folder, n_runs=36, n_cycles=32, seed=5, ce_fn=ce_fn, nan_cycles=1)
    return load_dataset(folder)


def test_early_warning_never_sees_cycles_after_n(warning_data: pd.DataFrame) -> None:
    data = warning_data
    out = fa.run_outcomes(data)
    n = 10
    feats = fa.early_warning_feature_columns(data)
    perturbed = data.copy()
    late = perturbed[schema.CYCLE] > n
    rng = np.random.default_rng(0)
    for col in feats:
        perturbed[col] = perturbed[col].astype(float)
        perturbed.loc[late, col] = rng.normal(0, 1e3, int(late.sum()))
    pd.testing.assert_frame_equal(
        fa.early_warning_features(data, n), fa.early_warning_features(perturbed, n)
    )
    # Same labels (outcomes of the original data) -> identical out-of-fold predictions.
    kw = dict(ns=(n,), seed=3, cv_splits=3, cv_repeats=1, small=True)
    t1, p1 = fa.early_warning(data, out, **kw)
    t2, p2 = fa.early_warning(perturbed, out, **kw)
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_series_equal(p1[n], p2[n])
    # ... whereas perturbing a cycle <= N changes the features
    early = perturbed.copy()
    early.loc[early[schema.CYCLE] == n, "n_rxn_fsi"] += 1000.0
    assert not fa.early_warning_features(early, n).equals(fa.early_warning_features(data, n))


def test_early_warning_detects_a_visible_drift(warning_data: pd.DataFrame) -> None:
    out = fa.run_outcomes(warning_data)
    assert out["event"].sum() >= 6 and (~out["event"]).sum() >= 6
    table, oof = fa.early_warning(
        warning_data, out, ns=(10, 40), seed=0, cv_splits=3, cv_repeats=1, small=True
    )
    row10 = table.set_index("n_cycles").loc[10]
    assert row10["n_eligible"] == len(out)
    assert row10["auc_mean"] > 0.9
    row40 = table.set_index("n_cycles").loc[40]  # beyond every run: no eligible runs
    assert row40["n_eligible"] == 0 and math.isnan(row40["auc_mean"]) and row40["note"]
    assert set(oof) == {10}

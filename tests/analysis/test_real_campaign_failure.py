"""Failure analysis on the small *real* campaign (``real_campaign`` fixture: 16 simulator runs,
5 x 5 x 20 box, 8 cycles, through the campaign machinery).

In so small a box the simulator uses up its Li reservoir within a few cycles: CE starts far above
100 % and then collapses, so at the paper's 70 % threshold runs fail, but nearly all of them by
cycle 8.  The classifier tests therefore use ``--horizon H`` ("fails by cycle H"), with H (and,
only if 70 % cannot split the runs, the threshold) chosen from the data so that both classes hold
at least :data:`seilab.analysis.failure.MIN_PER_CLASS` runs; the choice is made here, from the
simulated CE series, so the tests stay meaningful when the model is retuned.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from real_campaign import REAL_CAMPAIGN
from typer.testing import CliRunner

from seilab import schema
from seilab.analysis import failure as fa
from seilab.cli import app

runner = CliRunner()


def _hand_failure_cycles(data: pd.DataFrame, threshold: float) -> dict[str, float]:
    """First cycle with CE < threshold per run (NaN if none), by a plain loop over the rows."""
    out: dict[str, float] = {}
    for run, g in data.groupby(schema.RUN_ID):
        first = math.nan
        for cycle, ce in sorted(zip(g[schema.CYCLE], g[schema.TARGET], strict=True)):
            if not math.isnan(ce) and ce < threshold:
                first = float(cycle)
                break
        out[run] = first
    return out


def _balanced_setting(data: pd.DataFrame) -> tuple[float, int]:
    """(threshold, horizon) that splits the runs into two classes of >= MIN_PER_CLASS runs."""
    per_run_min = data.groupby(schema.RUN_ID)[schema.TARGET].min()
    candidates = [70.0] + [float(np.quantile(per_run_min, q)) + 0.5 for q in (0.5, 0.4, 0.6)]
    last = int(data[schema.CYCLE].max())
    for t in candidates:
        best = None
        for h in range(1, last + 1):
            lab = fa.run_outcomes(data, threshold=t, horizon=h)["label"]
            n = min(int((lab == 1).sum()), int((lab == 0).sum()))
            if n >= fa.MIN_PER_CLASS and (best is None or n > best[0]):
                best = (n, h)
        if best is not None:
            return t, best[1]
    raise AssertionError(f"the real CE series cannot be split into two classes: {per_run_min}")


@pytest.fixture(scope="module")
def setting(real_data: pd.DataFrame) -> tuple[float, int]:
    return _balanced_setting(real_data)


# ---------------------------------------------------------------------- outcomes and bins
def test_outcomes_on_real_data_match_a_hand_loop(real_data, setting) -> None:
    threshold, horizon = setting
    for t in {70.0, threshold}:
        out = fa.run_outcomes(real_data, threshold=t)
        hand = _hand_failure_cycles(real_data, t)
        last = real_data.groupby(schema.RUN_ID)[schema.CYCLE].max()  # censoring cycle
        assert sorted(out.index) == sorted(hand)
        for run, fc in hand.items():
            row = out.loc[run]
            if math.isnan(fc):
                assert not row["event"] and row["time"] == last[run]
            else:
                assert row["event"] and row["failure_cycle"] == fc and row["time"] == fc
        lab = fa.run_outcomes(real_data, threshold=t, horizon=horizon)["label"]
        # a run that neither fails by H nor is seen to cycle H has no label
        want = {
            r: float(not math.isnan(fc) and fc <= horizon)
            if (not math.isnan(fc) or last[r] >= horizon)
            else math.nan
            for r, fc in hand.items()
        }
        got = lab.to_dict()
        assert got.keys() == want.keys()
        for r in want:
            assert (math.isnan(got[r]) and math.isnan(want[r])) or got[r] == want[r], r


def test_ce_intervals_on_real_data(real_data) -> None:
    ce = real_data[schema.TARGET].to_numpy(dtype=float)
    codes = fa.assign_ce_interval(ce)
    for c, v in zip(codes, ce, strict=True):
        if math.isnan(v):
            assert c == fa.MISSING_CE
        elif v < 10:
            assert c == fa.BELOW_RANGE
        elif v > 100:
            assert c == fa.ABOVE_RANGE
        else:  # [10, 20) -> 0, ..., [90, 100] -> 8 (100 itself in the last interval)
            assert c == min(int(v // 10) - 1, 8), v
    # the simulator's CE is well above 100 % in early cycles and 0 % after the collapse
    assert (codes == fa.ABOVE_RANGE).any() and (codes == fa.BELOW_RANGE).any()


def test_early_warning_on_real_data_never_sees_later_cycles(real_data, setting) -> None:
    threshold, horizon = setting
    n = max(1, horizon - 2)
    out = fa.run_outcomes(real_data, threshold=threshold, horizon=horizon)
    feats = fa.early_warning_feature_columns(real_data)
    assert "n_rxn_stripping" in feats and "mob_li0" in feats
    later = real_data.copy()
    late = later[schema.CYCLE] > n
    rng = np.random.default_rng(1)
    for col in feats:
        later[col] = later[col].astype(float)
        later.loc[late, col] = rng.normal(0.0, 1e4, int(late.sum()))
    pd.testing.assert_frame_equal(
        fa.early_warning_features(real_data, n), fa.early_warning_features(later, n)
    )
    kw = dict(ns=(n,), seed=0, cv_splits=2, cv_repeats=1, small=True)
    t1, p1 = fa.early_warning(real_data, out, **kw)
    t2, p2 = fa.early_warning(later, out, **kw)
    pd.testing.assert_frame_equal(t1, t2)
    assert set(p1) == set(p2)
    for k in p1:
        pd.testing.assert_series_equal(p1[k], p2[k])
    # a change at cycle N itself is seen
    at_n = real_data.copy()
    at_n.loc[at_n[schema.CYCLE] == n, "n_rxn_stripping"] += 1000
    assert not fa.early_warning_features(at_n, n).equals(fa.early_warning_features(real_data, n))


# ---------------------------------------------------------------------- the command
def test_analyze_failure_end_to_end_on_real_campaign(real_campaign, real_data, setting, tmp_path):
    threshold, horizon = setting
    early = sorted({max(1, horizon - 2), max(1, horizon - 1)})
    out = tmp_path / "failure"
    args = ["analyze", "failure", real_campaign, "--out", out, "--threshold", threshold,
            "--horizon", horizon, "--grouping", "cycle", "--seed", 1, "--cv-splits", 3,
            "--cv-repeats", 1, "--n-jobs", 1, "--quick"]  # fmt: skip
    for n in early:
        args += ["--early-n", n]
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    summary = json.loads((out / "failure_summary.json").read_text())

    hand = _hand_failure_cycles(real_data, threshold)
    fcs = np.array([v for v in hand.values() if not math.isnan(v)])
    assert summary["n_runs"] == REAL_CAMPAIGN["n"] and summary["n_failed"] == len(fcs)
    assert summary["fraction_failing"] == pytest.approx(len(fcs) / REAL_CAMPAIGN["n"])
    assert summary["failure_cycle"]["median"] == pytest.approx(np.median(fcs))
    assert summary["failure_cycle"]["q1"] == pytest.approx(np.quantile(fcs, 0.25))
    assert summary["label"] == f"fails by cycle {horizon}"
    assert f"{len(fcs)} of {REAL_CAMPAIGN['n']} runs fail" in res.output

    # the five classifiers ran on real outcomes; CV summaries are the mean/SD of the folds
    metrics = pd.read_csv(out / "classifier_metrics.csv", index_col=0)
    assert list(metrics.index) == list(fa.CLASSIFIER_NAMES)
    assert metrics["auc"].between(0, 1).all()
    folds = pd.read_csv(out / "classifier_cv_folds.csv")
    for name, g in folds.groupby("classifier"):
        assert metrics.loc[name, "cv_auc_mean"] == pytest.approx(g["auc"].mean())
        assert metrics.loc[name, "cv_auc_sd"] == pytest.approx(g["auc"].std(ddof=1))
        assert metrics.loc[name, "n_cv_folds"] == len(g) == 3
    n_labelled = REAL_CAMPAIGN["n"]
    assert metrics["n_test"].eq(math.ceil(0.4 * n_labelled)).all()  # scikit-learn rounds up
    assert summary["chosen_classifier"] in fa.CLASSIFIER_NAMES
    shap = pd.read_csv(out / "shap_importance.csv")
    assert set(shap["feature"]) <= set(schema.PAIR_COLUMNS) and (shap["mean_abs_shap"] >= 0).all()

    # Kaplan-Meier of the hand-computed times and events
    times = [hand[r] if not math.isnan(hand[r]) else REAL_CAMPAIGN["cycles"] for r in hand]
    events = [not math.isnan(hand[r]) for r in hand]
    km = pd.read_csv(out / "kaplan_meier.csv")
    want = fa.kaplan_meier(times, events)
    np.testing.assert_allclose(km["survival"], want["survival"])
    assert summary["c_index"] is None or 0.0 <= summary["c_index"] <= 1.0

    ew = pd.read_csv(out / "early_warning.csv")
    assert ew["n_cycles"].tolist() == early
    assert (ew["auc_mean"].notna() | ew["note"].notna()).all()
    with_cycles = pd.read_csv(out / "failure_vs_nonfailure.csv", index_col=0)
    assert (with_cycles["n_cycles_failure"] > 0).all() and (
        with_cycles["n_cycles_nonfailure"] > 0
    ).all()
    for name in (
        "ce_interval_heatmap.png",
        "failure_vs_nonfailure_heatmap.png",
        "failure_cycle_boxplot.png",
        "roc_curves.png",
        "confusion_matrices.png",
        "shap_chosen_classifier.png",
        "kaplan_meier.png",
        "early_warning_auc.png",
    ):
        assert (out / name).stat().st_size > 5_000, name


def test_nothing_fails_on_real_data_gives_a_clear_message(real_campaign: Path, tmp_path: Path):
    """Threshold 0 %: a CE is never negative, so no real run fails."""
    out = tmp_path / "none"
    res = runner.invoke(
        app,
        ["analyze", "failure", str(real_campaign), "--out", str(out), "--threshold", "0",
         "--quick", "--n-jobs", "1"],
    )  # fmt: skip
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "no run has a cycle with CE < 0 %" in res.output
    assert f"0 of {REAL_CAMPAIGN['n']} runs fail" in res.output
    summary = json.loads((out / "failure_summary.json").read_text())
    assert summary["n_failed"] == 0 and summary["classifiers"] is None
    assert summary["early_warning"] is None and summary["failure_cycle"]["median"] is None
    assert (pd.read_csv(out / "kaplan_meier.csv")["survival"] == 1.0).all()
    assert (out / "ce_interval_heatmap.png").is_file()

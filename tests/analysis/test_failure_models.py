"""Failure analysis on synthetic campaign folders: classifiers + SHAP, survival model, the CLI
function end to end, and a data set in which nothing fails.  Real (small) models, no mocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from synthetic import write_synthetic_campaign
from typer.testing import CliRunner

from seilab import schema
from seilab.analysis import failure as fa
from seilab.campaign import load_dataset
from seilab.stages.failure import run_failure_analysis
from seilab.stages.failure_cli import failure_cmd

SFO_LI = schema.pair_column("SFO-Li")


def _sfo_li_only(e, cycles, rng):
    """CE collapses (at a random cycle 15-25) exactly when SFO-Li >= 0.8 eV; nothing else matters."""
    c = np.asarray(cycles, dtype=float)
    ce = 95.0 + rng.normal(0.0, 0.5, c.shape)
    if e["SFO-Li"] >= 0.8:
        at = int(rng.integers(15, 26))
        ce[c >= at] = 55.0 + rng.normal(0.0, 2.0, int(np.sum(c >= at)))
    return ce


@pytest.fixture(scope="module")
def one_energy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("one_energy")
    write_synthetic_campaign(
        folder, n_runs=60, n_cycles=30, seed=11, ce_fn=_sfo_li_only, early_end={4: 12}
    )
    return folder


@pytest.fixture(scope="module")
def one_energy_data(one_energy: Path) -> pd.DataFrame:
    return load_dataset(one_energy)


def _app() -> typer.Typer:
    """The command registered the way the lead registers it: analyze_app.command("failure")."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """seilab analyze (test stand-in)."""

    app.command("failure")(failure_cmd)
    return app


def test_failure_depends_on_one_energy(one_energy_data: pd.DataFrame) -> None:
    out = fa.run_outcomes(one_energy_data)
    truth = (out[SFO_LI] >= 0.8).astype(int)
    assert (out["label"] == truth).all()
    pairs = list(schema.PAIR_COLUMNS)
    res = fa.fit_classifiers(
        out[pairs],
        out["label"].to_numpy(dtype=int),
        seed=0,
        cv_splits=3,
        cv_repeats=1,
        n_jobs=1,
        small=True,
    )
    assert list(res.metrics.index) == list(fa.CLASSIFIER_NAMES)
    assert res.chosen in fa.CLASSIFIER_NAMES
    assert res.metrics.loc[res.chosen, "auc"] > 0.95
    assert res.metrics.loc[res.chosen, "cv_auc_mean"] > 0.95
    assert np.isfinite(res.metrics["cv_auc_sd"]).all()
    # stratified 60/40 split
    assert len(res.X_test) == round(0.4 * len(out))
    assert abs(res.y_test.mean() - out["label"].mean()) < 0.06
    # the chosen classifier's SHAP ranks SFO-Li first (and so does every tree model's)
    for name in fa.CLASSIFIER_NAMES:
        vals, unit = fa.shap_values(name, res.models[name], out[pairs], res.X_train)
        assert vals.shape == (len(out), len(pairs)) and "failure" in unit
        imp = fa.shap_importance(vals, pairs)
        assert imp.loc[0, "feature"] == SFO_LI, name
        assert imp.loc[0, "label"] == "SFO-Li (eV)"


def test_survival_model_ranks_failures(one_energy_data: pd.DataFrame) -> None:
    out = fa.run_outcomes(one_energy_data)
    sm = fa.fit_survival_model(
        out[list(schema.PAIR_COLUMNS)], out["time"], out["event"], seed=0, small=True
    )
    assert sm["n_test"] == round(0.4 * len(out))
    # failing runs (SFO-Li >= 0.8) are predicted to fail before the censored ones
    assert sm["c_index_test"] > 0.6
    assert set(sm["predictions"].columns) == {"time", "event", "predicted_cycle"}


def test_cli_end_to_end(one_energy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _app(),
        [
            "failure",
            str(one_energy),
            "--out",
            str(out),
            "--threshold",
            "70",
            "--seed",
            "1",
            "--cv-splits",
            "3",
            "--cv-repeats",
            "1",
            "--n-jobs",
            "1",
            "--quick",
            "--early-n",
            "5",
            "--early-n",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "failure_summary.json").read_text())
    data = load_dataset(one_energy)
    outc = fa.run_outcomes(data)
    assert summary["n_runs"] == len(outc)
    assert summary["fraction_failing"] == pytest.approx(outc["event"].mean())
    assert summary["failure_cycle"]["median"] == pytest.approx(outc["failure_cycle"].median())
    assert summary["n_censored_early"] == 1
    assert set(summary["classifiers"]) == set(fa.CLASSIFIER_NAMES)
    assert summary["chosen_classifier"] in fa.CLASSIFIER_NAMES
    assert summary["shap"]["ranking"][0]["feature"] == SFO_LI
    assert summary["c_index"] is not None
    assert [r["n_cycles"] for r in summary["early_warning"]] == [5, 10]
    assert set(summary["early_warning_auc"]) == {"5", "10"}
    for name in (
        "ce_interval_heatmap.png",
        "ce_interval_absolute.csv",
        "ce_interval_normalised.csv",
        "failure_vs_nonfailure_heatmap.png",
        "failure_vs_nonfailure.csv",
        "failure_cycle_boxplot.png",
        "classifier_metrics.csv",
        "roc_curves.png",
        "confusion_matrices.png",
        "shap_chosen_classifier.png",
        "shap_importance.csv",
        "kaplan_meier.png",
        "kaplan_meier.csv",
        "early_warning.csv",
        "early_warning_auc.png",
        "failure_runs.csv",
    ):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    metrics = pd.read_csv(out / "classifier_metrics.csv", index_col=0)
    assert {"accuracy", "precision", "recall", "f1", "auc", "cv_auc_mean", "cv_auc_sd"} <= set(
        metrics.columns
    )
    assert "runs fail" in result.output


def test_nothing_fails_gives_a_clear_message(tmp_path: Path) -> None:
    folder = tmp_path / "healthy"
    write_synthetic_campaign(
        folder,
        n_runs=8,
        n_cycles=15,
        seed=2,
        ce_fn=lambda e, c, rng: 96.0 + rng.normal(0, 0.5, len(c)),
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _app(), ["failure", str(folder), "--out", str(out), "--quick", "--n-jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "no run has a cycle with CE < 70 %" in result.output
    assert "0 of 8 runs fail" in result.output
    summary = json.loads((out / "failure_summary.json").read_text())
    assert summary["n_failed"] == 0 and summary["fraction_failing"] == 0.0
    assert summary["failure_cycle"]["median"] is None
    assert summary["classifiers"] is None and summary["chosen_classifier"] is None
    assert summary["km_median_cycle"] is None and summary["c_index"] is None
    assert summary["early_warning"] is None
    # what still makes sense is written
    for name in (
        "ce_interval_heatmap.png",
        "ce_interval_absolute.csv",
        "kaplan_meier.png",
        "failure_runs.csv",
        "failure_cycle_stats.csv",
    ):
        assert (out / name).is_file(), name
    for name in ("classifier_metrics.csv", "roc_curves.png", "failure_cycle_boxplot.png"):
        assert not (out / name).exists(), name
    km = pd.read_csv(out / "kaplan_meier.csv")
    assert (km["survival"] == 1.0).all()


def test_too_few_failures_skips_classifiers_with_a_message(tmp_path: Path) -> None:
    data = load_dataset(_few_failures(tmp_path))
    summary = run_failure_analysis(
        data, tmp_path / "out", cv_splits=3, cv_repeats=1, n_jobs=1, small=True, figures=False
    )
    assert summary["n_failed"] == 2
    assert summary["classifiers"] is None
    assert any("classifiers skipped" in m and "2 failing" in m for m in summary["messages"])
    assert summary["failure_cycle"]["median"] is not None


def _few_failures(tmp_path: Path) -> Path:
    folder = tmp_path / "few"
    energies = [{"SFO-Li": 1.5 if i < 2 else 0.1} for i in range(10)]
    write_synthetic_campaign(folder, n_cycles=30, seed=3, ce_fn=_sfo_li_only, energies=energies)
    return folder


def test_every_run_fails_skips_comparisons_with_messages(tmp_path: Path) -> None:
    folder = tmp_path / "doomed"
    write_synthetic_campaign(
        folder,
        n_runs=8,
        n_cycles=12,
        seed=4,
        ce_fn=lambda e, c, rng: np.where(np.asarray(c) >= 6, 40.0, 95.0),
    )
    summary = run_failure_analysis(
        load_dataset(folder),
        tmp_path / "out",
        early_n=(3,),
        cv_splits=3,
        cv_repeats=1,
        n_jobs=1,
        small=True,
    )
    assert summary["n_failed"] == 8 and summary["fraction_failing"] == 1.0
    assert summary["failure_cycle"]["median"] == 6.0 and summary["failure_cycle"]["iqr"] == 0.0
    assert summary["km_median_cycle"] == 6.0
    assert summary["classifiers"] is None
    msgs = " | ".join(summary["messages"])
    assert "every run fails" in msgs and "non-failure group is empty" in msgs
    assert "early warning at N = 3" in msgs
    assert (tmp_path / "out" / "failure_cycle_boxplot.png").is_file()


def test_headline_tells_the_two_medians_apart(tmp_path) -> None:
    """Issue 14: the failure cycle of failing runs and the KM median are labelled apart."""
    from seilab.stages.failure_cli import _headline

    summary = {
        "n_failed": 3,
        "n_runs": 10,
        "threshold_pct": 70.0,
        "fraction_failing": 0.3,
        "failure_cycle": {"median": 12.0, "q1": 10.0, "q3": 14.0, "iqr": 4.0},
        "km_median_cycle": None,
        "outputs": [],
    }
    text = _headline(summary, tmp_path)
    assert "failure cycle of the 3 failing runs: median 12" in text
    assert "Kaplan-Meier median failure-free cycle of all runs: not reached" in text
    summary["km_median_cycle"] = 30.0
    assert "of all 10 runs (non-failing runs censored at their last cycle): 30" in _headline(
        summary, tmp_path
    )

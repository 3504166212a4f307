"""End to end through the command line: ``seilab analyze ce`` and ``seilab optimize``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from seilab.analysis.regressors import regression_metrics
from seilab.errors import AnalysisError
from seilab.stages.cli import analyze_app, optimize_cmd

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(analyze_app, name="analyze")
    app.command("optimize")(optimize_cmd)
    return app


def test_analyze_ce_end_to_end(synthetic_campaign, tmp_path):
    out = tmp_path / "ce"
    args = ["analyze", "ce", str(synthetic_campaign), "--out", str(out), "--size", "small"]
    args += ["--jobs", "1", "--shap-samples", "24", "--shap-background", "12", "--quiet"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    metrics = pd.read_csv(out / "metrics.csv").set_index("model")
    assert list(metrics.index) == ["dense_nn", "mlp", "xgboost", "extra_trees"]
    for split in ("train", "test"):
        for m in ("rmse", "mse", "mae", "r2"):
            assert np.isfinite(metrics[f"{split}_{m}"]).all()
    assert metrics["test_coverage"].between(0, 1).all()
    assert (metrics["test_coverage_ci95_low"] <= metrics["test_coverage"]).all()
    assert (metrics["test_coverage"] <= metrics["test_coverage_ci95_high"]).all()
    # the stability ranking (XGBoost, 5 refits with shadow features) is written with the rest
    stab = pd.read_csv(out / "shap_ranking_stability.csv")
    assert set(stab["model"]) == {"xgboost"} and (stab["repeats"] == 5).all()
    assert {"mean_abs_shap_std", "rank_q25", "rank_q75", "beats_null_frac", "selected"} <= set(
        stab.columns
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "metrics.parquet").set_index("model"), metrics, check_dtype=False
    )

    # the metrics table matches a recomputation from the written predictions
    pred = pd.read_parquet(out / "predictions.parquet")
    assert not set(pred.loc[pred.split == "train", "run_id"]) & set(
        pred.loc[pred.split == "test", "run_id"]
    )
    test = pred[pred.split == "test"]
    for model in metrics.index:
        m = regression_metrics(test["ce_pct"], test[f"pred_{model}"])
        assert m["rmse"] == pytest.approx(metrics.loc[model, "test_rmse"])
        assert m["r2"] == pytest.approx(metrics.loc[model, "test_r2"])
        inside = (test["ce_pct"] >= test[f"lower_{model}"]) & (
            test["ce_pct"] <= test[f"upper_{model}"]
        )
        assert inside.mean() == pytest.approx(metrics.loc[model, "test_coverage"])

    for f in ["parity.png", "shap_ranking.csv", "shap_ranking.parquet", "summary.json"]:
        assert (out / f).is_file(), f
    for model in ("dense_nn", "xgboost"):
        for group in ("events", "mobility", "pairs"):
            assert (out / f"shap_{model}_{group}.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shap"]["max_additivity_error"]["dense_nn"] < 1e-6
    ranking = pd.read_csv(out / "shap_ranking.csv")
    assert set(ranking["group"]) == {"events", "mobility", "pairs", "cycle"}


def test_optimize_cli(synthetic_campaign, tmp_path):
    out = tmp_path / "bo"
    args = ["optimize", str(synthetic_campaign), "--out", str(out), "--params", "SFO-Li,F-Li"]
    args += ["--trials", "12", "--size", "small", "--jobs", "1", "--quiet"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "converged at trial" in res.output
    assert len(pd.read_csv(out / "history.csv")) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["optimize", "{camp}", "--out", "{out}", "--params", "SFO-Li,Li-X"],
            "unknown pair name(s) Li-X; allowed:",
        ),
        (["analyze", "ce", "{empty}", "--out", "{out}"], "folder is empty"),
        (
            ["analyze", "ce", "{camp}", "--out", "{out}", "--groups", "pairs,foo"],
            "unknown feature group",
        ),
        (["analyze", "ce", "{camp}", "--out", "{out}", "--models", "svm"], "unknown model"),
    ],
)
def test_user_errors_are_one_clear_line(synthetic_campaign, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    fill = {
        "camp": str(synthetic_campaign),
        "out": str(tmp_path / "o"),
        "empty": str(tmp_path / "empty"),
    }
    res = runner.invoke(_app(), [a.format(**fill) for a in args])
    assert isinstance(res.exception, AnalysisError)
    assert message in str(res.exception) and "\n" not in str(res.exception)


def test_entry_point_exits_2(tmp_path, monkeypatch, capsys):
    from seilab import cli

    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(
        "sys.argv",
        ["seilab", "analyze", "ce", str(tmp_path / "empty"), "--out", str(tmp_path / "o")],
    )
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: ")

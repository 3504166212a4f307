"""CE analysis and Bayesian optimisation on a small *real* campaign (the ``real_campaign`` fixture:
16 runs of the simulator, 5 x 5 x 20 box, 8 cycles, through ``seilab.campaign.run_campaign``).

Nothing here is synthetic: the data set, the verification runs of ``seilab optimize --verify``
and the Optuna database are produced by the real components.  Assertions use properties that
hold for any simulator output (no hard-coded CE values), recomputed independently where possible.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pyarrow.parquet as pq
import pytest
from real_campaign import REAL_CAMPAIGN
from typer.testing import CliRunner

from seilab import schema
from seilab.analysis.dataset import build_ce_dataset, train_calib_test_split
from seilab.analysis.explain import additivity_error, explain_model, explain_tree, sample_rows
from seilab.analysis.regressors import MODEL_NAMES, make_regressor, regression_metrics
from seilab.campaign import load_dataset, read_manifest
from seilab.cli import app
from seilab.errors import AnalysisError
from seilab.stages.bo import study_storage
from seilab.stages.bo_verify import campaign_simulator_options

runner = CliRunner()


def _invoke(args: list[str]):
    """Run ``seilab ARGS`` (the real command tree) in-process."""
    return runner.invoke(app, [str(a) for a in args])


def _hand_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """RMSE, MSE, MAE, R2 written out with plain NumPy (independent of regression_metrics)."""
    e = np.asarray(y, float) - np.asarray(p, float)
    mse = float(np.sum(e * e) / len(e))
    ss_tot = float(np.sum((y - np.mean(y)) ** 2))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.sum(np.abs(e)) / len(e)),
        "r2": 1.0 - float(np.sum(e * e)) / ss_tot,
    }


@pytest.fixture(scope="module")
def real_ds(real_data: pd.DataFrame):
    return build_ce_dataset(real_data, source="real campaign")


@pytest.fixture(scope="module")
def real_split(real_ds):
    return train_calib_test_split(real_ds.groups, test_size=0.25, calib_size=0.2, seed=0)


# ---------------------------------------------------------------------- the data set itself
def test_real_campaign_is_simulator_output(real_campaign: Path, real_data: pd.DataFrame) -> None:
    man = read_manifest(real_campaign)
    assert len(man) == REAL_CAMPAIGN["n"] and (man["status"] == "done").all()
    meta = json.loads(
        pq.read_schema(next((real_campaign / "runs").glob("*.parquet"))).metadata[b"seilab"]
    )
    assert meta["box"] == list(REAL_CAMPAIGN["box"]) and meta["cycles"] == REAL_CAMPAIGN["cycles"]
    # every run reaches its last cycle unless the simulation ended it (the small box runs out of
    # strippable Li in some runs: end reason "exhausted"), and most runs do
    last = real_data.groupby(schema.RUN_ID).tail(1)
    full = last[schema.CYCLE].eq(REAL_CAMPAIGN["cycles"])
    assert (full | last["end_reason"].eq("exhausted")).all()
    assert full.mean() > 0.75
    # the CE column is 100 q_dis / q_ch of the simulator's own charge counts
    q = real_data[real_data["q_ch_e"] > 0]
    np.testing.assert_allclose(q[schema.TARGET], 100 * q["q_dis_e"] / q["q_ch_e"])
    # the design varied the four pairs and left the others at the model's value
    varied = [schema.pair_column(p) for p in REAL_CAMPAIGN["pairs"]]
    assert (man[varied].nunique() > 3).all()
    others = [c for c in schema.PAIR_COLUMNS if c not in varied]
    assert (man[others].nunique() == 1).all()


# ---------------------------------------------------------------------- models, splits, metrics
def test_real_splits_never_share_a_simulation(real_ds, real_split) -> None:
    parts = [
        set(real_ds.groups.iloc[i]) for i in (real_split.train, real_split.calib, real_split.test)
    ]
    assert all(parts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(len(p) for p in parts) == real_ds.n_runs
    rows = np.concatenate([real_split.train, real_split.calib, real_split.test])
    assert sorted(rows.tolist()) == list(range(len(real_ds.y)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_and_predicts_on_real_data(real_ds, real_split, name: str) -> None:
    ds, sp = real_ds, real_split
    Xtr, ytr = ds.X.iloc[sp.train], ds.y.iloc[sp.train]
    Xte, yte = ds.X.iloc[sp.test], ds.y.iloc[sp.test]
    est = make_regressor(name, seed=0, size="small", n_jobs=1)
    if name == "dense_nn":
        est.fit(Xtr, ytr, groups=ds.groups.iloc[sp.train].to_numpy())
    else:
        est.fit(Xtr, ytr)
    p_tr, p_te = est.predict(Xtr), est.predict(Xte)
    assert p_te.shape == (len(yte),) and np.isfinite(p_te).all()
    # metrics of the library = the formulas written out by hand, on real predictions
    for y, p in ((ytr.to_numpy(), p_tr), (yte.to_numpy(), p_te)):
        got, want = regression_metrics(y, p), _hand_metrics(y, p)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-12), k
    # CE is 100 q_dis / q_ch and both counts are event features: every model learns something
    assert regression_metrics(ytr, p_tr)["r2"] > 0.2, name


def test_shap_additivity_on_real_data(real_ds, real_split) -> None:
    ds, sp = real_ds, real_split
    Xtr, ytr, gtr = ds.X.iloc[sp.train], ds.y.iloc[sp.train], ds.groups.iloc[sp.train]
    rows = sample_rows(ds.X.iloc[sp.test], 12, seed=0, groups=ds.groups.iloc[sp.test])
    bg = sample_rows(Xtr, 8, seed=1, groups=gtr)
    xgb = make_regressor("xgboost", seed=0, size="small", n_jobs=1).fit(Xtr, ytr)
    tree = explain_tree(xgb, rows)
    # exact up to XGBoost's float32 arithmetic; real CE reaches several hundred percent
    assert additivity_error(tree, xgb.predict(rows)) < 1e-3 * max(1.0, float(ytr.abs().max()))
    nn = make_regressor("dense_nn", seed=0, size="small", n_jobs=1)
    nn.fit(Xtr, ytr, groups=gtr.to_numpy())
    perm = explain_model(nn, bg, rows, seed=0)
    pred = nn.predict(rows)
    # exact up to float64 round-off of the permutation sums (relative to CE of several 100 %)
    assert additivity_error(perm, pred) < 1e-8 * max(1.0, float(np.abs(pred).max()))
    np.testing.assert_allclose(
        np.asarray(perm.values).sum(axis=1) + np.asarray(perm.base_values).reshape(-1), pred
    )


# ---------------------------------------------------------------------- the commands
def test_analyze_ce_end_to_end_on_real_campaign(real_campaign: Path, tmp_path: Path) -> None:
    out = tmp_path / "ce"
    res = _invoke(
        ["analyze", "ce", real_campaign, "--out", out, "--size", "small", "--jobs", "1",
         "--shap-samples", "16", "--shap-background", "8", "--quiet"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output + repr(res.exception)
    metrics = pd.read_csv(out / "metrics.csv").set_index("model")
    assert list(metrics.index) == list(MODEL_NAMES)
    pred = pd.read_parquet(out / "predictions.parquet")
    by_split = {
        s: set(pred.loc[pred["split"] == s, schema.RUN_ID]) for s in ("train", "calib", "test")
    }
    assert not by_split["train"] & by_split["test"]
    assert not by_split["calib"] & (by_split["train"] | by_split["test"])
    assert len(set().union(*by_split.values())) == REAL_CAMPAIGN["n"]
    # every row of the real data set with a CE is predicted once
    data = load_dataset(real_campaign)
    assert len(pred) == int(data[schema.TARGET].notna().sum())
    for split in ("train", "test"):
        part = pred[pred["split"] == split]
        for model in MODEL_NAMES:
            want = _hand_metrics(part[schema.TARGET].to_numpy(), part[f"pred_{model}"].to_numpy())
            for k, v in want.items():
                assert metrics.loc[model, f"{split}_{k}"] == pytest.approx(v), (model, split, k)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["simulations"] == REAL_CAMPAIGN["n"]
    ce_scale = max(1.0, float(pred[schema.TARGET].abs().max()))
    assert summary["shap"]["max_additivity_error"]["dense_nn"] < 1e-8 * ce_scale
    assert summary["shap"]["max_additivity_error"]["xgboost"] < 1e-4 * ce_scale
    for group in ("events", "mobility", "pairs"):
        assert (out / f"shap_dense_nn_{group}.png").stat().st_size > 10_000
    ranking = pd.read_csv(out / "shap_ranking.csv")
    assert set(ranking["feature"]) == set(summary["dataset"]["features"])
    assert np.isfinite(ranking["mean_abs_shap"]).all()


def test_campaign_simulator_options_read_from_campaign_toml(real_campaign: Path, tmp_path) -> None:
    opts = campaign_simulator_options(real_campaign)
    assert opts == {
        "base_model": REAL_CAMPAIGN["model"],
        "cycles": REAL_CAMPAIGN["cycles"],
        "box": list(REAL_CAMPAIGN["box"]),
        "overrides": REAL_CAMPAIGN["set"],
        "workers": REAL_CAMPAIGN["workers"],
    }
    assert campaign_simulator_options(tmp_path) == {} and campaign_simulator_options(None) == {}
    (tmp_path / schema.CAMPAIGN_CONFIG).write_text("[simulator\n")
    with pytest.raises(AnalysisError, match="not valid TOML"):
        campaign_simulator_options(tmp_path)


def test_optimize_verify_and_resume_on_real_campaign(real_campaign: Path, tmp_path: Path) -> None:
    """``seilab optimize --trials 8 --verify 1`` runs the real simulator through the campaign
    machinery, with the campaign's own box, cycles and overrides; re-running with more trials
    resumes the Optuna study and re-simulates only a batch it has not simulated before."""
    out = tmp_path / "bo"
    base = ["optimize", real_campaign, "--out", out, "--params", "SFO-Li,F-Li", "--size", "small",
            "--jobs", "1", "--verify", "1", "--replicates", "2", "--quiet"]  # fmt: skip
    res = _invoke([*base, "--trials", "8"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "verification:" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verification"]["simulator_options"]["box"] == list(REAL_CAMPAIGN["box"])
    assert summary["trials"] == 8 and summary["trials_added_this_run"] == 8

    # the verification batch is a real campaign folder of the simulator
    (camp,) = [p for p in (out / "verify" / "round0").iterdir() if p.is_dir()]
    man = read_manifest(camp)
    assert len(man) == 4 and (man["status"] == "done").all()  # (best + DFT) x 2 replicates
    runs = load_dataset(camp)
    meta = json.loads(pq.read_schema(next((camp / "runs").glob("*.parquet"))).metadata[b"seilab"])
    assert meta["box"] == list(REAL_CAMPAIGN["box"]) and meta["cycles"] == REAL_CAMPAIGN["cycles"]
    assert meta["overrides"]["protocol.max_rejections"] == 300
    # the report's simulated CE is the replicate mean of the runs' mean CE, recomputed here
    rep = pd.read_csv(out / "verification.csv")
    assert rep["label"].tolist() == ["round 0 proposal 1", "DFT defaults"]
    run_means = runs.groupby(schema.RUN_ID)[schema.TARGET].mean()
    man = man.set_index("run_id")
    for spec, label in enumerate(rep["label"]):
        ids = man.index[man["design_index"] == spec]
        assert len(ids) == 2
        row = rep.set_index("label").loc[label]
        assert row["simulated_ce_pct"] == pytest.approx(run_means.loc[ids].mean())
        assert row["simulated_std"] == pytest.approx(run_means.loc[ids].std(ddof=1))
    assert rep.loc[0, "SFO-Li (eV)"] == pytest.approx(summary["best_energies_ev"]["SFO-Li"])
    verified = optuna.load_study(study_name="seilab-ce-bo-verified", storage=study_storage(out))
    assert [t.user_attrs["source"] for t in verified.trials] == ["simulator"]

    # Optuna's own tools reopen the database; re-running resumes it
    study = optuna.load_study(study_name="seilab-ce-bo", storage=study_storage(out))
    values = [t.value for t in study.trials]
    assert len(values) == 8 and all(np.isfinite(values))
    stamp = {p: p.stat().st_mtime_ns for p in (camp / "runs").glob("*.parquet")}
    res = _invoke([*base, "--trials", "12"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    study = optuna.load_study(study_name="seilab-ce-bo", storage=study_storage(out))
    assert len(study.trials) == 12 and [t.value for t in study.trials[:8]] == values
    assert json.loads((out / "summary.json").read_text())["trials_added_this_run"] == 4
    # an unchanged batch is reused (its run files untouched); a changed one gets its own folder
    assert {p: p.stat().st_mtime_ns for p in (camp / "runs").glob("*.parquet")} == stamp
    assert all(read_manifest(p)["status"].eq("done").all()
               for p in (out / "verify" / "round0").iterdir() if p.is_dir())  # fmt: skip


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "ce", "{empty}", "--out", "{out}"], "folder is empty"),
        (["analyze", "ce", "{nowhere}", "--out", "{out}"], "folder does not exist"),
        (["analyze", "ce", "{nomob}", "--out", "{out}"], "missing column(s) mob_sfo"),
        (
            ["optimize", "{camp}", "--out", "{out}", "--params", "SFO-Li,Li-X"],
            "unknown pair name(s) Li-X; allowed: Li-Li, F-Li",
        ),
        (["optimize", "{empty}", "--out", "{out}", "--trials", "2"], "folder is empty"),
        (["analyze", "failure", "{empty}", "--out", "{out}"], "folder is empty"),
        (["analyze", "failure", "{nowhere}", "--out", "{out}"], "folder does not exist"),
    ],
)
def test_bad_input_gives_one_clear_line(
    real_campaign: Path, tmp_path: Path, monkeypatch, capsys, args, message
) -> None:
    """Through ``seilab.cli.main``: exit status 2 and one ``error: ...`` line on stderr."""
    from seilab import cli

    (tmp_path / "empty").mkdir()
    nomob = tmp_path / "nomob"
    if "{nomob}" in args:  # the real campaign, its run files rewritten without one column
        shutil.copytree(real_campaign, nomob)
        for f in (nomob / "runs").glob("*.parquet"):
            t = pq.read_table(f)
            pq.write_table(t.drop_columns(["mob_sfo"]), f)
    fill = {
        "camp": real_campaign,
        "empty": tmp_path / "empty",
        "nowhere": tmp_path / "nowhere",
        "nomob": nomob,
        "out": tmp_path / "out",
    }
    monkeypatch.setattr("sys.argv", ["seilab", *[a.format(**fill) for a in args]])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # a user error writes nothing

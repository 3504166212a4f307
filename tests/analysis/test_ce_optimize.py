"""Bayesian optimisation: known optimum, SQLite storage that Optuna reopens, resume, verification."""

from __future__ import annotations

import json
import math

import optuna
import pandas as pd
import pytest
from known_answer import OPTIMUM, simulator, write_known_answer

from seilab.analysis.defaults import DFT_PAIR_ENERGIES
from seilab.analysis.optimize import (
    BOSettings,
    convergence_trial,
    resolve_pairs,
)
from seilab.errors import AnalysisError
from seilab.stages.bo import study_storage
from seilab.stages.bo_run import run_optimization


@pytest.fixture(scope="module")
def known_folder(tmp_path_factory):
    # SFO-Li x F-Li on the full 0.1 eV grid (256 runs), the other pairs at their DFT values
    return write_known_answer(
        tmp_path_factory.mktemp("known_bo"), n_cycles=2, step=1, random_others=False
    )


def _bo(folder, out, trials, run_specs=None, **kw):
    kw.setdefault("params", "SFO-Li,F-Li")
    settings = BOSettings(trials=trials, size="small", n_jobs=1, **kw)
    return run_optimization(folder, out, settings, run_specs=run_specs, progress=False)


def test_resolve_pairs():
    assert resolve_pairs("sfo-li, F-Li,SFO-Li") == ["SFO-Li", "F-Li"]
    assert resolve_pairs(["e_pair_o_li_ev"]) == ["O-Li"]
    with pytest.raises(AnalysisError, match="unknown pair name\\(s\\) Li-F; allowed: Li-Li, F-Li"):
        resolve_pairs("SFO-Li,Li-F")


def test_unknown_parameter_fails_before_any_work(tmp_path):
    with pytest.raises(AnalysisError, match="unknown pair name"):
        run_optimization(tmp_path / "nowhere", tmp_path / "out", BOSettings(params="Xx-Li"))
    assert not (tmp_path / "out").exists()


def test_convergence_rule():
    h = pd.DataFrame({"trial": range(6), "value": [90, 92, 91, 95.95, 96.0, 93]})
    h["best_so_far"] = h["value"].cummax()
    assert convergence_trial(h) == 3  # 95.95 is within 0.1 of the final best 96.0
    assert convergence_trial(h, tol=0.01) == 4


def test_bo_finds_known_optimum_and_resumes(known_folder, tmp_path):
    out = tmp_path / "bo"
    res = _bo(known_folder, out, 60)
    best = res.best.set_index("pair")
    for pair, value in OPTIMUM.items():
        assert best.loc[pair, "best_ev"] == pytest.approx(value), res.best
    # TPE found the surrogate's maximum over the whole 16 x 16 grid
    grid = [{"SFO-Li": a / 10, "F-Li": b / 10} for a in range(16) for b in range(16)]
    assert res.summary["best_value_pct"] == pytest.approx(res.surrogate.predict_mean(grid).max())
    # the other pairs stay at the DFT values
    assert best.loc["O-Li", "best_ev"] == pytest.approx(DFT_PAIR_ENERGIES["O-Li"])
    assert best.loc["SFO-Li", "dft_ev"] == pytest.approx(DFT_PAIR_ENERGIES["SFO-Li"])
    for f in (
        "history.csv",
        "history.png",
        "best_energies.csv",
        "pair_curves.png",
        "surface_sfo-li_f-li.png",
        "summary.json",
    ):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["optuna_version"] == optuna.__version__
    assert (
        summary["sampler"]["multivariate"] is True and summary["sampler"]["constant_liar"] is False
    )
    assert 0 <= summary["converged_trial"] < 60

    # Optuna's own tools reopen the database; trials are on the exact 0.1 eV grid
    study = optuna.load_study(study_name=res.study_name, storage=study_storage(out))
    assert len(study.trials) == 60
    values = [t.value for t in study.trials]
    assert all(0 <= t.params["SFO-Li"] <= 15 for t in study.trials)
    assert study.user_attrs["params"] == ["SFO-Li", "F-Li"]

    # re-running resumes: only the missing trials are added, the old ones are untouched
    res2 = _bo(known_folder, out, 70)
    assert res2.summary["trials_added_this_run"] == 10
    study = optuna.load_study(study_name=res.study_name, storage=study_storage(out))
    assert len(study.trials) == 70 and [t.value for t in study.trials[:60]] == values
    assert _bo(known_folder, out, 70).summary["trials_added_this_run"] == 0
    # a different parameter set cannot silently resume the same study
    with pytest.raises(AnalysisError, match="use another --out"):
        _bo(known_folder, out, 70, params="SFO-Li,O-Li")


def test_top_k_from_shap_ranking(known_folder, tmp_path):
    res = _bo(known_folder, tmp_path / "topk", 12, params=None, top_k=2)
    assert set(res.params) == {"SFO-Li", "F-Li"}
    assert (tmp_path / "topk" / "pair_ranking.csv").is_file()


def test_verification_loop_feeds_results_back(known_folder, tmp_path):
    out = tmp_path / "verify"
    res = _bo(known_folder, out, 20, verify=2, replicates=2, rounds=2, run_specs=simulator)
    rep = res.verification
    assert list(rep["round"]) == [0, 0, 0, 1, 1]
    assert rep["label"].tolist()[2] == "DFT defaults"
    assert (rep["replicates"] == 2).all()
    assert {
        "predicted_ce_pct",
        "predicted_lower",
        "simulated_ce_pct",
        "simulated_std",
        "delta_vs_dft_pct",
    } <= set(rep)
    verdict = res.summary["verification"]
    assert verdict["holds"] is True and verdict["best_simulated_pct"] > verdict["dft_simulated_pct"]
    # simulator results were told to the studies (ask/tell) in the same database
    verified = optuna.load_study(study_name="seilab-ce-bo-verified", storage=study_storage(out))
    assert len(verified.trials) == 4
    assert {t.user_attrs["source"] for t in verified.trials} == {"simulator"}
    round1 = optuna.load_study(study_name="seilab-ce-bo-round1", storage=study_storage(out))
    sources = [t.user_attrs["source"] for t in round1.trials]
    assert sources[:2] == ["simulator", "simulator"] and sources.count("surrogate") == 20
    assert (out / "verification.csv").is_file() and (out / "verification.png").is_file()
    # proposals of round 1 differ from those already simulated in round 0
    cols = ["SFO-Li (eV)", "F-Li (eV)"]
    r0 = {tuple(r) for r in rep.loc[rep["round"] == 0, cols].to_numpy()[:2]}
    r1 = {tuple(r) for r in rep.loc[rep["round"] == 1, cols].to_numpy()}
    assert not r0 & r1


def test_verification_batches_get_their_own_folders(tmp_path):
    """A resumed study whose best proposals changed must not hit the old batch's campaign folder
    (a campaign folder refuses other parameter sets); an unchanged batch is reused."""
    from seilab.stages.bo_verify import simulate, verify_campaign_dir

    a = [{**DFT_PAIR_ENERGIES, "SFO-Li": 0.4}]
    b = [{**DFT_PAIR_ENERGIES, "SFO-Li": 0.5}]
    first = simulate(simulator, a, 2, tmp_path)
    assert first["replicates"].tolist() == [2]
    simulate(simulator, b, 2, tmp_path)
    da, db = (
        verify_campaign_dir(simulator, a, 2, tmp_path),
        verify_campaign_dir(simulator, b, 2, tmp_path),
    )
    assert da != db and da.is_dir() and db.is_dir()
    assert verify_campaign_dir(simulator, a, 3, tmp_path) != da  # replicates are part of the key
    stamp = (da / "manifest.parquet").stat().st_mtime_ns
    pd.testing.assert_frame_equal(simulate(simulator, a, 2, tmp_path), first)
    assert (da / "manifest.parquet").stat().st_mtime_ns == stamp


def test_verdict_needs_replicate_spread():
    from seilab.analysis.optimize import verification_verdict

    def report(sem_best, sem_dft):
        return pd.DataFrame(
            {
                "label": ["round 0 proposal 1", "DFT defaults"],
                "simulated_ce_pct": [95.0, 90.0],
                "simulated_sem": [sem_best, sem_dft],
                "within_interval": [True, False],
            }
        )

    v = verification_verdict(report(1.0, 1.5))  # 5 > 2 * hypot(1, 1.5) = 3.61
    assert v["holds"] is True and v["combined_sem_pct"] == pytest.approx(math.hypot(1.0, 1.5))
    assert v["difference_pct"] == 5.0 and v["predictions_within_interval"] == 0.5
    assert verification_verdict(report(2.0, 2.0))["holds"] is False  # 5 < 2 * 2.83
    one = verification_verdict(report(float("nan"), float("nan")))  # one replicate each
    assert one["holds"] is None and "at least 2 replicates" in one["note"]

"""The optimisation's one recipe (``BOSettings``): validation, stable hash, and that the CLI, the
stage and the pipeline's resume key all use the same object."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from seilab.analysis.optimize import BOSettings
from seilab.errors import AnalysisError
from seilab.stages.base import StageContext
from seilab.stages.bo import study_storage
from seilab.stages.bo_run import BOStage
from seilab.stages.presets import get_preset
from seilab.stages.runfolder import input_key

#: A value different from the default for every field of the recipe.
OTHER_VALUES = {
    "params": ("SFO-Li",),
    "top_k": 3,
    "surrogate": "dense_nn",
    "size": "small",
    "alpha": 0.2,
    "n_jobs": 7,
    "trials": 151,
    "seed": 1,
    "n_startup_trials": 5,
    "n_ei_candidates": 12,
    "multivariate": False,
    "constant_liar": True,
    "study_name": "other",
    "support_penalty": 0.5,
    "verify": 2,
    "replicates": 4,
    "rounds": 2,
}


def test_other_values_cover_every_field():
    assert set(OTHER_VALUES) == {f.name for f in dataclasses.fields(BOSettings)}


def test_equal_settings_hash_equally():
    a = BOSettings(params="sfo-li, F-Li", trials=30, seed=3)
    b = BOSettings(params=["SFO-Li", "e_pair_f_li_ev"], trials=30, seed=3)
    assert a == b and a.params == ("SFO-Li", "F-Li")
    assert a.settings_hash() == b.settings_hash()
    assert len(a.settings_hash()) == 16
    # the hash depends on the values only: a round trip through plain data keeps it
    assert BOSettings(**a.to_dict()) == a
    assert BOSettings(**json.loads(json.dumps(a.to_dict()))).settings_hash() == a.settings_hash()
    # pair order is part of the recipe (it is the order of the study's parameters)
    assert BOSettings(params="F-Li,SFO-Li").settings_hash() != a.settings_hash()


@pytest.mark.parametrize("name", sorted(OTHER_VALUES))
def test_every_setting_but_threads_changes_the_hash(name):
    base = BOSettings()
    other = dataclasses.replace(base, **{name: OTHER_VALUES[name]})
    assert other != base
    if name == "n_jobs":  # threads do not change what is computed
        assert other.settings_hash() == base.settings_hash()
        assert "n_jobs" not in other.identity()
    else:
        assert other.settings_hash() != base.settings_hash(), name


def test_settings_are_frozen():
    s = BOSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.trials = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"params": "Xx-Li"}, "unknown pair name"),
        ({"top_k": 0}, "--top-k must be between 1 and 19"),
        ({"surrogate": "forest"}, "unknown surrogate 'forest'"),
        ({"size": "huge"}, "--size must be 'full' or 'small'"),
        ({"alpha": 1.0}, "alpha must be between 0 and 1"),
        ({"trials": 0}, "--trials must be at least 1"),
        ({"verify": -1}, "--verify must be >= 0"),
        ({"replicates": 0}, "--replicates >= 1"),
        ({"rounds": 0}, "--rounds >= 1"),
        ({"study_name": ""}, "--study-name must not be empty"),
    ],
)
def test_bad_settings_are_refused_when_built(kw, match):
    with pytest.raises(AnalysisError, match=match):
        BOSettings(**kw)


def test_top_k_is_not_checked_when_pairs_are_given():
    assert BOSettings(params="SFO-Li", top_k=0).params == ("SFO-Li",)


# ---------------------------------------------------------------------- the stage
def _ctx(tmp_path: Path, **preset) -> StageContext:
    return StageContext(
        folder=tmp_path, preset=get_preset("smoke").with_options(**preset), jobs=2, seed=0
    )


def _key(ctx: StageContext) -> str:
    # as the pipeline computes it (seilab.report.pipeline.run_pipeline)
    return input_key({"data": "d", "after": "a", **BOStage().settings(ctx)})


def test_stage_recipe_and_resume_key(tmp_path):
    stage = BOStage()
    ctx = _ctx(tmp_path)
    recipe = stage.recipe(ctx)
    p = ctx.preset
    assert (recipe.trials, recipe.top_k, recipe.surrogate, recipe.size) == (
        p.bo_trials,
        p.bo_top_k,
        p.bo_surrogate,
        p.bo_size,
    )
    assert (recipe.verify, recipe.replicates, recipe.seed) == (p.verify, p.verify_replicates, 0)
    settings = stage.settings(ctx)
    assert {k: v for k, v in settings.items() if k != "simulator"} == recipe.identity()
    # the same options give the same key (resume skips); threads do not change it
    assert _key(_ctx(tmp_path)) == _key(ctx)
    assert _key(dataclasses.replace(ctx, jobs=9)) == _key(ctx)
    # any BO setting or the verification's simulator changes it (the stage runs again)
    assert _key(_ctx(tmp_path, bo_trials=p.bo_trials + 1)) != _key(ctx)
    assert _key(_ctx(tmp_path, verify_replicates=p.verify_replicates + 1)) != _key(ctx)
    assert _key(dataclasses.replace(ctx, seed=1)) != _key(ctx)
    assert _key(_ctx(tmp_path, cycles=(p.cycles or 0) + 1)) != _key(ctx)


def _fake_optimization(seen: list):
    """Stands in for run_optimization: records its recipe and writes a minimal summary."""

    def fake(folder, out, settings=None, **kw):
        seen.append(settings)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"trials": settings.trials, "settings_hash": settings.settings_hash()}
        (out / "summary.json").write_text(json.dumps(summary))
        best = pd.DataFrame({"pair": ["SFO-Li"], "optimised": [True], "best_ev": [0.5]})
        summary.update(best_value_pct=90.0, dft_predicted_pct=80.0)
        return SimpleNamespace(
            out=out,
            study_name=settings.study_name,
            storage=study_storage(out),
            converged_trial=1,
            best=best,
            verification=None,
            summary=summary,
        )

    return fake


def test_stage_passes_its_recipe_object(tmp_path, monkeypatch):
    import seilab.stages.bo_run as bo_run

    seen: list = []
    monkeypatch.setattr(bo_run, "run_optimization", _fake_optimization(seen))
    stage = BOStage()
    ctx = _ctx(tmp_path)
    stage.run(ctx, tmp_path / "bo")
    assert seen == [stage.recipe(ctx)]
    assert seen[0].settings_hash() == stage.recipe(ctx).settings_hash()


def test_cli_builds_one_recipe_and_passes_it(tmp_path, monkeypatch):
    import seilab.analysis.dataset as dataset
    import seilab.stages.bo_run as bo_run
    from seilab.cli import app

    seen: list = []
    monkeypatch.setattr(bo_run, "run_optimization", _fake_optimization(seen))
    monkeypatch.setattr(dataset, "check_inputs", lambda folder, out: None)
    args = ["optimize", str(tmp_path / "camp"), "--out", str(tmp_path / "bo"), "--quiet"]
    args += ["--params", "f-li,SFO-Li", "--trials", "7", "--seed", "2", "--startup", "3"]
    args += ["--surrogate", "extra_trees", "--size", "small", "-j", "1", "--verify", "2"]
    args += ["--replicates", "2", "--rounds", "3", "--study-name", "s"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen == [
        BOSettings(
            params=("F-Li", "SFO-Li"),
            surrogate="extra_trees",
            size="small",
            n_jobs=1,
            trials=7,
            seed=2,
            n_startup_trials=3,
            study_name="s",
            verify=2,
            replicates=2,
            rounds=3,
        )
    ]
    summary = json.loads((tmp_path / "bo" / "summary.json").read_text())
    assert summary["settings_hash"] == seen[0].settings_hash()


def test_cli_refuses_a_bad_recipe_before_any_work(tmp_path, monkeypatch):
    import seilab.analysis.dataset as dataset
    import seilab.stages.bo_run as bo_run
    from seilab.cli import app

    seen: list = []
    monkeypatch.setattr(bo_run, "run_optimization", _fake_optimization(seen))
    monkeypatch.setattr(dataset, "check_inputs", lambda folder, out: None)
    out = tmp_path / "bo"
    res = CliRunner().invoke(app, ["optimize", str(tmp_path), "--out", str(out), "--trials", "0"])
    assert res.exit_code != 0 and seen == [] and not out.exists()

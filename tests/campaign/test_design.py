"""Designs, seeds, run ids, user files, argument checks (no simulation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from campaign_common import TINY_ARGS, cli

from seilab import schema
from seilab.campaign import CampaignConfig, plan_campaign
from seilab.campaign import design as D
from seilab.campaign.config import dump_toml, identity_diff, read_config_file
from seilab.errors import CampaignError


def test_paper_design_is_19x16_oat_plus_76_random():
    plan = plan_campaign(CampaignConfig(design="paper"))
    assert len(plan.runs) == 380
    oat = [r for r in plan.runs if r.spec.design_set == "oat"]
    rnd = [r for r in plan.runs if r.spec.design_set == "random"]
    assert len(oat) == 19 * 16 and len(rnd) == 76
    # one pair varied at a time, on the 16-level grid, the others at the model (DFT) values
    dft = plan.base_model.pair_energies()
    for r in oat:
        ((pair, value),) = r.spec.params.items()
        assert value in D.grid_levels()
        assert r.pairs[pair] == value
        assert all(r.pairs[p] == dft[p] for p in schema.PAIRS if p != pair)
    assert {tuple(r.spec.params) for r in oat[:16]} == {("Li-Li",)}
    # random runs set every pair on the grid
    for r in rnd:
        assert set(r.spec.params) == set(schema.PAIRS)
        assert all(v in D.grid_levels() for v in r.spec.params.values())
    ids = [r.spec.run_id for r in plan.runs]
    assert len(set(ids)) == 380 and ids[0] == "oat-00000-r0" and ids[-1] == "random-00075-r0"
    assert all(r.error is None for r in plan.runs)


def test_paper_runs_submitted_random_sets_first_in_plan_order():
    from seilab.campaign.runner import _likely_longest_first

    plan = plan_campaign(CampaignConfig(design="paper"))
    order = _likely_longest_first(list(plan.runs))
    ids = [r.spec.run_id for r in order]
    # the 76 random sets (19 pairs varied) before the 304 OAT sets (one), each part in plan order
    assert ids[:76] == [r.spec.run_id for r in plan.runs if r.spec.design_set == "random"]
    assert ids[76:] == [r.spec.run_id for r in plan.runs if r.spec.design_set == "oat"]
    assert sorted(ids) == sorted(r.spec.run_id for r in plan.runs)


def test_grid_values_are_exact_decimals():
    assert D.grid_levels() == [
        0.0,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        1.0,
        1.1,
        1.2,
        1.3,
        1.4,
        1.5,
    ]


def test_seeds_are_documented_and_stable():
    ss = np.random.SeedSequence(7, spawn_key=(D.set_code("oat"), 12, 1))
    assert D.run_seed(7, "oat", 12, 1) == int(ss.generate_state(1, dtype=np.uint32)[0])
    a = plan_campaign(CampaignConfig(design="oat", replicates=2, seed=7))
    b = plan_campaign(CampaignConfig(design="oat", replicates=2, seed=7))
    c = plan_campaign(CampaignConfig(design="oat", replicates=2, seed=8))
    seeds = [r.spec.seed for r in a.runs]
    assert seeds == [r.spec.seed for r in b.runs]
    assert seeds != [r.spec.seed for r in c.runs]
    assert len(set(seeds)) == len(seeds)  # replicates differ
    assert a.runs[1].spec.run_id == "oat-00000-r1"


def test_random_design_extends_and_sobol_snaps_to_grid():
    pairs = list(schema.PAIRS)
    small, big = D.random_sets(5, pairs, 1), D.random_sets(9, pairs, 1)
    assert big[:5] == small
    sob = D.sobol_sets(16, pairs[:3], 2)
    assert len(sob) == 16
    assert all(v in D.grid_levels() for s in sob for v in s.values())
    # 16 scrambled Sobol points in 1-D hit every one of the 16 levels once
    one = D.sobol_sets(16, ["Li-Li"], 5)
    assert sorted(s["Li-Li"] for s in one) == D.grid_levels()


def test_canonical_keys():
    pairs = list(schema.PAIRS)
    for k in ("SFO-Li", "sfo-li", "pair.SFO-Li", "pairs.SFO-Li", "e_pair_sfo_li_ev"):
        assert D.canonical_key(k, pairs) == "SFO-Li"
    assert D.canonical_key("protocol.event_budget", pairs) == "protocol.event_budget"
    assert D.override_key("SFO-Li", pairs) == "pair.SFO-Li"


def test_user_files_csv_toml_json(tmp_path: Path):
    csv = tmp_path / "sets.csv"
    csv.write_text("SFO-Li,protocol.event_budget,e_pair_li_li_ev\n0.3,5,\n1.2,,0.4\n")
    assert D.read_param_file(csv) == [
        {"SFO-Li": 0.3, "protocol.event_budget": 5},
        {"SFO-Li": 1.2, "e_pair_li_li_ev": 0.4},
    ]
    toml = tmp_path / "sets.toml"
    toml.write_text('[[set]]\n"SFO-Li" = 0.3\nprotocol.event_budget = 5\n\n[[set]]\n"N-Li" = 1.0\n')
    assert D.read_param_file(toml) == [
        {"SFO-Li": 0.3, "protocol.event_budget": 5},
        {"N-Li": 1.0},
    ]
    js = tmp_path / "sets.json"
    js.write_text(json.dumps([{"O-Li": 0.5}]))
    assert D.read_param_file(js) == [{"O-Li": 0.5}]
    plan = plan_campaign(CampaignConfig(design="file", file=str(csv)))
    assert [r.spec.run_id for r in plan.runs] == ["file-00000-r0", "file-00001-r0"]
    assert plan.param_keys == ["protocol.event_budget"]
    assert plan.runs[0].params == {"protocol.event_budget": 5}
    assert plan.runs[1].pairs["Li-Li"] == 0.4 and plan.runs[1].pairs["SFO-Li"] == 1.2


def test_invalid_parameters_make_a_failed_run_not_an_error(tmp_path: Path):
    f = tmp_path / "sets.csv"
    f.write_text("SFO-Li,protocol.no_such_key\n0.3,\n2.5,\n0.2,1\n")
    plan = plan_campaign(CampaignConfig(design="file", file=str(f)))
    errs = [r.error for r in plan.runs]
    assert errs[0] is None
    assert "SFO-Li" in errs[1] and "range" in errs[1]
    assert "no_such_key" in errs[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--design", "random"], "needs --n"),
        (["--design", "sobol", "--n", "0"], "--n 0"),
        (["--design", "nope"], "unknown design"),
        (["--design", "paper", "--n", "5"], "--n applies to"),
        (["--design", "oat", "--pairs", "Li-Li,Xx-Li"], "unknown pair"),
        (["--design", "file"], "needs --file"),
        (["--design", "file", "--file", "missing.csv"], "file not found"),
        (["--design", "oat", "--replicates", "0"], "--replicates"),
        (["--design", "oat", "--seed", "-1"], "--seed"),
        (["--design", "oat", "--backend", "mpi"], "unknown backend"),
        (["--design", "oat", "--scheduler", "tcp://x:1"], "--scheduler applies"),
        (["--design", "oat", "--set", "protocol.nope=1"], "nope"),
        (["--design", "oat", "--set", "novalue"], "NAME=VALUE"),
        (["--design", "oat", "--model", "nosuchmodel"], "unknown model"),
    ],
)
def test_invalid_arguments_rejected_and_nothing_written(tmp_path: Path, args, message):
    from typer.testing import CliRunner

    from seilab.campaign.cli import app
    from seilab.errors import SeilabError

    out = tmp_path / "camp"
    res = CliRunner().invoke(app, ["run", "--out", str(out), *args, *TINY_ARGS])
    assert isinstance(res.exception, SeilabError), res.output
    assert message in str(res.exception) and "\n" not in str(res.exception)
    assert not out.exists()


def test_invalid_arguments_one_line_exit_2(tmp_path: Path):
    out = tmp_path / "camp"
    proc = cli("run", "--out", out, "--design", "random", *TINY_ARGS)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "error: --design random needs --n N (the number of parameter sets)"
    )
    assert not out.exists()


def test_config_file_and_identity(tmp_path: Path):
    doc = {
        "campaign": {"design": "random", "n": 3, "seed": 4},
        "simulator": {"cycles": 2, "box": [4, 4, 16], "set": {"protocol.event_budget": 2}},
        "execution": {"workers": 1},
        "slurm": {"cores": 4, "memory": "8GB"},
    }
    p = tmp_path / "c.toml"
    p.write_text(dump_toml(doc))
    cfg = read_config_file(p)
    assert (cfg.design, cfg.n, cfg.seed, cfg.box, cfg.workers) == ("random", 3, 4, (4, 4, 16), 1)
    assert cfg.set == {"protocol.event_budget": 2} and cfg.slurm["cores"] == 4
    assert cfg.merged(n=5, set={"pair.Li-Li": 0.2}).set == {
        "protocol.event_budget": 2,
        "pair.Li-Li": 0.2,
    }
    assert identity_diff({"box": (4, 4, 16), "n": 3}, {"box": [4, 4, 16], "n": 3}) == []
    assert identity_diff({"n": 3}, {"n": 4})
    p.write_text("[campaign]\ndesgin = 'oat'\n")
    with pytest.raises(CampaignError, match="unknown key 'desgin'"):
        read_config_file(p)


def test_dry_run_prints_plan_and_writes_nothing(tmp_path: Path):
    from typer.testing import CliRunner

    from seilab.campaign.cli import app

    out = tmp_path / "camp"
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--out",
            str(out),
            "--design",
            "sobol",
            "--n",
            "8",
            "--replicates",
            "2",
            "--dry-run",
            *TINY_ARGS,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "design sobol: 16 runs (sobol 16), 2 replicate(s)" in res.output
    assert "sobol-00000-r1" in res.output
    assert not out.exists()

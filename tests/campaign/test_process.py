"""Real process-pool campaigns: manifest, skip on re-run, failures, readers, run_param_sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_common import TINY_ARGS, TINY_BOX, TINY_CYCLES, TINY_SET, cli

from seilab import schema
from seilab.campaign import CampaignConfig, load_dataset, read_manifest, run_campaign
from seilab.campaign.store import EXTRA_MANIFEST_COLUMNS


def test_manifest_schema_and_files(tiny_campaign: Path):
    man = pq.read_table(tiny_campaign / schema.MANIFEST)
    names = man.schema.names
    n_base = len(schema.MANIFEST_COLUMNS) + len(EXTRA_MANIFEST_COLUMNS)
    assert tuple(names[: len(schema.MANIFEST_COLUMNS)]) == schema.MANIFEST_COLUMNS
    assert tuple(names[n_base : n_base + 19]) == schema.PAIR_COLUMNS
    t = man.schema
    assert t.field("seed").type == pa.int64() and t.field("n_cycles").type == pa.int32()
    assert t.field("wall_s").type == pa.float64() and t.field("run_id").type == pa.string()
    assert all(t.field(c).type == pa.float64() for c in schema.PAIR_COLUMNS)
    rows = man.to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 4
    assert all(r["n_cycles"] == TINY_CYCLES and r["error"] is None for r in rows)
    files = sorted(p.name for p in (tiny_campaign / schema.RUNS_DIR).iterdir())
    assert files == sorted(f"{r['run_id']}.parquet" for r in rows)
    for r in rows:  # the run file carries the run's seed and energies
        path = tiny_campaign / schema.RUNS_DIR / f"{r['run_id']}.parquet"
        md = json.loads(pq.read_schema(path).metadata[schema.METADATA_KEY])
        assert md["seed"] == r["seed"]
        run = pq.read_table(path).to_pylist()[0]
        assert all(run[c] == pytest.approx(r[c]) for c in schema.PAIR_COLUMNS)
    cfg = (tiny_campaign / schema.CAMPAIGN_CONFIG).read_text()
    assert 'design = "random"' in cfg and "numba =" in cfg and "dask =" in cfg


def test_rerun_skips_finished_runs(tiny_campaign: Path):
    before = {p.name: p.stat().st_mtime_ns for p in (tiny_campaign / "runs").iterdir()}
    cfg = CampaignConfig(
        design="random",
        n=4,
        seed=3,
        cycles=TINY_CYCLES,
        box=TINY_BOX,
        set=dict(TINY_SET),
        workers=2,
    )
    res = run_campaign(cfg, tiny_campaign, progress=False)
    assert res.skipped == 4 and res.ran == 0 and res.counts["done"] == 4
    assert before == {p.name: p.stat().st_mtime_ns for p in (tiny_campaign / "runs").iterdir()}


def test_mismatched_configuration_refused(tiny_campaign: Path):
    proc = cli(
        "run", "--design", "random", "--n", "5", "--seed", "3", "--out", tiny_campaign, *TINY_ARGS
    )
    assert proc.returncode == 2
    assert (
        "holds a different campaign" in proc.stderr and "n: 4 in the folder, 5 now" in proc.stderr
    )


def test_readers_pandas_polars_duckdb(tiny_campaign: Path):
    import duckdb
    import polars as pl

    man_pd = pd.read_parquet(tiny_campaign / "manifest.parquet")
    runs_pd = pd.read_parquet(tiny_campaign / "runs")  # the folder as a dataset
    assert len(man_pd) == 4 and len(runs_pd) == 4 * TINY_CYCLES

    runs_pl = pl.read_parquet(
        str(tiny_campaign / "runs" / "*.parquet"), include_file_paths="path"
    ).with_columns(pl.col("path").str.extract(r"([^/]+)\.parquet$").alias("run_id"))
    man_pl = pl.read_parquet(tiny_campaign / "manifest.parquet")
    joined = runs_pl.join(man_pl.select("run_id", "seed", "status"), on="run_id")
    assert joined.height == 4 * TINY_CYCLES and set(joined["status"]) == {"done"}

    con = duckdb.connect()
    q = f"""
        SELECT m.run_id, m.seed, avg(r.ce_pct) AS ce, count(*) AS n
        FROM read_parquet('{tiny_campaign}/runs/*.parquet', filename = true) r
        JOIN read_parquet('{tiny_campaign}/manifest.parquet') m
          ON regexp_extract(r.filename, '([^/]+)\\.parquet$', 1) = m.run_id
        GROUP BY ALL ORDER BY m.run_id
    """
    res = con.execute(q).fetchall()
    assert len(res) == 4 and all(row[3] == TINY_CYCLES for row in res)


def test_load_dataset_joins_parameters(tiny_campaign: Path):
    data = load_dataset(tiny_campaign)
    man = read_manifest(tiny_campaign)
    assert len(data) == 4 * TINY_CYCLES
    assert {"run_id", "cycle", "ce_pct", "seed", "design_set", *schema.PAIR_COLUMNS} <= set(data)
    merged = data.groupby("run_id")["seed"].first().to_dict()
    assert merged == dict(zip(man["run_id"], man["seed"], strict=True))


def test_load_dataset_reads_with_the_system_allocator_then_restores_the_default(
    tiny_campaign: Path, monkeypatch: pytest.MonkeyPatch
):
    from seilab.campaign import store

    seen = []
    real = store._read_dataset

    def spy(*a):
        seen.append(pa.default_memory_pool().backend_name)
        return real(*a)

    before = pa.default_memory_pool().backend_name
    monkeypatch.setattr(store, "_read_dataset", spy)
    assert len(load_dataset(tiny_campaign)) == 4 * TINY_CYCLES
    assert seen == ["system"] and pa.default_memory_pool().backend_name == before
    # also when loading fails
    monkeypatch.setattr(store, "_read_dataset", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        load_dataset(tiny_campaign)
    assert pa.default_memory_pool().backend_name == before


def test_failing_runs_recorded_batch_goes_on(tmp_path: Path):
    sets = tmp_path / "sets.toml"
    sets.write_text(
        '[[set]]\n"SFO-Li" = 0.3\n\n'
        '[[set]]\n"lattice.box" = [4, 4, 5]\n\n'  # valid key, but the simulator raises (nz too small)
        '[[set]]\n"protocol.no_such_key" = 1\n\n'  # bad key: recorded as failed
        '[[set]]\n"N-Li" = 1.5\n'
    )
    out = tmp_path / "camp"
    # a run's own parameters win over the campaign-wide options (the row's lattice.box here)
    args = ["run", "--design", "file", "--file", sets, "--out", out, "--workers", "2", *TINY_ARGS]
    proc = cli(*args)
    assert proc.returncode == 1, proc.stderr
    assert "2 done" in proc.stdout and "2 failed" in proc.stdout
    man = read_manifest(out).set_index("run_id")
    assert man.loc["file-00000-r0", "status"] == "done"
    assert man.loc["file-00003-r0", "status"] == "done"
    assert man.loc["file-00001-r0", "status"] == "failed"
    assert "ModelError" in man.loc["file-00001-r0", "error"]
    assert "nz" in man.loc["file-00001-r0", "error"]
    assert man.loc["file-00002-r0", "status"] == "failed"
    assert "no_such_key" in man.loc["file-00002-r0", "error"]
    assert man.loc["file-00001-r0", "param.lattice.box"] == "[4, 4, 5]"
    assert not (out / "runs" / "file-00001-r0.parquet").exists()
    st = cli("status", out)
    assert st.returncode == 0
    assert "2 done, 2 failed, 0 pending" in st.stdout and "file-00002-r0" in st.stdout
    js = json.loads(cli("status", out, "--json").stdout)
    assert js["counts"] == {"done": 2, "failed": 2, "pending": 0}
    # a re-run tries the failed runs again (and fails them again), the done ones are skipped
    again = cli(*args)
    assert again.returncode == 1 and "2 already finished" in again.stdout


def test_run_param_sets(tmp_path: Path):
    from seilab.campaign import run_param_sets

    sets = [{"SFO-Li": 0.3}, {"SFO-Li": 1.2, "Li-Li": 0.0}]
    df = run_param_sets(
        sets,
        2,
        tmp_path / "verify",
        cycles=TINY_CYCLES,
        box=TINY_BOX,
        overrides=dict(TINY_SET),
        workers=2,
        seed=1,
    )
    assert len(df) == 4
    assert list(df["spec"]) == [0, 0, 1, 1] and list(df["replicate"]) == [0, 1, 0, 1]
    assert {"run_id", "SFO-Li", "Li-Li", "seed", "status", "ce_mean_pct"} <= set(df)
    assert (df["status"] == "done").all()
    assert df["seed"].nunique() == 4
    ce = load_dataset(tmp_path / "verify").groupby("run_id")["ce_pct"].mean()
    for rid, v in zip(df["run_id"], df["ce_mean_pct"], strict=True):
        assert (math.isnan(v) and math.isnan(ce[rid])) or v == pytest.approx(ce[rid])
    # the same call resumes (nothing to run) and returns the same table
    again = run_param_sets(
        sets,
        2,
        tmp_path / "verify",
        cycles=TINY_CYCLES,
        box=TINY_BOX,
        overrides=dict(TINY_SET),
        workers=2,
        seed=1,
    )
    pd.testing.assert_frame_equal(df.drop(columns="wall_s"), again.drop(columns="wall_s"))

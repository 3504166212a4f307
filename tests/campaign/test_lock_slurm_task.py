"""The folder lock, the SLURM job script, and the worker task module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from campaign_common import TINY_ARGS, cli

from seilab.campaign.backends import SLURM_PROLOGUE, slurm_job_script
from seilab.campaign.config import read_config_file
from seilab.campaign.runner import folder_lock
from seilab.errors import CampaignError


def test_lock_refuses_a_second_process(tmp_path: Path):
    out = tmp_path / "camp"
    out.mkdir()
    with folder_lock(out):
        proc = cli("run", "--design", "oat", "--pairs", "Li-Li", "--out", out, *TINY_ARGS)
        assert proc.returncode == 2
        assert (
            f"error: campaign folder {out} is in use by another process (pid {os.getpid()})"
            in proc.stderr
        )
        with pytest.raises(CampaignError, match="in use by another process"):
            with folder_lock(out):
                pass
        assert not (out / "campaign.toml").exists()
    with folder_lock(out):  # released
        pass


SLURM_CONFIG = """
[campaign]
design = "paper"

[simulator]
cycles = 100

[execution]
backend = "slurm"

[slurm]
queue = "compute"
account = "chem123"
cores = 8
processes = 8
memory = "16GB"
walltime = "04:00:00"
job_extra_directives = ["--exclusive", "--constraint=cpu"]
jobs = 4
"""


def test_slurm_job_script_from_campaign_config(tmp_path: Path):
    cfg_path = tmp_path / "campaign.toml"
    cfg_path.write_text(SLURM_CONFIG)
    cfg = read_config_file(cfg_path)
    script = slurm_job_script(cfg.slurm, "tcp://10.0.0.1:8786")
    lines = script.splitlines()
    assert lines[0].startswith("#!")
    sbatch = [ln for ln in lines if ln.startswith("#SBATCH")]
    for directive in (
        "#SBATCH -p compute",
        "#SBATCH -A chem123",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH -t 04:00:00",
        "#SBATCH --exclusive",
        "#SBATCH --constraint=cpu",
    ):
        assert directive in sbatch, script
    assert any(ln.startswith("#SBATCH --mem=") for ln in sbatch)
    for line in SLURM_PROLOGUE:
        assert line in lines
    worker = lines[-1]
    assert "tcp://10.0.0.1:8786" in worker and "--nworkers 8" in worker and "--nthreads 1" in worker
    # the kwargs are those SLURMCluster accepts: the cluster (no job submitted) renders the same
    from dask_jobqueue import SLURMCluster

    from seilab.campaign.backends import slurm_cluster_kwargs

    kwargs = slurm_cluster_kwargs(cfg.slurm)
    with SLURMCluster(**kwargs, scheduler_options={"dashboard_address": None}) as cluster:
        cluster_script = cluster.job_script()
    assert [ln for ln in cluster_script.splitlines() if ln.startswith("#SBATCH")] == sbatch
    # the same through the CLI
    proc = cli("slurm-script", "--config", cfg_path)
    assert proc.returncode == 0 and "#SBATCH -A chem123" in proc.stdout
    # incomplete settings: one clear line
    bad = tmp_path / "bad.toml"
    bad.write_text("[slurm]\nqueue = 'x'\n")
    with pytest.raises(CampaignError, match="cores and memory"):
        slurm_job_script(read_config_file(bad).slurm)


def test_task_module_imports_without_side_effects():
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import seilab.campaign.task as t\n"
        "assert 'numba' not in sys.modules, 'numba imported'\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported'\n"
        "assert dict(os.environ) == before, 'environment changed'\n"
        "t.prepare_worker_env()\n"
        "assert os.environ['NUMBA_NUM_THREADS'] == '1' and os.environ['OMP_NUM_THREADS'] == '1'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_numba_cache_dir_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from seilab.campaign import task

    assert task.filesystem_type("/proc") == "proc"
    assert not task.is_network_fs(tmp_path)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert task.local_numba_cache_dir() is None  # a local user setting is kept
    monkeypatch.setattr(task, "is_network_fs", lambda p: True)
    monkeypatch.setenv("SEILAB_LOCAL_CACHE", str(tmp_path / "local"))
    assert task.local_numba_cache_dir() == str(tmp_path / "local")
    monkeypatch.delenv("SEILAB_LOCAL_CACHE")
    assert "seilab-numba-cache-" in task.local_numba_cache_dir()


def test_registered_in_the_seilab_cli():
    from typer.testing import CliRunner

    from seilab.cli import app  # must import: a broken CLI fails here, never skips

    res = CliRunner().invoke(app, ["campaign", "--help"])
    assert res.exit_code == 0 and "status" in res.output


def test_long_pending_slurm_job_is_reported_once(caplog: pytest.LogCaptureFixture):
    """A job that waits in the queue past the threshold is named once, with SLURM's reason."""
    from types import SimpleNamespace

    from seilab.campaign.backends import SLURM_PENDING_WARN_S, _warn_long_pending

    cluster = SimpleNamespace()
    with caplog.at_level("WARNING", logger="seilab.campaign"):
        _warn_long_pending(cluster, {"7": "ReqNodeNotAvail"}, now=0.0)
        _warn_long_pending(cluster, {"7": "ReqNodeNotAvail"}, now=SLURM_PENDING_WARN_S / 2)
        assert not caplog.records  # not yet
        _warn_long_pending(cluster, {"7": "ReqNodeNotAvail"}, now=SLURM_PENDING_WARN_S)
        _warn_long_pending(cluster, {"7": "ReqNodeNotAvail"}, now=2 * SLURM_PENDING_WARN_S)
        _warn_long_pending(cluster, {}, now=3 * SLURM_PENDING_WARN_S)  # job 7 started
        _warn_long_pending(cluster, {"8": "Resources"}, now=3 * SLURM_PENDING_WARN_S)
    assert len(caplog.records) == 1
    assert "job 7" in caplog.text and "ReqNodeNotAvail" in caplog.text

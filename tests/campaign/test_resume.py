"""Kill and resume: SIGKILL of the parent, SIGKILL of a worker, SIGTERM; then re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from campaign_common import cli

from seilab import schema
from seilab.campaign import read_manifest
from seilab.campaign.runner import plan_campaign

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")

ARGS = [
    "--design",
    "oat",
    "--pairs",
    "Li-Li,F-Li",
    "--workers",
    "2",
    "--seed",
    "5",
    "--cycles",
    "2",
    "--box",
    "4",
    "4",
    "16",
    "--set",
    "protocol.event_budget=3",
    "--set",
    "protocol.stall_ends_run=false",
]


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seilab.campaign", "run", "--out", str(out), *ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _n_files(out: Path) -> int:
    d = out / schema.RUNS_DIR
    return len(list(d.glob("*.parquet"))) if d.is_dir() else 0


def _wait_files(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120) -> None:
    t0 = time.time()
    while _n_files(out) < n:
        assert proc.poll() is None, f"campaign ended early: {proc.communicate()}"
        assert time.time() - t0 < timeout, "campaign made no progress"
        time.sleep(0.01)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(p.name))
    return kids


def _descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_gone(pids: list[int], timeout: float = 60) -> None:
    t0 = time.time()
    while any(Path(f"/proc/{p}").exists() and "zombie" not in _state(p) for p in pids):
        if time.time() - t0 > timeout:
            break
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return "zombie" if stat.rsplit(")", 1)[1].split()[0] == "Z" else "alive"
    except OSError:
        return "zombie"


def _check_complete(out: Path) -> None:
    from seilab.campaign import CampaignConfig

    plan = plan_campaign(
        CampaignConfig(
            design="oat",
            pairs=["Li-Li", "F-Li"],
            seed=5,
            cycles=2,
            box=(4, 4, 16),
            set={"protocol.event_budget": 3, "protocol.stall_ends_run": False},
        )
    )
    ids = sorted(r.spec.run_id for r in plan.runs)
    man = read_manifest(out)
    assert sorted(man["run_id"]) == ids  # every run exactly once
    assert (man["status"] == "done").all()
    files = sorted(p.name for p in (out / schema.RUNS_DIR).iterdir())
    assert files == [f"{i}.parquet" for i in ids]  # no temporary or extra file
    seeds = dict(zip(man["run_id"], man["seed"], strict=True))
    for r in plan.runs:
        path = out / schema.RUNS_DIR / f"{r.spec.run_id}.parquet"
        t = pq.read_table(path)  # every file readable and complete
        assert t.num_rows == 2
        assert seeds[r.spec.run_id] == r.spec.seed
    assert not (out / "quarantine").exists()


def test_sigkill_parent_then_rerun(tmp_path: Path):
    out = tmp_path / "camp"
    proc = _start(out)
    _wait_files(proc, out, 3)
    family = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the manifest (if written yet) is never half-written; done rows have their file
    if (out / schema.MANIFEST).exists():
        man = read_manifest(out)
        for rid in man.loc[man["status"] == "done", "run_id"]:
            assert (out / schema.RUNS_DIR / f"{rid}.parquet").is_file()
    n_at_kill = _n_files(out)
    assert n_at_kill < 32, "the campaign finished before it could be killed"
    again = cli("run", "--out", out, *ARGS)
    assert again.returncode == 0, again.stderr
    assert "32 done" in again.stdout and "0 failed" in again.stdout
    _wait_gone(family)
    _check_complete(out)


def test_sigkill_worker_and_sigterm_then_resume(tmp_path: Path):
    out = tmp_path / "camp"
    proc = _start(out)
    _wait_files(proc, out, 2)
    # the pool's workers are children of the forkserver, itself a child of the campaign
    servers = [p for p in _descendants(proc.pid) if "forkserver" in _cmdline(p)]
    workers = [w for s in servers for w in _descendants(s)]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    n = _n_files(out)
    _wait_files(proc, out, n + 2)  # the campaign goes on with a fresh pool
    family = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before SIGTERM arrived
        assert "32 done" in stdout
    else:
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr
        man = read_manifest(out)  # written on SIGTERM
        assert (man["status"] == "pending").any() or (man["status"] == "done").all()
    resumed = cli("resume", out, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "32 done" in resumed.stdout
    _wait_gone(family)
    _check_complete(out)

"""Compile-once warm-up: marker per kernel stamp, no self-deadlock, concurrent starts agree."""

import os
import subprocess
import sys

from seilab.kmc import kernels as K
from seilab.kmc import warmup
from seilab.kmc.engine import exercise_kernels


def _env():
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(warmup.__file__)))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_marker_names_the_kernel_file_stamp_and_versions():
    st = os.stat(K.__file__)
    name = warmup.marker_path().name
    assert name.startswith(f"seilab-warm-{int(st.st_mtime)}-{st.st_size}-nb")
    assert warmup.marker_path().parent == warmup.cache_dir()


def test_module_entry_point_fills_the_marker_without_waiting_on_itself():
    # the process that compiles runs a simulation, which comes back through the lock
    marker = warmup.marker_path()
    if marker.exists():
        marker.unlink()
    out = subprocess.run(
        [sys.executable, "-m", "seilab", "warmup"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "seilab kernels ready" in out.stdout
    assert marker.exists()
    again = subprocess.run(
        [sys.executable, "-m", "seilab", "warmup"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert "already cached" in again.stdout


def test_two_processes_starting_together_both_simulate():
    marker = warmup.marker_path()
    if marker.exists():
        marker.unlink()
    code = (
        "from seilab.kmc import simulate; "
        "print(simulate('paper', cycles=1, seed=4, box=(4, 4, 16)).table.num_rows)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    assert outs[0][0].strip() == outs[1][0].strip() == "1"
    assert marker.exists()
    # one of them compiled, and said so; the other waited for it
    said = ["compiling the kMC kernels" in err for _, err in outs]
    assert sorted(said) == [False, True], [e for _, e in outs]


def test_seilab_warmup_command_reports_the_cache():
    from typer.testing import CliRunner

    from seilab.cli import app

    warmup.ensure_compiled(exercise_kernels)
    out = CliRunner().invoke(app, ["warmup"])
    assert out.exit_code == 0, out.output
    assert "seilab kernels ready in" in out.output

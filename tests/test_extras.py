"""A command that needs a missing extra says which in one line, exits 2 and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seilab.errors import EXTRAS, MissingExtraError, require_extra

# Hide the ML stack from the child (as if only `pip install seilab` had run), then call the CLI.
_HIDE_ML = (
    "import sys\n"
    f"for m in {EXTRAS['ml']!r}: sys.modules[m] = None\n"
    "from seilab.cli import main\n"
    "sys.argv = ['seilab', *sys.argv[1:]]\n"
    "main()\n"
)


def _cli_without_ml(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.run(
        [sys.executable, "-c", _HIDE_ML, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("analyze", "ce", "CAMP", "--out", "OUT"), "seilab analyze ce"),
        (("analyze", "failure", "CAMP", "--out", "OUT"), "seilab analyze failure"),
        (("optimize", "CAMP", "--out", "OUT"), "seilab optimize"),
        (("run", "--out", "OUT", "--preset", "smoke"), "seilab run"),
        (
            ("calibrate", "--spec", "S.toml", "--targets", "T.toml", "--out", "OUT"),
            "seilab calibrate",
        ),
    ],
)
def test_missing_ml_extra_is_one_line(tmp_path: Path, args: tuple[str, ...], what: str):
    camp = tmp_path / "camp"
    camp.mkdir()
    out = tmp_path / "out"
    argv = [str(camp) if a == "CAMP" else str(out) if a == "OUT" else a for a in args]
    proc = _cli_without_ml(*argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {what} needs the 'ml' extra: pip install 'seilab[ml]'")
    assert not out.exists()


def test_require_extra_names_missing_modules(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(MissingExtraError, match=r"needs the 'cluster' extra.*dask_jobqueue"):
        require_extra("cluster", "the SLURM backend")
    require_extra("ml", "this test")  # the test environment has the ML stack

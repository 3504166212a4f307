"""Every command checks its inputs and its output location before any work, writes nothing on
a bad one, and says so in one line (exit status 2)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A location no one can write to, even root: a path below a regular file."""
    f = tmp_path / "a-file"
    f.write_text("not a folder\n")
    return f / "sub"


def _main(monkeypatch, capsys, *args: str | Path) -> str:
    from seilab import cli

    monkeypatch.setattr("sys.argv", ["seilab", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_simulate_unwritable_out_fails_before_simulating(blocked, monkeypatch, capsys):
    err = _main(monkeypatch, capsys, "simulate", "--out", blocked / "run.parquet", "--cycles", "1")
    assert f"--out {blocked / 'run.parquet'}: cannot write there" in err


def test_simulate_snapshot_dir_checked(tmp_path, blocked, monkeypatch, capsys):
    out = tmp_path / "run.parquet"
    args = ("simulate", "--out", out, "--snapshots", "1", "--snapshot-dir", blocked)
    err = _main(monkeypatch, capsys, *args)
    assert "--snapshot-dir" in err and not out.exists()


def test_campaign_run_unwritable_out(blocked, monkeypatch, capsys):
    err = _main(monkeypatch, capsys, "campaign", "run", "--design", "oat", "--out", blocked)
    assert "cannot write there" in err


def test_run_unwritable_out(blocked, monkeypatch, capsys):
    err = _main(monkeypatch, capsys, "run", "--out", blocked, "--preset", "smoke")
    assert "cannot write there" in err


@pytest.mark.parametrize("command", [["analyze", "ce"], ["analyze", "failure"], ["optimize"]])
def test_analysis_missing_input_writes_nothing(tmp_path, monkeypatch, capsys, command):
    out = tmp_path / "x"
    err = _main(monkeypatch, capsys, *command, tmp_path / "missing", "--out", out)
    assert "folder does not exist" in err
    assert not out.exists()


@pytest.mark.parametrize("command", [["analyze", "ce"], ["analyze", "failure"], ["optimize"]])
def test_analysis_unwritable_out(tmp_path, blocked, monkeypatch, capsys, command):
    camp = tmp_path / "camp"
    camp.mkdir()
    (camp / "manifest.parquet").write_bytes(b"")  # only its presence is checked first
    err = _main(monkeypatch, capsys, *command, camp, "--out", blocked)
    assert "cannot write there" in err


def test_report_unwritable_output(tmp_path, blocked, monkeypatch, capsys):
    err = _main(monkeypatch, capsys, "report", tmp_path, "--output", blocked / "r.html")
    assert "--output" in err

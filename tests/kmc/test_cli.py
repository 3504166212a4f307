"""`seilab simulate` and `seilab model` from the command line, including bad input."""

import subprocess
import sys

import pyarrow.parquet as pq
import pytest


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "seilab.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_simulate_writes_one_row_per_cycle_and_snapshots(tmp_path):
    out = tmp_path / "run.parquet"
    r = run(
        "simulate",
        "--out",
        str(out),
        "--cycles",
        "2",
        "--box",
        "4",
        "4",
        "16",
        "--seed",
        "3",
        "--set",
        "pair.Li-Li=0.3",
        "--snapshots",
        "2",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 2
    assert t.column("e_pair_li_li_ev").to_pylist() == [0.3, 0.3]
    xyz = (tmp_path / "run_xyz" / "cycle_0002.xyz").read_text().splitlines()
    assert int(xyz[0]) == len(xyz) - 2 and "Lattice=" in xyz[1]


def test_extended_xyz_rows_match_the_declared_properties(tmp_path):
    out = tmp_path / "r.parquet"
    assert (
        run(
            "simulate",
            "--out",
            str(out),
            "--cycles",
            "1",
            "--box",
            "4",
            "4",
            "16",
            "--snapshots",
            "1",
            "--no-progress",
        ).returncode
        == 0
    )
    lines = (tmp_path / "r_xyz" / "cycle_0001.xyz").read_text().splitlines()
    props = lines[1].split("Properties=")[1].split()[0].split(":")
    ncol = sum(int(props[i + 2]) for i in range(0, len(props), 3))
    assert all(len(row.split()) == ncol for row in lines[2:])


def test_model_show_and_validate(tmp_path):
    r = run("model", "show")
    assert r.returncode == 0 and "[pairs]" in r.stdout and '"SFO-Li"' in r.stdout
    f = tmp_path / "m.toml"
    f.write_text(r.stdout)
    assert run("model", "validate", str(f)).returncode == 0


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--set", "pair.Li-X=1"], "unknown pair 'Li-X'"),
        (["--set", "pair.Li-Li=1.7"], "outside the allowed range"),
        (["--set", "reactions.plating.k0=-1"], "reactions.plating.k0"),
        (["--box", "4", "4", "5"], "too small for the"),
        (["--set", "nope.x=1"], "unknown name 'nope'"),
    ],
)
def test_bad_input_one_line_nonzero_exit_no_output(tmp_path, args, text):
    out = tmp_path / "run.parquet"
    r = run("simulate", "--out", str(out), "--no-progress", *args)
    assert r.returncode == 2
    assert text in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_model_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    out = tmp_path / "o.parquet"
    r = run("simulate", "--out", str(out), "--model", str(bad), "--no-progress")
    assert r.returncode == 2 and "bad.toml: malformed TOML" in r.stderr
    assert not out.exists()

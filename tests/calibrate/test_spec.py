"""Spec and targets files are validated like model files: one clear line, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seilab.calibrate import bundled_file, load_spec, load_targets
from seilab.calibrate.knobs import knob_overrides
from seilab.calibrate.search import prepare
from seilab.calibrate.spec import CalibrationError
from seilab.calibrate.statistics import STATISTICS

GOOD_SPEC = """
[calibration]
model = "paper"
cycles = 4
box = [5, 5, 20]
trials = 2

[knobs.scan]
key = "protocol.scan_interval_s"
range = [360.0, 36000.0]
log = true
source = "test"
"""
GOOD_TARGETS = """
[targets.events_per_charge_half]
value = 20
tolerance = 2
source = "test"
"""


def _write(tmp: Path, spec: str = GOOD_SPEC, targets: str = GOOD_TARGETS) -> tuple[Path, Path]:
    s, t = tmp / "spec.toml", tmp / "targets.toml"
    s.write_text(spec)
    t.write_text(targets)
    return s, t


def _err(tmp: Path, spec: str = GOOD_SPEC, targets: str = GOOD_TARGETS) -> str:
    s, t = _write(tmp, spec, targets)
    with pytest.raises(CalibrationError) as info:
        prepare(None, s, t)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_good_files_pass(tmp_path):
    s, t = _write(tmp_path)
    sp, tg, m, arg, cycles = prepare(None, s, t)
    assert arg == "paper" and cycles == 4 and sp.knobs[0].log
    assert tg.targets[0].statistic == "events_per_charge_half"
    over, box = knob_overrides(sp, {"scan": 7200.0}, m)
    assert over == {"protocol.scan_interval_s": 7200.0} and box == [5, 5, 20]


@pytest.mark.parametrize(
    ("targets", "expect"),
    [
        (
            '[targets.nope]\nvalue = 1\ntolerance = 1\nsource = "x"\n',
            [
                "targets.toml",
                "key 'targets.nope'",
                "unknown statistic 'nope'",
                "events_per_charge_half",
            ],
        ),
        (
            "[targets.end_half]\nvalue = 1\ntolerance = 1\n",
            ["targets.toml", "key 'targets.end_half.source'", "required"],
        ),
        (
            '[targets.end_half]\nvalue = "a lot"\ntolerance = 1\nsource = "x"\n',
            ["key 'targets.end_half.value'", "must be a number"],
        ),
        (
            '[targets.end_half]\nvalue = 1\ntolerance = 0\nsource = "x"\n',
            ["key 'targets.end_half.tolerance'", "> 0"],
        ),
        (
            '[targets.end_half]\nvalue = 1\ntolerance = 1\nsource = "x"\nweight = 2\n',
            ["key 'targets.end_half.weight'", "unknown key", "allowed:"],
        ),
        (
            '[targets.s]\nstatistic = "sei_sites_at_half"\nhalf = 1.5\nvalue = 1\ntolerance = 1\nsource = "x"\n',
            ["key 'targets.s.half'", "integer"],
        ),
        (
            '[targets.spearman_Li-Li]\nvalue = -1\ntolerance = 1\nsource = "x"\n',
            ["key 'targets.spearman_Li-Li'", "one-at-a-time", "allowed: mini, screen"],
        ),
    ],
)
def test_bad_targets(tmp_path, targets, expect):
    msg = _err(tmp_path, targets=targets)
    for e in expect:
        assert e in msg, msg


KNOB = '\n[knobs.k]\nsource = "test"\n'


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (
            KNOB + 'key = "protocol.no_such_key"\nrange = [1.0, 2.0]\n',
            ["key 'knobs.k.key'", "no_such_key", "allowed:"],
        ),
        (
            KNOB + 'key = "reactions.nope.k0"\nrange = [1.0, 2.0]\n',
            ["key 'knobs.k.key'", "'nope'", "f5d"],
        ),
        (
            KNOB + 'key = "protocol.reject_fraction"\nrange = [0.1, 2.0]\n',
            ["key 'knobs.k.range'", "2.0 is outside what the model allows", "reject_fraction"],
        ),
        (
            KNOB + 'key = "protocol.event_budget"\nrange = [10.0, 60.5]\n',
            ["key 'knobs.k.range'", "integers"],
        ),
        (
            KNOB + 'key = "reactions.f5d.enabled"\nrange = [0, 1]\n',
            ["key 'knobs.k.range'", "values = [...]"],
        ),
        (
            KNOB + 'key = "reactions.f5d.enabled"\nvalues = [true, "no"]\n',
            ["key 'knobs.k.values'", "'no' is a str"],
        ),
        (KNOB + 'key = "lattice.box.nz"\nrange = [1, 30]\n', ["key 'knobs.k.range'", "2 cubes"]),
        (KNOB + 'key = "lattice.box.nz"\nrange = [6, 30]\n', ["key 'knobs'", "nz >= 8"]),
        (
            KNOB + 'key = "reactions.f5d.k0"\nrange = [0.0, 1.0]\nlog = true\n',
            ["key 'knobs.k.range'", "lo > 0"],
        ),
        (
            '\n[knobs.k]\nkey = "reactions.f5d.k0"\nrange = [1e-6, 1e-5]\n',
            ["key 'knobs.k.source'", "required"],
        ),
        (
            KNOB + 'key = "reactions.f5d.k0"\nrange = [1e-6, 1e-5]\nlo = 1\n',
            ["key 'knobs.k.lo'", "unknown key"],
        ),
        (KNOB + 'key = "reactions.f5d.k0"\n', ["key 'knobs.k'", "exactly one of range"]),
        (
            KNOB + 'key = "protocol.scan_interval_s"\nvalues = [1.0]\n',
            ["key 'knobs.k.key'", "also set by 'knobs.scan'"],
        ),
    ],
)
def test_bad_knobs(tmp_path, extra, expect):
    msg = _err(tmp_path, spec=GOOD_SPEC + extra)
    assert "spec.toml" in msg
    for e in expect:
        assert e in msg, msg


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        (GOOD_SPEC.replace("trials = 2", "trials = 0"), ["calibration.trials", ">= 1"]),
        (GOOD_SPEC.replace("[calibration]", "[calibrate]"), ["unknown section [calibrate]"]),
        (
            GOOD_SPEC.replace("trials = 2", 'design = "huge"'),
            ["calibration.design", "single, mini, screen"],
        ),
        (
            GOOD_SPEC + '\n[search]\nsampler = "grid"\n',
            ["knobs.scan", "grid sampler needs `values`"],
        ),
        (GOOD_SPEC + '\n[execution]\nbackend = "slurm"\n', ["execution.backend", "dask, process"]),
        (GOOD_SPEC.replace('model = "paper"', 'model = "nope"'), ["unknown model 'nope'"]),
    ],
)
def test_bad_spec(tmp_path, spec, expect):
    msg = _err(tmp_path, spec=spec)
    for e in expect:
        assert e in msg, msg


def test_cli_bad_input_exit_2_nothing_written(tmp_path):
    s, t = _write(tmp_path, targets='[targets.nope]\nvalue = 1\ntolerance = 1\nsource = "x"\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "seilab.cli", "calibrate", "--spec", str(s), "--targets", str(t)]
    r = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown statistic 'nope'" in lines[0] and "targets.toml" in lines[0]
    assert not out.exists()


def test_registry_and_shipped_files():
    assert len(STATISTICS) == len(set(STATISTICS))
    for st in STATISTICS.values():
        assert st.description and st.unit
    tg = load_targets(bundled_file("targets", "reference-run"))
    assert all(t.source for t in tg.targets)
    sp = load_spec(bundled_file("specs", "paper-reference"))
    names = {k.name for k in sp.knobs}
    assert {"scan_interval", "box_height", "slab_thickness", "sfo_parent", "f5d_k0"} <= names
    # the shipped pair validates against the paper model
    prepare(None, sp, tg)

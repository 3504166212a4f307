"""Small-box, few-run version of the fidelity study (benchmarks/fidelity.py).

The statistics live in :mod:`seilab.calibrate.fidelity` (the building block of
``seilab calibrate``); the benchmark script runs the candidates and re-exports them.

The study itself runs the paper design (or its documented screening subset) in 10 x 10 x nz
boxes for 100 cycles; here the ``mini`` subset (6 runs: OAT of Li-Li and SFO-Li at 0.0 and
1.5 eV plus 2 random sets) runs in a 4 x 4 x 16 box for 4 cycles under two candidate
settings, and the comparison table must come out with every statistic filled: a number where
one is defined, an explicit ``undefined (...)`` text where it is not, never NaN or empty.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fid():
    spec = importlib.util.spec_from_file_location("fidelity", REPO / "benchmarks" / "fidelity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fidelity"] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


def _is_number(text: str) -> bool:
    try:
        return not math.isnan(float(text))
    except ValueError:
        return False


def _check_filled(table: pd.DataFrame, fid) -> None:
    assert not table.isna().any().any()
    for cand, row in table.iterrows():
        for stat, cell in row.items():
            cell = str(cell)
            assert cell.strip(), (cand, stat)
            assert cell.lower() != "nan", (cand, stat)
            if cand != "paper" and not _is_number(cell):
                # text is allowed only for explicit undefined values, yes/no flags, intervals,
                # the "k/n" counts and the criteria summary
                assert (
                    cell.startswith(fid.UNDEFINED + " (")
                    or cell in ("yes", "no")
                    or cell.startswith("[")
                    or "/" in cell
                ), (cand, stat, cell)


def test_mini_study_table_filled(fid, tmp_path):
    names = ["legacy", "kp15-b30-z30"]
    table, stats = fid.study(
        names,
        "mini",
        root=tmp_path / "runs",
        cycles=4,
        box=(4, 4, 16),
        workers=2,
        table_dir=tmp_path / "tables",
        fig_dir=tmp_path / "figs",
    )
    assert list(table.index) == ["paper", *names]
    csv = pd.read_csv(
        tmp_path / "tables" / "fidelity_mini.csv", index_col=0, dtype=str, keep_default_na=False
    )
    assert list(csv.index) == ["paper", *names]
    _check_filled(csv, fid)
    md = (tmp_path / "tables" / "fidelity_mini.md").read_text()
    assert "failure_cycle_median" in md and "nan" not in md.lower().split("candidates:")[0]
    for name in names:
        s = stats[name]
        assert s["runs"] == 6 and s["cycles_total"] <= 24
        assert 0.0 <= s["fraction_failing"] <= 1.0
        # required numbers are numbers
        for key in ("share_ce_95_105", "ce_min_pct", "share_charge_halves_at_budget"):
            assert isinstance(s[key], float) and not math.isnan(s[key])
        # the failure statistics are numbers exactly when some run fails
        if s["runs_failing"]:
            assert isinstance(s["failure_cycle_median"], float)
        else:
            assert s["failure_cycle_median"] == "undefined (no failing run)"
        # Li-Li and SFO-Li have 2 OAT levels each; the other Li-X pairs none
        assert s["spearman_F-Li"] == "undefined (fewer than 2 OAT levels)"
    for fig in ("ce", "failure", "oat"):
        assert (tmp_path / "figs" / f"fidelity_mini_{fig}.png").stat().st_size > 0


def test_benchmark_uses_the_package_statistics(fid):
    from seilab.calibrate import fidelity

    assert fid.candidate_stats is fidelity.candidate_stats
    assert fid.comparison_table is fidelity.comparison_table


def test_undefined_statistics_are_explicit():
    from seilab.calibrate import fidelity as fid

    # two runs that never fail (CE 100 % and 120 %) and one OAT pair with constant CE
    rows = []
    for run, ce in (("a", 100.0), ("b", 120.0)):
        for c in (1, 2, 3):
            rows.append(
                dict(
                    run_id=run,
                    cycle=c,
                    ce_pct=ce,
                    end_ch="budget",
                    end_dis="budget",
                    n_sp_eth=100,
                    slab_height_a=40.0,
                )
            )
    data = pd.DataFrame(rows)
    meta = pd.DataFrame(
        {"kind": ["oat", "oat"], "pair": ["Li-Li", "Li-Li"], "level": [0.0, 1.5]},
        index=pd.Index(["a", "b"], name="run_id"),
    )
    s = fid.candidate_stats(data, meta, box_height_a=100.0)
    assert s["runs_failing"] == 0 and s["fraction_failing"] == 0.0
    for key in (
        "failure_cycle_median",
        "failure_cycle_q1",
        "failure_cycle_q3",
        "failure_cycle_iqr",
        "share_failing_in_75_83",
        "median_electrolyte_left_at_failure",
    ):
        assert s[key] == "undefined (no failing run)", key
    assert s["spearman_Li-Li"] == pytest.approx(1.0)
    assert s["spearman_SFO-Li"] == "undefined (fewer than 2 OAT levels)"
    assert s["sfo_li_best_level_ev"].startswith("undefined (")
    assert s["wall_s"] == "undefined (not recorded)"
    table = fid.comparison_table({"x": s})
    _check_filled(table, fid)
    assert table.loc["x", "failure_cycle_median"] == "undefined (no failing run)"
    # a NaN must never reach the table silently
    with pytest.raises(ValueError, match="NaN"):
        fid.comparison_table({"y": {**s, "ce_median_pct": float("nan")}})
    # constant CE over the OAT levels: the sign is undefined, said so
    data2 = data.assign(ce_pct=100.0)
    s2 = fid.candidate_stats(data2, meta, box_height_a=100.0)
    assert s2["spearman_Li-Li"] == "undefined (mean CE constant over levels)"
    assert np.isclose(s2["share_ce_95_105"], 1.0)

"""The statistics registry: end of runs, per-half bookkeeping, Li ledger, loss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seilab.calibrate.search import UNDEFINED_Z, trial_loss
from seilab.calibrate.spec import Target, TargetSet
from seilab.calibrate.statistics import STATISTICS, TrialData, compute, run_ends

A = 4.0
BOX = (4, 4, 10)  # box height 40 A


def _row(run, cycle, **kw):
    base = dict(
        run_id=run,
        cycle=cycle,
        end_reason="completed",
        n_events_ch=10,
        n_events_dis=10,
        end_ch="budget",
        end_dis="budget",
        n_sp_eth=100,
        slab_height_a=20.0,
        q_ch_e=10,
        q_dis_e=9,
        ce_pct=90.0,
        n_sei_sites=5 * cycle,
        n_li_metal=100 + cycle,
        n_li_total=110 + cycle,
        li_plated=4,
        li_stripped=3,
        li_wrap_created=0,
        li_framework_filled=0,
        li_framework_removed=0,
    )
    for c in (
        "plating",
        "plating_sei",
        "fsi",
        "sfo",
        "sol",
        "sol2",
        "f5d",
        "stripping",
        "li_surface",
    ):
        base[f"n_rxn_{c}"] = 0
    base.update(n_rxn_plating=4, n_rxn_fsi=5, n_rxn_sol=1, n_rxn_stripping=9, n_rxn_li_surface=1)
    base.update(kw)
    return base


def _data():
    rows = []
    # run a: the discharge of cycle 3 is empty, the box is full -> ends at half 5
    for c in (1, 2, 3, 4):
        kw = {}
        if c >= 3:
            kw = dict(
                n_events_dis=0,
                end_dis="no_events",
                q_dis_e=0,
                n_rxn_stripping=0,
                n_rxn_li_surface=0,
                slab_height_a=40.0,
                n_rxn_sfo=10,
                n_events_ch=20,
                ce_pct=0.0,
            )
        rows.append(_row("a", c, **kw))
    # run b: reaches the horizon of 4 cycles, one charge half on time
    for c in (1, 2, 3, 4):
        rows.append(_row("b", c, end_ch="time" if c == 2 else "budget"))
    # run c: stalled by the engine in the first half of cycle 3, electrolyte gone
    for c in (1, 2):
        rows.append(_row("c", c, end_reason="stalled", n_sp_eth=0 if c == 2 else 100))
    return pd.DataFrame(rows)


def test_run_ends():
    e = run_ends(_data(), 4, BOX[2] * A, A)
    assert e.loc["a", "end_half"] == 5 and e.loc["a", "cause"] == "box_full"
    assert e.loc["b", "end_half"] == 8 and e.loc["b", "cause"] == "not_ended"
    assert e.loc["c", "end_half"] == 5 and e.loc["c", "cause"] == "electrolyte_gone"
    t = TrialData(_data(), BOX, A, 4)
    assert compute(t, "end_half") == pytest.approx(6.0)
    assert compute(t, "share_runs_end_box_full") == pytest.approx(1 / 3)
    assert compute(t, "share_runs_end_not_ended") == pytest.approx(1 / 3)


def test_per_half_statistics_stop_at_the_end():
    t = TrialData(_data(), BOX, A, 4)
    # charges: a 1-3 (10, 10, 20), b 1-4 (10 x 4), c 1-2 -> 9 charges
    assert compute(t, "events_per_charge_half") == pytest.approx(
        (4 + 5 + 1) * 9 / 9 + 10 / 9
    )  # 10 per charge from the rxn columns, plus 10 SFO in a's cycle 3
    # discharges: a 1-2, b 1-4, c 1-2 (a's empty discharge 3 is the end, not a half)
    assert compute(t, "events_per_discharge_half") == pytest.approx(10.0)
    assert compute(t, "share_discharge_halves_no_events") == 0.0
    assert compute(t, "share_charge_halves_time") == pytest.approx(1 / 9)
    assert compute(t, "reductions_per_plating") == pytest.approx((9 * 6 + 10) / (9 * 4))
    assert compute(t, "sol_fsi_event_ratio") == pytest.approx(1 / 5)
    assert compute(t, "ce_run_pct") == pytest.approx(100 * 8 * 9 / (9 * 10))
    # state after 4 halves = cycle 2; a run that ended earlier gives its end state
    assert compute(t, "sei_sites_at_half", {"half": 4}) == pytest.approx(10.0)
    assert compute(t, "sei_sites_at_half", {"half": 8}) == pytest.approx((15 + 20 + 10) / 3)
    # Li ledger: 111 - (4 - 3) = 110 Li before the first half
    assert compute(t, "li_metal_initial") == pytest.approx(110.0)
    assert compute(t, "li_metal_at_end") == pytest.approx((103 + 104 + 102) / 3)


def test_li_metal_initial_matches_the_engine():
    from seilab.kmc import kernels as K
    from seilab.kmc import simulate
    from seilab.kmc.engine import Simulation
    from seilab.model import load_model

    m = load_model("paper").with_box((5, 5, 20))
    n0 = int(Simulation(m, 0).dyn[13][K.METAL])
    d = simulate(m, cycles=2, seed=0).to_pandas().assign(run_id="x", end_reason="completed")
    t = TrialData(d, (5, 5, 20), 4.47, 2)
    assert compute(t, "li_metal_initial") == n0


def test_fidelity_statistics_and_undefined():
    t = TrialData(_data(), BOX, A, 4)
    assert compute(t, "ce_median_pct") == pytest.approx(90.0)
    assert compute(t, "fraction_failing") == pytest.approx(1 / 3)  # run a: CE 0 from cycle 3
    assert math.isnan(compute(t, "spearman_Li-Li"))  # no OAT runs
    for st in STATISTICS.values():
        if not st.needs_design:
            v = compute(t, st.name)
            assert isinstance(v, float)


def test_loss():
    tg = TargetSet(
        "t.toml",
        "",
        [Target("x", "end_half", 10.0, 2.0, "s"), Target("y", "ce_run_pct", 90.0, 5.0, "s")],
        "h",
    )
    assert trial_loss({"x": 14.0, "y": 85.0}, tg) == pytest.approx((4 + 1) / 2)
    assert trial_loss({"x": np.nan, "y": 90.0}, tg) == pytest.approx(UNDEFINED_Z**2 / 2)

"""The per-run step budget (``protocol.max_steps``): a compute limit that changes nothing before it."""

from seilab.kmc import Simulation, simulate
from seilab.kmc import kernels as K
from seilab.model import load_model

MODEL = "paper-2025-study"  # thin slab: a 4 x 4 x 16 box runs its cycles in well under a second
BOX = (4, 4, 16)


def _steps(cycles: int, seed: int) -> list[int]:
    """The run's step count at the end of each half-cycle (no limit)."""
    sim = Simulation(load_model(MODEL).with_box(BOX), seed)
    out = []
    for _ in range(cycles):
        for kind in ("charge", "discharge"):
            sim.run_half(kind)
            out.append(int(sim.rng_state[2]))
    return out


def test_kept_cycles_are_the_unlimited_run_and_the_run_ends_on_the_limit():
    seed, cycles = 3, 6
    steps = _steps(cycles, seed)
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))  # every half takes steps
    free = simulate(MODEL, cycles=cycles, seed=seed, box=BOX)
    assert free.end_reason == "completed"
    # a limit inside the discharge of cycle 4 (half 8): cycles 1-3 are kept, exactly
    limit = (steps[6] + steps[7]) // 2
    cut = simulate(
        MODEL, cycles=cycles, seed=seed, box=BOX, overrides={"protocol.max_steps": limit}
    )
    assert cut.end_reason == "step_limit"
    assert len(cut.table) == 3
    assert cut.table.equals(free.table.slice(0, 3))  # every column, value for value


def test_a_limit_the_run_never_reaches_changes_nothing():
    seed, cycles = 5, 4
    total = _steps(cycles, seed)[-1]
    free = simulate(MODEL, cycles=cycles, seed=seed, box=BOX).table
    roomy = simulate(
        MODEL, cycles=cycles, seed=seed, box=BOX, overrides={"protocol.max_steps": total}
    )
    assert roomy.end_reason == "completed"
    assert roomy.table.equals(free)


def test_the_half_reports_the_limit_as_its_end():
    m = load_model(MODEL).with_box(BOX).with_overrides({"protocol.max_steps": 10})
    sim = Simulation(m, 0)
    rec = sim.run_half("charge")
    assert int(rec.hc[K.H_END]) == K.END_STEP_LIMIT
    assert int(sim.rng_state[2]) == 10
    assert int(rec.hc[K.H_EVENTS]) + int(rec.hc[K.H_DIFF]) <= 10

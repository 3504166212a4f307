"""A data set with a known answer: CE depends on two pair energies only (SFO-Li and F-Li).

The steady CE peaks at SFO-Li = 0.4 eV and F-Li = 1.2 eV (both on the 0.1 eV grid); every
other pair energy is irrelevant.  ``simulator`` is a stand-in simulator with the same CE law
that writes a real campaign folder, for the verification loop.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from synthetic import ENERGY_GRID, write_synthetic_campaign

from seilab import schema
from seilab.campaign import load_dataset

OPTIMUM = {"SFO-Li": 0.4, "F-Li": 1.2}


def two_pair_ce(e: Mapping[str, float], cycles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CE (%) = 96 - 10 (SFO-Li - 0.4)^2 - 10 (F-Li - 1.2)^2 + N(0, 0.1)."""
    base = (
        96.0
        - 10.0 * (e["SFO-Li"] - OPTIMUM["SFO-Li"]) ** 2
        - 10.0 * (e["F-Li"] - OPTIMUM["F-Li"]) ** 2
    )
    return base + rng.normal(0.0, 0.1, size=len(cycles))


def design(seed: int = 0, step: int = 2, random_others: bool = True) -> list[dict[str, float]]:
    """SFO-Li x F-Li on every ``step``-th grid point; the other pairs random (or at DFT)."""
    rng = np.random.default_rng(seed)
    pts = ENERGY_GRID[::step]
    out = []
    for a in pts:
        for b in pts:
            e = {p: float(rng.choice(ENERGY_GRID)) for p in schema.PAIRS} if random_others else {}
            e.update({"SFO-Li": float(a), "F-Li": float(b)})
            out.append(e)
    return out


def write_known_answer(
    folder: Path, *, n_cycles: int = 4, seed: int = 0, step: int = 2, random_others: bool = True
) -> Path:
    """Write the known-answer campaign (``step`` 2: 64 runs; ``step`` 1: 256 runs)."""
    write_synthetic_campaign(
        folder,
        n_cycles=n_cycles,
        seed=seed,
        ce_fn=two_pair_ce,
        energies=design(seed, step, random_others),
        nz=4,
    )
    return folder


def simulator(specs: list[dict[str, float]], replicates: int, out_dir: Path) -> pd.DataFrame:
    """Run ``replicates`` seeds of each parameter set; per-run mean CE (a ``run_specs`` callable)."""
    energies = [s for s in specs for _ in range(replicates)]
    seed = zlib.crc32(json.dumps(specs, sort_keys=True).encode()) % 1000
    man = write_synthetic_campaign(
        out_dir, n_cycles=4, seed=seed, ce_fn=two_pair_ce, energies=energies, nz=4
    )
    data = load_dataset(out_dir)
    means = data.groupby(schema.RUN_ID)[schema.TARGET].mean()
    return pd.DataFrame(
        {
            "spec": np.arange(len(energies)) // replicates,
            "seed": man["seed"].to_numpy(),
            "run_id": man["run_id"].to_numpy(),
            "ce_mean_pct": means.loc[man["run_id"]].to_numpy(),
        }
    )


# ---------------------------------------------------------------------- three drivers, 16 inert
#: The three pairs the CE of :func:`three_pair_ce` depends on; the other 16 have no effect.
DRIVERS = ("SFO-Li", "F-Li", "O-Li")
#: Noise of :func:`three_pair_ce` (percentage points): per cycle and per simulation.
ROW_NOISE_PCT, RUN_NOISE_PCT = 0.5, 0.5
#: Best achievable RMSE of any per-cycle predictor from the pair energies and the cycle.
NOISE_FLOOR_PCT = float(np.hypot(ROW_NOISE_PCT, RUN_NOISE_PCT))


def three_pair_mean(e: Mapping[str, float]) -> float:
    """Noise-free CE (%): 99.5 - 12 (SFO-Li - 0.6)^2 - 6 (F-Li - 1.0)^2 - 3 O-Li."""
    return 99.5 - 12.0 * (e["SFO-Li"] - 0.6) ** 2 - 6.0 * (e["F-Li"] - 1.0) ** 2 - 3.0 * e["O-Li"]


def three_pair_ce(
    e: Mapping[str, float], cycles: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """:func:`three_pair_mean` plus a per-simulation offset and per-cycle noise, capped at 100 %.

    The per-simulation offset is what a model memorises when it validates on cycles of its own
    training simulations: it is tied to the simulation, so to its (inert) pair energies too.
    """
    offset = rng.normal(0.0, RUN_NOISE_PCT)
    return np.minimum(
        100.0, three_pair_mean(e) + offset + rng.normal(0.0, ROW_NOISE_PCT, size=len(cycles))
    )


def write_three_pair(folder: Path, *, n_runs: int = 120, n_cycles: int = 6, seed: int = 0) -> Path:
    """Random design on the 0.1 eV grid (all 19 pairs), CE from :func:`three_pair_ce`."""
    rng = np.random.default_rng(10_000 + seed)
    energies = [{p: float(rng.choice(ENERGY_GRID)) for p in schema.PAIRS} for _ in range(n_runs)]
    write_synthetic_campaign(
        folder, n_cycles=n_cycles, seed=seed, ce_fn=three_pair_ce, energies=energies, nz=4
    )
    return folder

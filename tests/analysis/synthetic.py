"""Synthetic campaign folders in the documented schema (``docs/schema.md``), for analysis tests.

``write_synthetic_campaign(dir, n_runs, n_cycles, seed)`` writes ``manifest.parquet``,
``runs/<run_id>.parquet`` (every column of the run table, with the provenance metadata) and
``campaign.toml``.  The values are internally consistent the way the simulator's are:

* ``q_ch_e`` is the sum of the one-electron charge-half events, ``q_dis_e`` the stripping
  events and ``ce_pct = 100 q_dis_e / q_ch_e`` (NaN when ``q_ch_e`` is 0);
* the SFO channel counts sum to ``n_rxn_sfo``;
* the Li ledger identity holds: ``n_li_total(t) - n_li_total(t-1) = li_plated - li_stripped +
  li_wrap_created + li_framework_filled - li_framework_removed``;
* mobilities are computed from the per-layer counts with the documented formula.

The CE of a run follows ``ce_fn(energies, cycles, rng)`` (percent), where ``energies`` maps the
pair names of :data:`seilab.schema.PAIRS` to eV.  The default (:func:`default_ce`) has a known
optimum (SFO-Li = 0.9 eV, F-Li = 1.1 eV), a formation ramp over the first cycles, and a collapse
below 70 % near cycle 78 for runs with a strong Li-Li + N-Li bond.

Import it from tests under ``tests/analysis`` as ``from synthetic import write_synthetic_campaign``
(pytest puts that folder on ``sys.path``), or use the ``synthetic_campaign`` fixture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seilab import schema
from seilab.analysis.defaults import DFT_PAIR_ENERGIES

CEFunction = Callable[[Mapping[str, float], np.ndarray, np.random.Generator], np.ndarray]

#: Pair-energy grid of the paper's design (eV): 0.0, 0.1, ..., 1.5.
ENERGY_GRID = np.round(np.arange(16) / 10.0, 1)

FAIL_THRESHOLD_PCT = 70.0


def default_ce(
    energies: Mapping[str, float], cycles: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Default CE series (percent) of one run.

    Steady CE peaks at SFO-Li = 0.9 eV, F-Li = 1.1 eV and falls with O-Li; CE ramps up over the
    first ~10 cycles; runs with ``Li-Li + N-Li > 1.6`` eV collapse (CE < 70 %) near cycle 78.
    """
    c = np.asarray(cycles, dtype=float)
    steady = (
        98.0
        - 6.0 * (energies["SFO-Li"] - 0.9) ** 2
        - 4.0 * (energies["F-Li"] - 1.1) ** 2
        - 1.5 * energies["O-Li"]
    )
    ramp = (steady - 85.0) * (1.0 - np.exp(-c / 4.0)) + 85.0
    ce = ramp + rng.normal(0.0, 0.4, size=c.shape)
    if energies["Li-Li"] + energies["N-Li"] > 1.6:
        fail_at = int(np.clip(round(rng.normal(78.0, 4.0)), 20, 99))
        after = c >= fail_at
        ce[after] = 68.0 - 25.0 * (1.0 - np.exp(-(c[after] - fail_at) / 5.0))
    return np.clip(ce, 0.0, 100.0)


def _design(
    n_runs: int, rng: np.random.Generator, dft_first: bool
) -> list[tuple[str, dict[str, float]]]:
    out: list[tuple[str, dict[str, float]]] = []
    for i in range(n_runs):
        if dft_first and i == 0:
            out.append(("dft", dict(DFT_PAIR_ENERGIES)))
        else:
            out.append(("random", {p: float(rng.choice(ENERGY_GRID)) for p in schema.PAIRS}))
    return out


def _mobility(ch: np.ndarray, dis: np.ndarray, created: np.ndarray) -> np.ndarray:
    """Documented mobility: max(0, 1/2 (sum_i |dis_i - ch_i| - G))."""
    return np.maximum(0.0, 0.5 * (np.abs(dis - ch).sum(axis=1) - created))


def synthetic_run_table(
    energies: Mapping[str, float],
    n_cycles: int,
    rng: np.random.Generator,
    *,
    ce_fn: CEFunction | None = None,
    nz: int = 8,
    nan_cycles: int = 0,
) -> pd.DataFrame:
    """One run table (one row per cycle) in the documented schema.

    Parameters
    ----------
    energies
        Pair name -> energy (eV) for all 19 pairs.
    n_cycles
        Number of rows (cycles 1..n_cycles).
    rng
        Random generator (the run's seed).
    ce_fn
        CE model ``(energies, cycles, rng) -> percent``; :func:`default_ce` when None.
    nz
        Number of z-layers of the per-layer list columns.
    nan_cycles
        Number of randomly chosen cycles with no charge (``q_ch_e = 0``, ``ce_pct`` NaN).
    """
    ce_fn = ce_fn or default_ce
    cyc = np.arange(1, n_cycles + 1)
    n = n_cycles
    ce_target = np.clip(np.asarray(ce_fn(energies, cyc, rng), dtype=float), 0.0, 100.0)
    if ce_target.shape != (n,):
        raise ValueError(f"ce_fn returned shape {ce_target.shape}, expected ({n},)")

    # Charge half: plating events and the one-electron SEI reactions.
    q_ch = rng.normal(2000.0, 60.0, n).round().astype(np.int64)
    sei_scale = 0.02 + 0.03 * energies["F-Li"] / 1.5 + 0.3 * (100.0 - ce_target) / 100.0
    n_fsi = rng.poisson(q_ch * sei_scale * 0.35)
    n_sfo = rng.poisson(q_ch * sei_scale * 0.25)
    n_sol = rng.poisson(q_ch * sei_scale * 0.20)
    n_sol2 = rng.poisson(q_ch * sei_scale * 0.05)
    n_f5d = rng.poisson(q_ch * sei_scale * 0.15)
    sei_e = n_fsi + n_sfo + n_sol + n_sol2 + n_f5d
    q_ch = np.maximum(q_ch, sei_e + 10)
    plating_total = q_ch - sei_e
    frac_sei = np.clip(0.05 + 0.4 * (100.0 - ce_target) / 100.0, 0.0, 0.9)
    n_plating_sei = rng.binomial(plating_total, frac_sei)
    n_plating = plating_total - n_plating_sei
    if nan_cycles:
        idx = rng.choice(n, size=min(nan_cycles, n), replace=False)
        for arr in (
            q_ch,
            n_fsi,
            n_sfo,
            n_sol,
            n_sol2,
            n_f5d,
            n_plating,
            n_plating_sei,
            plating_total,
        ):
            arr[idx] = 0
        sei_e = n_fsi + n_sfo + n_sol + n_sol2 + n_f5d
    # Discharge half: stripping sets the CE.
    n_strip = np.round(ce_target / 100.0 * q_ch).astype(np.int64)
    q_dis = n_strip
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(q_ch > 0, 100.0 * q_dis / np.where(q_ch > 0, q_ch, 1), np.nan)
    n_li_surface = rng.poisson(300.0, n)
    sfo_ch = np.stack(
        [rng.multinomial(k, [0.05, 0.2, 0.15, 0.15, 0.15, 0.1, 0.1, 0.1]) for k in n_sfo]
    )
    n_diffusion = rng.poisson(5000.0, n)

    formed_f = n_fsi + n_sol + n_f5d
    formed_o = sfo_ch[:, 2] + sfo_ch[:, 4] + n_sol2
    formed_s = sfo_ch[:, 3] + sfo_ch[:, 5]
    formed_n = sfo_ch[:, 6] + sfo_ch[:, 7]
    formed_sfo = sfo_ch[:, 1]
    formed_f5d = n_sol
    dropped = rng.binomial(formed_f + formed_o, 0.01)

    # Li ledger.
    li_plating_dropped = rng.binomial(plating_total, 0.002)
    li_plated = plating_total - li_plating_dropped
    li_stripped = n_strip
    li_wrap = rng.poisson(2.0, n)
    li_filled = rng.poisson(5.0, n)
    li_removed = rng.poisson(5.0, n)
    li_total0 = 20000
    d_total = li_plated - li_stripped + li_wrap + li_filled - li_removed
    n_li_total = li_total0 + np.cumsum(d_total)
    n_li_sei = np.cumsum(sei_e + n_plating_sei // 3)
    n_li_metal = n_li_total - n_li_sei
    li_metal0 = li_total0
    li_buried = np.cumsum(n_plating + n_plating_sei - n_strip) - (n_li_metal - li_metal0)

    sp_f = np.cumsum(formed_f)
    sp_o = np.cumsum(formed_o)
    sp_s = np.cumsum(formed_s)
    sp_n = np.cumsum(formed_n)
    sp_sfo = np.cumsum(formed_sfo)
    sp_f5d = np.cumsum(formed_f5d)
    sei_sites = sp_f + sp_o + sp_s + sp_n + sp_sfo + sp_f5d
    n_eth = np.maximum(40000 - sei_sites // 2, 1000)
    a_ang = 3.5
    sei_layers = np.minimum(nz, 1 + sei_sites // 4000)
    sei_thick = sei_layers * a_ang / 2.0
    slab_h = (n_li_metal / 2500.0).round() * a_ang

    table: dict[str, object] = {
        "cycle": cyc.astype(np.int32),
        "q_ch_e": q_ch,
        "q_dis_e": q_dis,
        "ce_pct": ce,
        "n_rxn_plating": n_plating,
        "n_rxn_plating_sei": n_plating_sei,
        "n_rxn_stripping": n_strip,
        "n_rxn_li_surface": n_li_surface,
        "n_rxn_fsi": n_fsi,
        "n_rxn_sfo": n_sfo,
        "n_rxn_sol": n_sol,
        "n_rxn_sol2": n_sol2,
        "n_rxn_f5d": n_f5d,
    }
    for c, col in enumerate(schema.SFO_CHANNEL_COLUMNS):
        table[col] = sfo_ch[:, c].astype(np.int64)
    table["n_diffusion"] = n_diffusion
    table.update(
        n_formed_f=formed_f,
        n_formed_o=formed_o,
        n_formed_s=formed_s,
        n_formed_n=formed_n,
        n_formed_sfo=formed_sfo,
        n_formed_f5d=formed_f5d,
        n_products_dropped=dropped,
    )

    # Per-layer counts at the end of each half and the mobility computed from them.
    created = {
        "FSI": np.zeros(n),
        "SOL": np.zeros(n),
        "SFO": formed_sfo,
        "F5D": formed_f5d,
        "F": formed_f,
        "O": formed_o,
        "S": formed_s,
        "N": formed_n,
        "Li0": li_plated,
    }
    base = {
        "FSI": 400.0,
        "SOL": 600.0,
        "SFO": 50.0,
        "F5D": 40.0,
        "F": 100.0,
        "O": 60.0,
        "S": 30.0,
        "N": 20.0,
        "Li0": 2500.0,
    }
    layers: dict[str, list[np.ndarray]] = {}
    for sp in schema.MOBILITY_SPECIES:
        lam_ch = np.full((n, nz), base[sp] / nz)
        ch = rng.poisson(lam_ch)
        # Moves between layers grow as CE falls (a weak, physically plausible coupling).
        spread = 1.0 + 3.0 * (100.0 - np.nan_to_num(ce, nan=90.0))[:, None] / 100.0
        shift = rng.poisson(spread * np.maximum(ch, 1) * 0.1) - rng.poisson(
            spread * np.maximum(ch, 1) * 0.1
        )
        g = np.asarray(created[sp], dtype=np.int64)
        g_layers = np.stack([rng.multinomial(k, np.full(nz, 1.0 / nz)) for k in g])
        dis = np.maximum(ch + shift, 0) + g_layers
        mob = _mobility(ch.astype(float), dis.astype(float), g.astype(float))
        table[f"mob_{sp.lower()}"] = mob.astype(np.float64)
        layers[sp] = [ch.astype(np.int32), dis.astype(np.int32)]

    table.update(
        n_li_metal=n_li_metal,
        n_li_sei=n_li_sei,
        n_li_metal_surface=(n_li_metal * 0.08).round().astype(np.int64),
        n_li_sei_surface=(n_li_sei * 0.3).round().astype(np.int64),
        n_li_total=n_li_total,
        n_sp_f=sp_f,
        n_sp_o=sp_o,
        n_sp_s=sp_s,
        n_sp_n=sp_n,
        n_sp_sfo=sp_sfo,
        n_sp_f5d=sp_f5d,
        n_sei_sites=sei_sites,
        n_sp_eth=n_eth,
        n_sp_sol=rng.poisson(600.0, n),
        n_sp_fsi=rng.poisson(400.0, n),
        sei_thickness_a=sei_thick.astype(np.float64),
        slab_height_a=slab_h.astype(np.float64),
        li_buried=li_buried.astype(np.int64),
        li_plated=li_plated,
        li_plating_dropped=li_plating_dropped,
        li_stripped=li_stripped,
        li_wrap_created=li_wrap,
        li_framework_removed=li_removed,
        li_framework_filled=li_filled,
        t_ch_s=rng.gamma(20.0, 0.05, n),
        t_dis_s=rng.gamma(20.0, 0.05, n),
        n_events_ch=(q_ch + n_li_surface // 2).astype(np.int64),
        n_events_dis=(n_strip + n_li_surface - n_li_surface // 2).astype(np.int64),
        n_diffusion_ch=n_diffusion // 2,
        n_diffusion_dis=n_diffusion - n_diffusion // 2,
        n_rejected_ch=rng.poisson(1.0, n),
        n_rejected_dis=rng.poisson(1.0, n),
        end_ch=np.full(n, "budget", dtype=object),
        end_dis=np.full(n, "budget", dtype=object),
    )
    for pair in schema.PAIRS:
        table[schema.pair_column(pair)] = np.full(n, float(energies[pair]))
    df = pd.DataFrame(table)
    for k, col in enumerate(schema.LAYER_COLUMNS):
        half = 0 if col.startswith("layers_ch_") else 1
        sp = schema.MOBILITY_SPECIES[k % len(schema.MOBILITY_SPECIES)]
        df[col] = list(layers[sp][half])
    for c in df.columns:
        if df[c].dtype.kind == "i" and c != "cycle":
            df[c] = df[c].astype(np.int64)
    return df


def _write_run(path: Path, df: pd.DataFrame, meta: dict) -> None:
    kinds = {"i": {4: pa.int32(), 8: pa.int64()}, "f": {8: pa.float64()}}
    fields = []
    for c in df.columns:
        dt = df[c].dtype
        if c.startswith("layers_"):
            fields.append(pa.field(c, pa.list_(pa.int32())))
        elif dt.kind in kinds:
            fields.append(pa.field(c, kinds[dt.kind][dt.itemsize]))
        else:
            fields.append(pa.field(c, pa.string()))
    table = pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)
    table = table.replace_schema_metadata({schema.METADATA_KEY: json.dumps(meta).encode()})
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def write_synthetic_campaign(
    directory: str | Path,
    n_runs: int = 12,
    n_cycles: int = 30,
    seed: int = 0,
    ce_fn: CEFunction | None = None,
    *,
    energies: Sequence[Mapping[str, float]] | None = None,
    dft_first: bool = True,
    early_end: Mapping[int, int] | None = None,
    n_failed: int = 0,
    n_pending: int = 0,
    nan_cycles: int = 0,
    nz: int = 8,
    drop_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Write a synthetic campaign folder in the documented schema.

    Parameters
    ----------
    directory
        Folder to create (``manifest.parquet``, ``runs/*.parquet``, ``campaign.toml``).
    n_runs
        Number of finished runs (status ``done``).
    n_cycles
        Cycles per run (before any early end).
    seed
        Seed of the design and of every run (run ``i`` uses ``seed * 1000 + i``).
    ce_fn
        CE model ``(energies, cycles, rng) -> percent array``; :func:`default_ce` when None.
    energies
        Explicit pair energies per run (pair name -> eV, missing pairs take the DFT value);
        overrides the random design and ``n_runs``.
    dft_first
        Make run 0 the DFT defaults (design set ``dft``); the others are drawn on the 0.1 eV grid.
    early_end
        ``{run_index: last_cycle}``: these runs end early (``end_reason = "stalled"``).
    n_failed, n_pending
        Extra manifest rows with status ``failed`` / ``pending`` and no run file.
    nan_cycles
        Cycles per run with ``q_ch_e = 0`` (``ce_pct`` NaN).
    nz
        Layers of the per-layer list columns.
    drop_columns
        Columns to leave out of every run table and the manifest (for bad-input tests).

    Returns
    -------
    pandas.DataFrame
        The manifest that was written.
    """
    directory = Path(directory)
    runs_dir = directory / schema.RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if energies is not None:
        design = [("given", {**DFT_PAIR_ENERGIES, **dict(e)}) for e in energies]
    else:
        design = _design(n_runs, rng, dft_first)
    early_end = dict(early_end or {})
    rows = []
    for i, (design_set, e) in enumerate(design):
        run_id = f"run{i:05d}"
        run_seed = seed * 1000 + i
        run_rng = np.random.default_rng(run_seed)
        df = synthetic_run_table(e, n_cycles, run_rng, ce_fn=ce_fn, nz=nz, nan_cycles=nan_cycles)
        end_reason = "completed"
        if i in early_end:
            df = df[df["cycle"] <= early_end[i]].reset_index(drop=True)
            end_reason = "stalled"
        df = df.drop(columns=[c for c in drop_columns if c in df.columns])
        wall = float(run_rng.gamma(10.0, 3.0))
        meta = {
            "seilab_version": "0.1.0",
            "seed": run_seed,
            "model_name": "paper",
            "model_file": "paper.toml",
            "model_sha256": "0" * 64,
            "overrides": {f"pairs.{p}": v for p, v in e.items() if v != DFT_PAIR_ENERGIES[p]},
            "parameters": {"pairs": dict(e)},
            "box": [20, 20, nz],
            "cycles": n_cycles,
            "end_reason": end_reason,
            "wall_s": wall,
            "created_utc": "2025-01-01T00:00:00Z",
        }
        _write_run(runs_dir / f"{run_id}.parquet", df, meta)
        rows.append(
            {
                "run_id": run_id,
                "design_set": design_set,
                "seed": run_seed,
                "status": "done",
                "wall_s": wall,
                "n_cycles": len(df),
                "end_reason": end_reason,
                "error": None,
                "seilab_version": "0.1.0",
                "model_sha256": "0" * 64,
                **{schema.pair_column(p): float(v) for p, v in e.items()},
            }
        )
    k = len(rows)
    for status, count in (("failed", n_failed), ("pending", n_pending)):
        for _ in range(count):
            e = {p: float(rng.choice(ENERGY_GRID)) for p in schema.PAIRS}
            rows.append(
                {
                    "run_id": f"run{k:05d}",
                    "design_set": "random",
                    "seed": seed * 1000 + k,
                    "status": status,
                    "wall_s": math.nan,
                    "n_cycles": 0,
                    "end_reason": "error" if status == "failed" else "",
                    "error": "synthetic failure" if status == "failed" else None,
                    "seilab_version": "0.1.0",
                    "model_sha256": "0" * 64,
                    **{schema.pair_column(p): v for p, v in e.items()},
                }
            )
            k += 1
    man = pd.DataFrame(rows)
    man["seed"] = man["seed"].astype(np.int64)
    man["wall_s"] = man["wall_s"].astype(np.float64)
    man["n_cycles"] = man["n_cycles"].astype(np.int32)
    man["error"] = man["error"].astype(object)
    man = man.drop(columns=[c for c in drop_columns if c in man.columns])
    pq.write_table(pa.Table.from_pandas(man, preserve_index=False), directory / schema.MANIFEST)
    (directory / schema.CAMPAIGN_CONFIG).write_text(
        f'# synthetic campaign written by tests/analysis/synthetic.py\nname = "synthetic"\n'
        f"seed = {seed}\nruns = {len(rows)}\ncycles = {n_cycles}\n"
    )
    return man

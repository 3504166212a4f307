"""The cycling driver: initial cell, half-cycles, per-cycle table, provenance."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from seilab import schema
from seilab.errors import ModelError
from seilab.io import utc_now
from seilab.kmc import kernels as K
from seilab.kmc.compile import Compiled, compile_model, new_dynamic, per_lattice
from seilab.kmc.state import State
from seilab.kmc.warmup import ensure_compiled
from seilab.lattice import BASIS_FRAC, BCB, BCO, NB, TYPE_CLASS
from seilab.model import Model, load_model

END_NAMES = {
    K.END_BUDGET: "budget",
    K.END_TIME: "time",
    K.END_NO_EVENTS: "no_events",
    K.END_STALLED: "stalled",
    K.END_STEP_LIMIT: schema.END_STEP_LIMIT,
}


def _version() -> str:
    from seilab import __version__

    return __version__


@dataclass
class HalfRecord:
    """What one half-cycle produced (kernel counters and end-of-half observables)."""

    kind: str  # "charge" | "discharge"
    hc: np.ndarray
    t: float
    layers: np.ndarray
    scalars: np.ndarray
    gcount: np.ndarray


@dataclass
class RunResult:
    """Result of one simulation.

    Attributes
    ----------
    table
        The per-cycle table (pyarrow) with provenance in its schema metadata.
    end_reason
        ``"completed"`` or why the run stopped early.
    metadata
        Provenance: seed, model hash, parameters, version, wall time.
    """

    table: pa.Table
    end_reason: str
    metadata: dict = field(default_factory=dict)

    def to_pandas(self):
        """The per-cycle table as a pandas DataFrame."""
        return self.table.to_pandas()

    def write(self, path: str | Path) -> Path:
        """Write the table to Parquet atomically (temporary file, then rename)."""
        return write_table(self.table, path)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write a table to Parquet via a temporary file in the same folder, then rename."""
    from seilab.io import atomic_write_parquet

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_parquet(table, path)


def exercise_kernels() -> None:
    """Call every kernel the driver calls, on a tiny box (compiles or loads each one)."""
    m = load_model("paper").with_box((4, 4, 16))
    m = m.with_overrides({"protocol.event_budget": 2, "protocol.cycles": 1})
    sim = Simulation(m, 0)
    sim.run_half("charge")
    sim.run_half("discharge")


class Simulation:
    """A prepared simulation: compiled model, lattice and initial cell.

    Parameters
    ----------
    model
        A :class:`seilab.model.Model` (or a bundled name / TOML path).
    seed
        Seed of the engine's random number generator (Numba's Mersenne Twister).
    """

    def __init__(self, model: Model | str | Path = "paper", seed: int = 0):
        ensure_compiled(exercise_kernels)  # compile once per cache, not once per process
        self.model = model if isinstance(model, Model) else load_model(model)
        self.seed = int(seed)
        spec = self.model.spec
        a = spec.lattice.a_angstrom
        nz = spec.lattice.box[2]
        need = spec.initial.anode_thickness_angstrom + 2 * a
        if nz * a < need:
            raise ModelError(
                f"{self.model.source}: key 'lattice.box': nz = {nz} cubes ({nz * a:.1f} A) is too small "
                f"for the {spec.initial.anode_thickness_angstrom} A slab plus electrolyte; "
                f"allowed: nz >= {int(np.ceil(need / a))}"
            )
        self.comp: Compiled = compile_model(self.model)
        lat = self.comp.lattice
        occ = self._initial_occupation()
        self.dyn = new_dynamic(self.comp, occ)
        self.st = State(self.dyn, self.comp.static)
        K.init_state(self.st)
        self.dyn.misc[K.M_FULL] = 1  # the first maintenance pass runs over the whole lattice
        K.seed_rng(self.seed)
        # (stop, max_to_stop, steps of the run so far): carried from half to half
        self.rng_state = np.array(
            [0, K.draw_int(1, max(spec.diffusion.max_to_stop, 1)), 0], dtype=np.int64
        )
        self.rev_stamp = np.zeros(lat.n_sites, dtype=np.int64)
        self.rev_label = np.zeros(lat.n_sites, dtype=np.int8)
        self.metal0 = int(self.li_counts()[0])

    # ------------------------------------------------------------------ set-up
    def _initial_occupation(self) -> np.ndarray:
        ini = self.model.spec.initial
        key = ("occupation", ini.anode_thickness_angstrom, ini.electrolyte_max_li_neighbors)
        return per_lattice(self.comp.lattice, key, self._make_occupation).copy()

    def _make_occupation(self) -> np.ndarray:
        spec = self.model.spec
        lat = self.comp.lattice
        # z of every site from its layer and basis position (no (N, 3) position table)
        z = (lat.layer + BASIS_FRAC[:, 2][np.arange(lat.n_sites) % NB]) * lat.a
        lz = lat.box[2] * lat.a
        half = spec.initial.anode_thickness_angstrom / 2
        occ = np.zeros(lat.n_sites, dtype=np.int8)
        bc = (lat.site_type == BCB) | (lat.site_type == BCO)
        occ[bc & (z >= lz / 2 - half) & (z <= lz / 2 + half)] = K.METAL
        del z, bc
        # background electrolyte on every empty OC/BA-type site with few metal neighbours;
        # metal neighbours counted one neighbour column at a time (big boxes: no (N, M) copies)
        metal = occ == K.METAL
        nli = np.zeros(lat.n_sites, dtype=np.int16)
        for k in range(lat.nbr.shape[1]):
            col = lat.nbr[:, k]
            nli += metal[col] & (col >= 0)
        cls_ok = TYPE_CLASS[lat.site_type] != 2
        occ[(occ == 0) & cls_ok & (nli <= spec.initial.electrolyte_max_li_neighbors)] = K.BACKGROUND
        return occ

    # ------------------------------------------------------------------ queries
    def li_counts(self) -> tuple[int, int]:
        """(charge-0 metal atoms, SEI-bound metal atoms)."""
        g = self.dyn.gcount
        ion = int(self.dyn.misc[K.M_ION])
        return int(g[K.METAL]) - ion, ion

    def molecule_numbers(self) -> np.ndarray:
        """Current number of molecules of each type in the electrolyte."""
        out = np.zeros(max(self.comp.n_mol, 1), dtype=np.int64)
        K.molecule_numbers(self.st, out)
        return out

    def run_half(self, kind: str) -> HalfRecord:
        """Run one half-cycle (``"charge"`` or ``"discharge"``)."""
        comp = self.comp
        n_rx = len(comp.reactions)
        n_ch = len(comp.channels)
        nsp = len(comp.species)
        hc = np.zeros(K.H_BASE + n_rx + n_ch + nsp, dtype=np.int64)
        tout = np.zeros(1)
        K.run_half(
            self.st,
            0 if kind == "charge" else 1,
            hc,
            tout,
            self.rng_state,
            self.rev_stamp,
            self.rev_label,
        )
        lat = comp.lattice
        nz = lat.box[2]
        layers = np.zeros((nsp + 1, nz), dtype=np.int64)
        scal = np.zeros(6, dtype=np.int64)
        K.half_stats(self.st, nz, lat.layer, self.molecule_numbers(), layers, scal)
        return HalfRecord(kind, hc, float(tout[0]), layers, scal, self.dyn.gcount.copy())

    def snapshot(self, path: str | Path, comment: str = "") -> Path:
        """Write the occupied sites (no background electrolyte) as an extended XYZ frame."""
        from seilab.kmc.xyz import write_xyz

        return write_xyz(self, path, comment)


# ---------------------------------------------------------------------------- table
def _columns(comp: Compiled, model: Model) -> dict:
    """Names of the model-derived columns."""
    spec = model.spec
    sp = spec.species
    names = comp.species
    frag_cols = {
        c: sp[n].column or n.lower()
        for c, n in enumerate(names)
        if c >= 3 and n in sp and sp[n].role == "fragment"
    }
    mol_cols = {
        c: n.lower()
        for c, n in enumerate(names)
        if c >= 3 and sp.get(n) and sp[n].role == "molecule"
    }
    metal = names[K.METAL]
    return {"frag": frag_cols, "mol": mol_cols, "metal0": metal.lower() + "0"}


def build_table(
    sim: Simulation, rows: list[tuple[HalfRecord, HalfRecord]], metadata: dict
) -> pa.Table:
    """Assemble the per-cycle table from paired half-cycles (see docs/schema.md)."""
    comp = sim.comp
    model = sim.model
    spec = model.spec
    cols = _columns(comp, model)
    n_rx = len(comp.reactions)
    kernel_index = {rx.name: r for r, rx in enumerate(comp.reactions)}
    channel_index = {(comp.reactions[r].name, c): k for k, (r, c) in enumerate(comp.channels)}
    a = spec.lattice.a_angstrom
    data: dict[str, list] = {}
    if not rows:  # no complete cycle: build one zero row for the column types, keep none
        nsp = len(comp.species)
        hc0 = np.zeros(K.H_BASE + n_rx + len(comp.channels) + nsp, dtype=np.int64)
        hc0[K.H_END] = K.END_STALLED
        layers0 = np.zeros((nsp + 1, spec.lattice.box[2]), dtype=np.int64)
        z = [
            HalfRecord(k, hc0, 0.0, layers0, np.zeros(6, dtype=np.int64), np.zeros(nsp, np.int64))
            for k in ("charge", "discharge")
        ]
        table = build_table(sim, [(z[0], z[1])], metadata)
        return table.slice(0, 0)

    def put(name, value):
        data.setdefault(name, []).append(value)

    # mobility species: molecules, fragments, then metal0 (paper order where it exists)
    mob_species = [(c, n) for c, n in cols["mol"].items()] + [
        (c, n) for c, n in cols["frag"].items()
    ]
    cum_dep = 0
    cum_strip = 0
    n_li_prev = metadata["_li_total0"]
    for idx, (h1, h2) in enumerate(rows):
        ch, dis = (h1, h2) if h1.kind == "charge" else (h2, h1)
        hc = h1.hc + h2.hc
        put("cycle", idx + 1)
        q_ch = 0
        q_dis = 0
        for r, rx in enumerate(comp.reactions):
            if rx.electrons:
                if rx.half == "charge":
                    q_ch += int(ch.hc[K.H_BASE + r])
                else:
                    q_dis += int(dis.hc[K.H_BASE + r])
        put("q_ch_e", q_ch)
        put("q_dis_e", q_dis)
        put("ce_pct", 100.0 * q_dis / q_ch if q_ch > 0 else float("nan"))
        # every declared reaction keeps its columns (zeros when disabled), so the tables of
        # one model family concatenate whatever reactions are switched off
        for rx in spec.reactions:
            r = kernel_index.get(rx.name)
            put(rx.column, 0 if r is None else int(hc[K.H_BASE + r]))
        for rx in spec.reactions:
            if len(rx.channels) > 1:
                for c in range(len(rx.channels)):
                    k = channel_index.get((rx.name, c))
                    put(f"{rx.column}_ch{c}", 0 if k is None else int(hc[K.H_BASE + n_rx + k]))
        put("n_diffusion", int(hc[K.H_DIFF]))
        base_formed = K.H_BASE + n_rx + len(comp.channels)
        for c, name in cols["frag"].items():
            put(f"n_formed_{name}", int(hc[base_formed + c]))
        put("n_products_dropped", int(hc[K.H_PROD_DROPPED]))
        # mobility from the layer counts at the end of the two halves
        plated = int(hc[K.H_PLATED])
        for c, name in mob_species + [(K.METAL, cols["metal0"])]:
            m_ch = ch.layers[c]
            m_dis = dis.layers[c]
            g = plated if c == K.METAL else (int(hc[base_formed + c]) if c in cols["frag"] else 0)
            put(f"mob_{name}", max(0.0, 0.5 * (float(np.abs(m_dis - m_ch).sum()) - g)))
        for half, rec in (("ch", ch), ("dis", dis)):
            for c, name in mob_species + [(K.METAL, cols["metal0"])]:
                put(f"layers_{half}_{name}", rec.layers[c].astype(np.int32))
        # end-of-cycle state: the later of the two halves
        end = h2
        s = end.scalars
        put("n_li_metal", int(s[0]))
        put("n_li_sei", int(s[1]))
        put("n_li_metal_surface", int(s[2]))
        put("n_li_sei_surface", int(s[3]))
        n_li_total = int(end.gcount[K.METAL])
        put("n_li_total", n_li_total)
        n_sei = 0
        for c, name in cols["frag"].items():
            put(f"n_sp_{name}", int(end.gcount[c]))
            n_sei += int(end.gcount[c])
        put("n_sei_sites", n_sei)
        put("n_sp_eth", int(end.gcount[K.BACKGROUND]))
        for c, name in cols["mol"].items():
            put(f"n_sp_{name}", int(end.layers[c].sum()))
        put("sei_thickness_a", float(s[4]) * a / 2.0)
        put("slab_height_a", float(s[5]) * a)
        cum_dep += plated
        cum_strip += int(hc[K.H_STRIPPED])
        put("li_buried", cum_dep - cum_strip - (int(s[0]) - sim.metal0))
        put("li_plated", plated)
        put("li_plating_dropped", int(hc[K.H_PLATE_DROPPED]))
        put("li_stripped", int(hc[K.H_STRIPPED]))
        put("li_wrap_created", int(hc[K.H_WRAP]))
        put("li_framework_removed", int(hc[K.H_REMOVED]))
        put("li_framework_filled", int(hc[K.H_FILLED]))
        ledger = (
            plated
            - int(hc[K.H_STRIPPED])
            + int(hc[K.H_WRAP])
            + int(hc[K.H_FILLED])
            - int(hc[K.H_REMOVED])
        )
        put("li_ledger_residual", (n_li_total - n_li_prev) - ledger)
        n_li_prev = n_li_total
        for half, rec in (("ch", ch), ("dis", dis)):
            put(f"t_{half}_s", rec.t)
            put(f"n_events_{half}", int(rec.hc[K.H_EVENTS]))
            put(f"n_diffusion_{half}", int(rec.hc[K.H_DIFF]))
            put(f"n_rejected_{half}", int(rec.hc[K.H_REJECTED]))
            put(f"end_{half}", END_NAMES[int(rec.hc[K.H_END])])
    for pair, val in spec.pairs.items():
        data[schema.pair_column(pair)] = [float(val)] * len(rows)
    arrays = {}
    for name, vals in data.items():
        if name.startswith("layers_"):
            arrays[name] = pa.array(vals, type=pa.list_(pa.int32()))
        elif name in ("cycle",):
            arrays[name] = pa.array(vals, type=pa.int32())
        elif name.startswith("end_"):
            arrays[name] = pa.array(vals, type=pa.string())
        elif isinstance(vals[0], float):
            arrays[name] = pa.array(vals, type=pa.float64())
        else:
            arrays[name] = pa.array(vals, type=pa.int64())
    meta = {k: v for k, v in metadata.items() if not k.startswith("_")}
    table = pa.table(arrays)
    return table.replace_schema_metadata({schema.METADATA_KEY: json.dumps(meta).encode()})


def simulate(
    model: Model | str | Path = "paper",
    *,
    cycles: int | None = None,
    seed: int = 0,
    box: Sequence[int] | None = None,
    overrides: dict | None = None,
    snapshots: Sequence[int] = (),
    snapshot_dir: str | Path | None = None,
    progress: bool = False,
    callback: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Simulate charge/discharge cycling and return the per-cycle table.

    Parameters
    ----------
    model
        Model, bundled name (``"paper"``) or TOML path.
    cycles
        Number of cycles (default: the model's ``protocol.cycles``).
    seed
        Random seed; the same seed gives the same table bit for bit.
    box
        (nx, ny, nz) cubes, overriding ``lattice.box``.
    overrides
        ``{dotted.key: value}`` applied to the model (see ``Model.with_overrides``).
    snapshots
        Cycles after which an extended XYZ frame is written to ``snapshot_dir``.
    progress
        Show a rich progress bar.
    callback
        Called as ``callback(cycles_done, cycles_total)`` after every cycle.

    Returns
    -------
    RunResult
    """
    t0 = time.perf_counter()
    m = model if isinstance(model, Model) else load_model(model)
    if overrides:
        m = m.with_overrides(overrides)
    if box is not None:
        m = m.with_box(tuple(int(v) for v in box))
    if cycles is not None:
        m = m.with_overrides({"protocol.cycles": int(cycles)})
    spec = m.spec
    n_cycles = spec.protocol.cycles
    snaps = sorted({int(c) for c in snapshots})
    if snaps and snapshot_dir is None:
        raise ModelError("--snapshots needs an output folder (snapshot_dir)")
    sim = Simulation(m, seed)
    first = spec.protocol.first_half
    pairing = spec.protocol.ce_pairing
    order = (
        ("charge", "discharge") if pairing == "charge_then_discharge" else ("discharge", "charge")
    )
    metadata = {
        "seilab_version": _version(),
        "seed": int(seed),
        "model_name": m.name,
        "model_file": m.source,
        "model_source_sha256": m.source_sha256,
        "model_sha256": m.sha256,
        "overrides": {k: v for k, v in m.overrides.items()},
        "parameters": m.to_dict(),
        "box": list(spec.lattice.box),
        "cycles": n_cycles,
        "_li_total0": int(sim.dyn.gcount[K.METAL]),
    }
    rows: list[tuple[HalfRecord, HalfRecord]] = []
    pending: HalfRecord | None = None
    kind = first
    end_reason = "completed"
    bar = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("simulate"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} cycles"),
            TimeRemainingColumn(),
        )
        task = bar.add_task("cycles", total=n_cycles)
        bar.start()
    try:
        while len(rows) < n_cycles:
            rec = sim.run_half(kind)
            kind = "discharge" if kind == "charge" else "charge"
            if int(rec.hc[K.H_END]) == K.END_STEP_LIMIT:
                # the compute budget (protocol.max_steps), not the model, ends the run: the
                # unfinished cycle is dropped and every kept cycle is the unlimited run's
                end_reason = schema.END_STEP_LIMIT
                break
            # the legacy loop stops the run when no acceptable reaction can be drawn
            stop = spec.protocol.stall_ends_run and int(rec.hc[K.H_END]) == K.END_STALLED
            if rec.kind == order[0] or pending is None:
                # the first half of a cycle, or a leading half without a partner in the chosen
                # pairing; a stall here leaves no complete cycle to report
                if rec.kind == order[0]:
                    pending = rec
                if stop:
                    end_reason = "stalled"
                    break
                continue
            rows.append((pending, rec))
            pending = None
            n = len(rows)
            if n in snaps:
                sim.snapshot(Path(snapshot_dir) / f"cycle_{n:04d}.xyz", f"cycle={n}")
            if bar is not None:
                bar.update(task, completed=n)
            if callback is not None:
                callback(n, n_cycles)
            h1, h2 = rows[-1]
            if stop:
                end_reason = "stalled"
                break
            if h1.hc[K.H_EVENTS] == 0 and h2.hc[K.H_EVENTS] == 0:
                end_reason = (
                    "exhausted"  # nothing can happen any more: a whole cycle without events
                )
                break
    finally:
        if bar is not None:
            bar.stop()
    metadata["end_reason"] = end_reason
    metadata["wall_s"] = round(time.perf_counter() - t0, 4)
    metadata["created_utc"] = utc_now()
    table = build_table(sim, rows, metadata)
    return RunResult(
        table, end_reason, {k: v for k, v in metadata.items() if not k.startswith("_")}
    )

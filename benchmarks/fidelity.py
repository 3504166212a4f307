"""Fidelity study: which settings of the open knobs make the simulated data set look like the paper's.

The paper's 380-run data set (seed paper, model spec ``ai-kmc-model.md`` section 9) is compared
with data sets simulated under candidate settings of the knobs that the public sources leave
open (model spec section 10) -- and only those:

* plating k0 (``reactions.plating.k0`` and ``reactions.plating_sei.k0``, the two Li plating
  rows, moved together): 1e-4 (legacy validation input) or the group's plating-sweep range
  0.6e-3 .. 1.5e-3 (reference 1e-3);
* the event budget ``protocol.event_budget``: 30, 50 or 800 (the values seen in the sources);
* the box height: 30 or 40 cubes (10 x 10 x nz);
* the CE pairing ``protocol.ce_pairing``;
* the F5D reaction ``reactions.f5d.enabled``;
* the (0, 1) eV pair window ``pair_settings.window``.

Every candidate is a set of overrides of the ``paper-legacy`` model, so the study does not
depend on what the default ``paper`` model currently is.  Nothing else moves: the engine rules
are the model file's, CE and failure are only measured.

Usage::

    python benchmarks/fidelity.py screen                      # all candidates, screening subset
    python benchmarks/fidelity.py screen --candidates legacy,kp15-b30-z30
    python benchmarks/fidelity.py full --candidates legacy,kp15-b30-z30   # 380-run paper design
    python benchmarks/fidelity.py run --subset mini --box 4 4 16 --cycles 10   # any subset
    python benchmarks/fidelity.py table --subset screen       # comparison table + figures
    python benchmarks/fidelity.py table --subset full
    python benchmarks/fidelity.py mechanism --candidate kp15-b30-z30      # profiles, snapshots

Subsets of the paper design (the same parameter sets as ``--design paper``):

``full``
    The paper design itself, 19 x 16 one-at-a-time (OAT) runs + 76 random runs = 380
    (``CampaignConfig(design="paper")``; run ids ``oat-*``, ``random-*``).
``screen``
    A stratified subset of 30 runs: the OAT runs of the seven Li-X pairs (Li-Li, F-Li, SFO-Li,
    O-Li, F5D-Li, S-Li, N-Li: the pairs of the paper's direction finding) at the four levels
    0.0, 0.5, 1.0 and 1.5 eV (28 runs) plus the first 2 of the paper design's 76 random sets
    (the random sets do not depend on how many are drawn).  Run through ``design="sets"``.
    Random sets are few because, on a loaded 2-core machine, some of them take 10-20 min per
    run (discharge halves with many strongly bound Li go through up to ``max_rejections``
    rejected draws before they stall).
    Compared with the full design it over-weights the Li-X OAT runs and the random runs
    (the 12 X-X and X-SOL pairs, 192 of the 304 OAT runs, behave almost like the DFT setting).
``mini``
    6 runs for the CI test: OAT of Li-Li and SFO-Li at 0.0 and 1.5 eV plus 2 random sets.

Campaign folders go to ``--root`` (default ``/work/fidelity-runs``), one per
(subset, candidate, box, cycles); each is a normal resumable campaign (process backend,
``--workers`` processes, default 2): run the same command again to resume.

Statistics (one row per candidate in ``fidelity_<subset>.csv`` / ``.md``; see
:func:`candidate_stats`): per-cycle CE distribution (median, share within 95-105 %, share above
105 %, 1st percentile and minimum, share in every 10 % interval, populated intervals, mode of
the 10 %-binned histogram), runs failing before the end (CE < 70 %, the failure-cycle
definition of :func:`seilab.analysis.failure.run_outcomes`), median / quartiles / IQR of the
failure cycle and the share of failing runs in cycles 75-83, the Spearman rank correlation of
per-run mean CE with the energy of each Li-X pair in the OAT runs, the level of SFO-Li with the
highest mean CE, mechanism indicators (charge halves that hit the budget, electrolyte left and
slab height at failure) and the criteria met.  A statistic that is undefined (e.g. no failing
run, hence no median failure cycle) is written as an explicit ``undefined (...)`` text, never as
an empty cell or NaN.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = Path("/work/fidelity-runs")
DEFAULT_FIG_DIR = REPO / "docs" / "figures"
DEFAULT_TABLE_DIR = REPO / "docs" / "fidelity"
BASE_MODEL = "paper-legacy"

from seilab.calibrate.fidelity import (  # noqa: E402, F401 - re-exported for the tests and users
    FAILURE_THRESHOLD,
    LI_X_PAIRS,
    NEAR_100,
    PAPER_FAILURE_WINDOW,
    PAPER_MEDIAN_FAILURE,
    PAPER_ROW,
    SCREEN_LEVELS,
    SCREEN_RANDOM,
    UNDEFINED,
    candidate_stats,
    comparison_table,
    criteria,
    interval_labels,
    pair_names,
    run_meta,
    subset_sets,
    write_tables,
)


# ------------------------------------------------------------------------------ candidates
@dataclass(frozen=True)
class Candidate:
    """One setting of the open knobs.

    Attributes
    ----------
    name
        Short id (also the campaign folder name).
    description
        What it changes relative to ``paper-legacy``.
    set
        Model overrides (``--set``) relative to ``paper-legacy``.
    nz
        Box height in cubes (the box is 10 x 10 x nz).
    """

    name: str
    description: str
    set: Mapping[str, Any] = field(default_factory=dict)
    nz: int = 40


def _kp(k0: float) -> dict[str, float]:
    return {"reactions.plating.k0": k0, "reactions.plating_sei.k0": k0}


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate("legacy", "paper-legacy as is: k0 1e-4, budget 50, 10x10x40", {}, 40),
        Candidate("legacy-z30", "legacy values in the port's 10x10x30 box", {}, 30),
        Candidate("kp10-b50-z30", "plating k0 1e-3, budget 50, 10x10x30", _kp(1e-3), 30),
        Candidate(
            "kp10-b30-z30",
            "plating k0 1e-3, budget 30, 10x10x30",
            {**_kp(1e-3), "protocol.event_budget": 30},
            30,
        ),
        Candidate(
            "kp15-b30-z30",
            "plating k0 1.5e-3, budget 30, 10x10x30",
            {**_kp(1.5e-3), "protocol.event_budget": 30},
            30,
        ),
        Candidate(
            "kp15-b30-z40",
            "plating k0 1.5e-3, budget 30, 10x10x40",
            {**_kp(1.5e-3), "protocol.event_budget": 30},
            40,
        ),
        Candidate(
            "kp15-b30-z30-window",
            "kp15-b30-z30 with the (0, 1) eV pair window",
            {**_kp(1.5e-3), "protocol.event_budget": 30, "pair_settings.window": True},
            30,
        ),
        Candidate(
            "kp15-b30-z30-nof5d",
            "kp15-b30-z30 with the F5D reaction off",
            {**_kp(1.5e-3), "protocol.event_budget": 30, "reactions.f5d.enabled": False},
            30,
        ),
        Candidate(
            "kp15-b30-z30-dtc",
            "kp15-b30-z30 with CE pairing discharge_then_charge",
            {
                **_kp(1.5e-3),
                "protocol.event_budget": 30,
                "protocol.ce_pairing": "discharge_then_charge",
            },
            30,
        ),
        Candidate(
            "kp15-b800-z30",
            "plating k0 1.5e-3, budget 800 (full-cell value), 10x10x30",
            {**_kp(1.5e-3), "protocol.event_budget": 800},
            30,
        ),
        Candidate(
            "kp15-b30-z60",
            "kp15-b30-z30 in a 10x10x60 box (artefact check: the box cannot fill in 100 cycles)",
            {**_kp(1.5e-3), "protocol.event_budget": 30},
            60,
        ),
    ]
}


# ------------------------------------------------------------------------------ running
def campaign_dir(root: Path, subset: str, cand: Candidate, box: Sequence[int], cycles: int) -> Path:
    """Folder of one candidate's campaign."""
    tag = f"{subset}_{cand.name}_box{'x'.join(str(int(v)) for v in box)}_c{cycles}"
    return Path(root) / tag


def candidate_box(cand: Candidate, box: Sequence[int] | None) -> tuple[int, int, int]:
    """The candidate's box, or an explicit override (tests use small boxes)."""
    return tuple(int(v) for v in box) if box is not None else (10, 10, int(cand.nz))


def run_candidate(
    cand: Candidate,
    subset: str,
    *,
    root: Path = DEFAULT_ROOT,
    cycles: int = 100,
    box: Sequence[int] | None = None,
    workers: int = 2,
    progress: bool = False,
) -> tuple[Path, float]:
    """Run (or resume) one candidate on one subset through the campaign machinery.

    Returns
    -------
    folder, wall_s
        The campaign folder and the wall time of this call.
    """
    from seilab.campaign import CampaignConfig, run_campaign

    b = candidate_box(cand, box)
    out = campaign_dir(root, subset, cand, b, cycles)
    common = dict(
        model=BASE_MODEL,
        cycles=int(cycles),
        box=b,
        set=dict(cand.set),
        backend="process",
        workers=int(workers),
    )
    if subset == "full":
        cfg = CampaignConfig(design="paper", **common)
    else:
        sets, _ = subset_sets(subset)
        cfg = CampaignConfig(design="sets", param_sets=sets, **common)
    t0 = time.perf_counter()
    res = run_campaign(cfg, out, progress=progress)
    wall = time.perf_counter() - t0
    if res.n_failed:
        raise RuntimeError(f"{cand.name}: {res.n_failed} runs failed: {res.failures[:3]}")
    timing = out / "fidelity_wall.json"
    log = json.loads(timing.read_text()) if timing.exists() else []
    log.append({"wall_s": wall, "counts": {k: int(v) for k, v in dict(res.counts).items()}})
    timing.write_text(json.dumps(log, indent=1))
    return out, wall


# ------------------------------------------------------------------------------ figures
def fig_ce_distributions(datasets: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Histograms of per-cycle CE (clipped at 300 %) for each candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(datasets)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.6 * nrow), squeeze=False)
    bins = np.arange(0, 310, 10)
    for ax, (name, d) in zip(axes.flat, datasets.items(), strict=False):
        ce = d["ce_pct"].dropna().clip(upper=300)
        ax.hist(ce, bins=bins, color="tab:blue", density=True)
        ax.axvspan(*NEAR_100, color="tab:green", alpha=0.2)
        ax.axvline(FAILURE_THRESHOLD, color="tab:red", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("per-cycle CE (%), clipped at 300")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def fig_failure_cycles(datasets: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Failure-cycle histograms (failure definition of ``seilab.analysis.failure``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seilab.analysis.failure import run_outcomes

    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.arange(0.5, 101.5, 2)
    for name, d in datasets.items():
        fc = run_outcomes(d)["failure_cycle"].dropna()
        if len(fc):
            ax.hist(fc, bins=bins, histtype="step", lw=1.3, label=f"{name} ({len(fc)})")
    ax.axvspan(*PAPER_FAILURE_WINDOW, color="grey", alpha=0.25, label="paper 75-83, median 78")
    ax.set_xlabel("failure cycle (first CE < 70 %)")
    ax.set_ylabel("runs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def fig_oat(
    datasets: Mapping[str, pd.DataFrame], metas: Mapping[str, pd.DataFrame], path: Path
) -> Path:
    """Mean CE of the OAT runs against the energy of each Li-X pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LI_X_PAIRS), figsize=(2.3 * len(LI_X_PAIRS), 2.6), sharey=True)
    for name, d in datasets.items():
        m = metas[name]
        mean_ce = d.groupby("run_id")["ce_pct"].mean()
        oat = m[m["kind"] == "oat"].join(mean_ce.rename("mean_ce"))
        for ax, p in zip(axes, LI_X_PAIRS, strict=True):
            q = oat[oat["pair"] == p].sort_values("level")
            ax.plot(q["level"], q["mean_ce"], marker="o", ms=3, label=name)
            ax.set_title(p, fontsize=9)
            ax.set_xlabel("E (eV)")
    axes[0].set_ylabel("mean CE of the run (%)")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ mechanism
PROFILE_COLUMNS = (
    ("ce_pct", "CE (%)"),
    ("n_li_metal_surface", "exposed Li0 (sites)"),
    ("n_li_sei", "SEI-bound Li (sites)"),
    ("n_sp_eth", "electrolyte sites"),
    ("slab_height_a", "slab height / box height"),
    ("n_events_dis", "discharge events"),
)


def fig_profiles(runs: Mapping[str, pd.DataFrame], box_height_a: float, path: Path) -> Path:
    """Per-cycle profiles of a failing and a surviving run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 5.2), sharex=True)
    for label, d in runs.items():
        for ax, (col, title) in zip(axes.flat, PROFILE_COLUMNS, strict=True):
            y = d[col].astype(float)
            if col == "slab_height_a":
                y = y / box_height_a
            ax.plot(d["cycle"], y, lw=1.1, label=label)
            ax.set_title(title, fontsize=9)
    axes[0, 0].axhline(FAILURE_THRESHOLD, color="tab:red", lw=0.8, ls="--")
    axes[0, 0].set_ylim(0, 300)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("cycle")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def read_xyz(path: Path) -> tuple[pd.DataFrame, float]:
    """Read one extended XYZ frame of ``seilab simulate --snapshots``: sites and box height."""
    lines = Path(path).read_text().splitlines()
    header = lines[1]
    lat = header.split('Lattice="')[1].split('"')[0].split()
    lz = float(lat[8])
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    df = pd.DataFrame(
        {
            "x": [float(r[1]) for r in rows],
            "z": [float(r[3]) for r in rows],
            "label": [r[4] for r in rows],
            "charge": [int(r[6]) for r in rows],
        }
    )
    return df, lz


SNAP_STYLE = {
    "Li0": ("#b0b0b0", 4),
    "Li+": ("#6a3d9a", 4),
    "F": ("#33a02c", 8),
    "O": ("#e31a1c", 8),
    "S": ("#ff7f00", 8),
    "N": ("#1f78b4", 8),
    "SFO": ("#fb9a99", 8),
    "F5D": ("#000000", 8),
}


def fig_snapshots(frames: Mapping[str, Path], path: Path) -> Path:
    """x-z projections of snapshot frames (electrolyte, not written, is the white space)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(1.9 * len(frames), 5.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, f) in zip(axes, frames.items(), strict=True):
        df, lz = read_xyz(f)
        kind = np.where(df["label"] == "Li", np.where(df["charge"] == 0, "Li0", "Li+"), df["label"])
        for k, (color, size) in SNAP_STYLE.items():
            sel = kind == k
            if sel.any():
                ax.scatter(df["x"][sel], df["z"][sel], s=size * 0.3, c=color, label=k, lw=0)
        ax.set_ylim(0, lz)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("x (A)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("z (A)")
    axes[-1].legend(fontsize=6, markerscale=3, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def mechanism(
    cand: Candidate,
    data: pd.DataFrame,
    meta: pd.DataFrame,
    fig_dir: Path,
    work_dir: Path,
    box_height_a: float,
) -> dict[str, Any]:
    """Profiles and snapshots of a failing and a surviving run of one candidate.

    The failing run is the failing OAT run whose failure cycle is closest to the median; the
    surviving run is a non-failing OAT run of the same pair if one exists, else any.  The
    failing run is simulated again (same seed, same parameters) with snapshots at cycles 1,
    the middle, the failure cycle and the last cycle.

    Returns
    -------
    dict
        The two runs and their state at the failure cycle (written to ``mechanism.json``).
    """
    from seilab.analysis.failure import run_outcomes
    from seilab.campaign import read_manifest
    from seilab.kmc.engine import simulate

    fig_dir.mkdir(parents=True, exist_ok=True)
    oc = run_outcomes(data)
    oat_ids = meta.index[meta["kind"] == "oat"]
    fail = oc.loc[oc.index.isin(oat_ids) & oc["event"]]
    ok = oc.loc[oc.index.isin(oat_ids) & ~oc["event"]]
    if fail.empty or ok.empty:
        raise RuntimeError(f"{cand.name}: need a failing and a surviving OAT run")
    med = fail["failure_cycle"].median()
    f_id = (fail["failure_cycle"] - med).abs().idxmin()
    same = ok.index[meta.loc[ok.index, "pair"] == meta.loc[f_id, "pair"]]
    s_id = same[0] if len(same) else ok.index[0]
    fc = int(oc.loc[f_id, "failure_cycle"])
    runs = {
        f"failing {f_id} ({meta.loc[f_id, 'pair']}={meta.loc[f_id, 'level']:g}, fails at {fc})": (
            data[data["run_id"] == f_id].sort_values("cycle")
        ),
        f"surviving {s_id} ({meta.loc[s_id, 'pair']}={meta.loc[s_id, 'level']:g})": (
            data[data["run_id"] == s_id].sort_values("cycle")
        ),
    }
    fig_profiles(runs, box_height_a, fig_dir / "fidelity_profiles.png")
    man = read_manifest(data.attrs.get("folder")) if data.attrs.get("folder") else None
    seed = int(data.loc[data["run_id"] == f_id, "seed"].iloc[0])
    pair, level = meta.loc[f_id, "pair"], float(meta.loc[f_id, "level"])
    last = int(data.loc[data["run_id"] == f_id, "cycle"].max())
    snaps = sorted({1, max(1, fc // 2), fc, last})
    snap_dir = work_dir / f"snapshots_{cand.name}_{f_id}"
    over = {**cand.set, f"pair.{pair}": level}
    simulate(
        BASE_MODEL,
        cycles=last,
        seed=seed,
        box=(10, 10, cand.nz),
        overrides=over,
        snapshots=snaps,
        snapshot_dir=snap_dir,
    )
    frames = {f"cycle {c}": snap_dir / f"cycle_{c:04d}.xyz" for c in snaps}
    fig_snapshots(frames, fig_dir / "fidelity_snapshots.png")
    fr = data[(data["run_id"] == f_id)].set_index("cycle")
    cols = [
        "ce_pct",
        "n_li_metal",
        "n_li_metal_surface",
        "n_li_sei",
        "n_sp_eth",
        "n_sp_fsi",
        "slab_height_a",
        "sei_thickness_a",
        "n_events_ch",
        "n_events_dis",
        "end_ch",
        "end_dis",
        "t_ch_s",
        "t_dis_s",
    ]
    rows = {
        int(c): {k: (v.item() if hasattr(v, "item") else v) for k, v in fr.loc[c, cols].items()}
        for c in snaps
        if c in fr.index
    }
    info = {
        "candidate": cand.name,
        "failing_run": f_id,
        "surviving_run": s_id,
        "failure_cycle": fc,
        "seed": seed,
        "box_height_a": box_height_a,
        "state": rows,
        "manifest_rows": int(len(man)) if man is not None else None,
    }
    (work_dir / f"mechanism_{cand.name}.json").write_text(json.dumps(info, indent=1, default=str))
    return info


# ------------------------------------------------------------------------------ driver
def load(folder: Path) -> pd.DataFrame:
    """``load_dataset`` of a campaign folder, with the folder recorded in ``attrs``."""
    from seilab.campaign import load_dataset

    d = load_dataset(folder)
    d.attrs["folder"] = str(folder)
    return d


def box_height(nz: int) -> float:
    """Box height in Angstrom (nz x a of the model)."""
    from seilab.model import load_model

    return float(nz) * float(load_model(BASE_MODEL).spec.lattice.a_angstrom)


def study(
    names: Sequence[str],
    subset: str,
    *,
    root: Path = DEFAULT_ROOT,
    cycles: int = 100,
    box: Sequence[int] | None = None,
    workers: int = 2,
    run: bool = True,
    table_dir: Path = DEFAULT_TABLE_DIR,
    fig_dir: Path | None = DEFAULT_FIG_DIR,
    stem: str | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Run (or resume) the candidates on a subset and write the comparison table and figures.

    Parameters
    ----------
    names
        Candidate names (keys of :data:`CANDIDATES`).
    subset
        ``full``, ``screen`` or ``mini``.
    root
        Folder of the campaign folders.
    cycles, box, workers
        Simulator and execution options (``box`` overrides every candidate's box: tests only).
    run
        Run missing runs first (False: only tabulate finished campaigns).
    table_dir, fig_dir
        Where the tables and the figures go (``fig_dir=None``: no figures).
    stem
        Table file stem (default ``fidelity_<subset>``).

    Returns
    -------
    table, stats
        The comparison table (text cells) and the raw statistics per candidate.
    """
    datasets: dict[str, pd.DataFrame] = {}
    metas: dict[str, pd.DataFrame] = {}
    stats: dict[str, dict[str, Any]] = {}
    for name in names:
        cand = CANDIDATES[name]
        b = candidate_box(cand, box)
        folder = campaign_dir(root, subset, cand, b, cycles)
        wall = None
        if run:
            print(f"[fidelity] {subset} {name} -> {folder}", flush=True)
            folder, wall = run_candidate(
                cand, subset, root=root, cycles=cycles, box=box, workers=workers, progress=progress
            )
            print(f"[fidelity]   done in {wall:.0f} s", flush=True)
        timing = folder / "fidelity_wall.json"
        if timing.exists():
            log = json.loads(timing.read_text())
            # the wall time of the session(s) that did the work (resumes of finished campaigns
            # take ~1 s and are not counted)
            wall = float(sum(e["wall_s"] for e in log if e["wall_s"] > 5)) or None
        d = load(folder)
        m = run_meta(d, subset)
        datasets[name], metas[name] = d, m
        stats[name] = candidate_stats(d, m, box_height_a=box_height(b[2]), wall_s=wall)
    table = comparison_table(stats)
    descriptions = {n: CANDIDATES[n].description for n in names}
    write_tables(table, Path(table_dir), stem or f"fidelity_{subset}", descriptions)
    if fig_dir is not None:
        fig_dir = Path(fig_dir)
        fig_dir.mkdir(parents=True, exist_ok=True)
        fig_ce_distributions(datasets, fig_dir / f"fidelity_{subset}_ce.png")
        fig_failure_cycles(datasets, fig_dir / f"fidelity_{subset}_failure.png")
        fig_oat(datasets, metas, fig_dir / f"fidelity_{subset}_oat.png")
    return table, stats


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["screen", "full", "run", "table", "mechanism", "list"])
    ap.add_argument("--candidates", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--candidate", default=None, help="mechanism: the candidate")
    ap.add_argument(
        "--subset",
        default="screen",
        choices=["screen", "full", "mini"],
        help="run, table, mechanism",
    )
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--box", type=int, nargs=3, default=None, help="override every box (tests)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table-dir", type=Path, default=DEFAULT_TABLE_DIR)
    ap.add_argument("--fig-dir", type=Path, default=DEFAULT_FIG_DIR)
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args(argv)
    if a.action == "list":
        for c in CANDIDATES.values():
            print(f"{c.name:22s} nz={c.nz:<3d} {json.dumps(dict(c.set))}  {c.description}")
        return 0
    names = a.candidates.split(",") if a.candidates else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"unknown candidate(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if a.action == "mechanism":
        cand = CANDIDATES[a.candidate or names[0]]
        b = candidate_box(cand, a.box)
        folder = campaign_dir(a.root, a.subset, cand, b, a.cycles)
        d = load(folder)
        info = mechanism(cand, d, run_meta(d, a.subset), a.fig_dir, a.root, box_height(b[2]))
        print(json.dumps(info, indent=1, default=str))
        return 0
    subset = {"screen": "screen", "full": "full"}.get(a.action, a.subset)
    table, _ = study(
        names,
        subset,
        root=a.root,
        cycles=a.cycles,
        box=a.box,
        workers=a.workers,
        run=a.action != "table",
        table_dir=a.table_dir,
        fig_dir=a.fig_dir,
        progress=a.progress,
    )
    print(table.T.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

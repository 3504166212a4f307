"""Draw-by-draw trace of the discharge halves of slow parameter sets (why they are slow).

A compiled copy of the engine's half-cycle loop (``kernels.run_half``, same calls, same
random-number stream, so the same trajectory) that records, for every reaction draw, the total
rate W before the draw, the result (fired / rejected) and the fragment hops since the previous
draw.  From the records it prints, per set: draws, hops, accepted events, the share of draws
whose W differs from the previous draw's, the share of accepted draws with W x limit > 1 (a
"spike": a hop just made a fast event possible) and the distribution of consecutive rejected
draws before an accepted draw.

Usage::

    python benchmarks/rejection_trace.py --runs random-00003-r0,random-00002-r0 --cpu 60
    python benchmarks/rejection_trace.py --runs random-00003-r0 --check 14   # same counters?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).parent))

from seilab.kmc import kernels as K  # noqa: E402
from seilab.kmc.kernels import (  # noqa: E402
    END_BUDGET,
    END_NO_EVENTS,
    END_STALLED,
    END_TIME,
    FP_SCAN,
    H_DIFF,
    H_END,
    H_EVENTS,
    H_FAILED,
    H_FILLED,
    H_REJECTED,
    H_REMOVED,
    H_WRAP,
    IP_BUDGET,
    IP_MAX_ATTEMPTS,
    IP_MAX_REJ,
    IP_MAX_TO_STOP,
    IP_NMOL,
    R_FIRED,
    R_NO_EVENTS,
    R_REJECTED,
    diffusion_step,
    maintenance,
    molecule_numbers,
    reaction_step,
)


@njit
def traced_half(
    st, half, hc, tout, rng_state, rev_stamp, rev_label, rec_w, rec_r, rec_h, hop_stats
):
    """``kernels.run_half`` with a record per reaction draw; returns the number of records.

    ``hop_stats`` receives (hops, hops that undo the previous hop, hops after which the
    framework rules changed a site, hops that changed W).
    """
    ip, fp = st.s.ip, st.s.fp
    tdis = st.d.tdis
    log, logn = st.d.log, st.d.logn
    prev_a = -1
    prev_b = -1
    nmol = np.zeros(max(ip[IP_NMOL], 1), dtype=np.int64)
    dt = np.zeros(1)
    t = 0.0
    nev = 0
    failed = 0
    rejected = 0
    end = END_BUDGET
    nrec = 0
    hops = 0
    while True:
        if nev >= ip[IP_BUDGET]:
            end = END_BUDGET
            break
        if t >= fp[FP_SCAN]:
            end = END_TIME
            break
        fired = False
        stop_half = False
        while not fired:
            if rng_state[0] < rng_state[1]:
                rng_state[0] += 1
                molecule_numbers(st, nmol)
                l0 = logn[0]
                w0 = tdis[1]
                if diffusion_step(st, nmol, rev_stamp, rev_label, hc):
                    fired = True
                    hops += 1
                    a = log[l0] // 8  # the site the fragment left, then the one it entered
                    b = log[l0 + 1] // 8
                    fw = hc[H_WRAP] + hc[H_REMOVED] + hc[H_FILLED]
                    maintenance(st, hc, False, rev_stamp, rev_label)
                    hop_stats[0] += 1
                    if a == prev_b and b == prev_a:
                        hop_stats[1] += 1
                    if hc[H_WRAP] + hc[H_REMOVED] + hc[H_FILLED] != fw:
                        hop_stats[2] += 1
                    if tdis[1] != w0:
                        hop_stats[3] += 1
                    prev_a = a
                    prev_b = b
                else:
                    failed += 1
                    hc[H_FAILED] += 1
            else:
                rng_state[0] = 0
                rng_state[1] = (
                    np.random.randint(1, ip[IP_MAX_TO_STOP] + 1)  # noqa: NPY002 (the engine's stream)
                    if ip[IP_MAX_TO_STOP] > 0
                    else 0
                )
                molecule_numbers(st, nmol)
                w = tdis[1]
                res = reaction_step(st, half, nmol, hc, dt, rev_stamp, rev_label)
                if nrec < rec_w.size:
                    rec_w[nrec] = w
                    rec_r[nrec] = res
                    rec_h[nrec] = hops
                    nrec += 1
                hops = 0
                if res == R_FIRED:
                    fired = True
                    t += dt[0]
                    nev += 1
                    failed = 0
                    rejected = 0
                    maintenance(st, hc, False, rev_stamp, rev_label)
                elif res == R_NO_EVENTS:
                    end = END_NO_EVENTS
                    stop_half = True
                    break
                elif res == R_REJECTED:
                    rejected += 1
                    hc[H_REJECTED] += 1
                    if rejected >= ip[IP_MAX_REJ]:
                        end = END_STALLED
                        stop_half = True
                        break
                else:
                    failed += 1
                    hc[H_FAILED] += 1
            if failed >= ip[IP_MAX_ATTEMPTS]:
                end = END_STALLED
                stop_half = True
                break
        if stop_half:
            break
    hc[H_EVENTS] = nev
    hc[H_END] = end
    tout[0] = t
    return nrec


def trace_run(
    run: dict, cpu_limit: float, cap: int = 4_000_000, max_halves: int | None = None
) -> dict:
    """Run one set; discharge halves through :func:`traced_half`; summary of the records."""
    from seilab.kmc.engine import Simulation
    from seilab.model import load_model

    m = load_model("paper").with_overrides(run["overrides"])
    sim = Simulation(m, run["seed"])
    st = sim.st
    n_rx, n_ch, nsp = len(sim.comp.reactions), len(sim.comp.channels), len(sim.comp.species)
    limit = m.spec.protocol.reject_fraction * m.spec.protocol.scan_interval_s
    rec_w = np.zeros(cap)
    rec_r = np.zeros(cap, dtype=np.int8)
    rec_h = np.zeros(cap, dtype=np.int32)
    gaps: list[int] = []  # consecutive rejections before each accepted draw
    n_draw = n_acc = n_spike_acc = n_hops = n_wchg = 0
    p_base = 0.0  # expected acceptances from draws with W x limit <= 1
    halves = []
    hop_stats = np.zeros(4, dtype=np.int64)
    c0 = time.process_time()
    kind = 0
    for _ in range(max_halves or 2 * m.spec.protocol.cycles):
        hc = np.zeros(K.H_BASE + n_rx + n_ch + nsp, dtype=np.int64)
        tout = np.zeros(1)
        t0 = time.process_time()
        if kind == 0:
            hc = sim.run_half("charge").hc
        else:
            n = traced_half(
                st,
                1,
                hc,
                tout,
                sim.rng_state,
                sim.rev_stamp,
                sim.rev_label,
                rec_w,
                rec_r,
                rec_h,
                hop_stats,
            )
            # as Simulation.run_half: the end-of-half statistics draw a fresh molecule sample
            lat = sim.comp.lattice
            layers = np.zeros((nsp + 1, lat.box[2]), dtype=np.int64)
            scal = np.zeros(6, dtype=np.int64)
            K.half_stats(st, lat.box[2], lat.layer, sim.molecule_numbers(), layers, scal)
            w, r = rec_w[:n], rec_r[:n]
            n_draw += n
            n_hops += int(rec_h[:n].sum())
            n_wchg += int((np.diff(w) != 0).sum())
            acc = np.flatnonzero(r == K.R_FIRED)
            n_acc += acc.size
            n_spike_acc += int((w[acc] * limit > 1).sum())
            small = w * limit <= 1
            p_base += float((-np.expm1(-w[small] * limit)).sum())
            hg = np.diff(np.r_[-1, acc]) - 1
            if r.size and r[-1] != K.R_FIRED:  # rejections left open at the end of the half
                hg = np.r_[hg, r.size - 1 - (acc[-1] if acc.size else -1)]
            gaps += (np.diff(np.r_[-1, acc]) - 1).tolist()
            halves.append(
                {
                    "cpu_s": time.process_time() - t0,
                    "draws": int(n),
                    "events": int(hc[H_EVENTS]),
                    "hops": int(hc[H_DIFF]),
                    "rejected": int(hc[H_REJECTED]),
                    "end": int(hc[H_END]),
                    "half": 2 * len(halves) + 1,
                    "max_run_of_rejections": int(hg.max()) if hg.size else 0,
                    "hc": [int(v) for v in hc],
                }
            )
        kind = 1 - kind
        if int(hc[H_END]) == END_STALLED or time.process_time() - c0 > cpu_limit:
            break
    g = np.array(gaps) if gaps else np.zeros(1)
    # with a lower max_rejections the run would have stalled (and ended) in the first half
    # holding that many consecutive rejections: the traced trajectory up to there is the same
    cap_end = {}
    for cap in (1_000, 10_000, 30_000):
        first = next((h for h in halves if h["max_run_of_rejections"] >= cap), None)
        cap_end[str(cap)] = None if first is None else first["half"]
    return {
        "run_id": run["run_id"],
        "cpu_s": time.process_time() - c0,
        "discharge_halves": len(halves),
        "draws": n_draw,
        "accepted": n_acc,
        "hops": n_hops,
        "share_draws_w_changed": n_wchg / max(n_draw, 1),
        "share_accepted_at_spike": n_spike_acc / max(n_acc, 1),
        "expected_accepted_from_baseline_draws": p_base,
        "discharge_hops_undoing_previous_hop": int(hop_stats[1]) / max(int(hop_stats[0]), 1),
        "discharge_hops_with_framework_change": int(hop_stats[2]) / max(int(hop_stats[0]), 1),
        "discharge_hops_changing_w": int(hop_stats[3]) / max(int(hop_stats[0]), 1),
        "gap_quantiles_50_90_99_max": [float(q) for q in np.quantile(g, [0.5, 0.9, 0.99, 1.0])],
        "gaps_over_1e3_1e4_1e5": [int((g > k).sum()) for k in (1e3, 1e4, 1e5)],
        "slowest_halves": sorted(halves, key=lambda h: -h["cpu_s"])[:3],
        "stalled_at_half_with_max_rejections": cap_end,
        "halves_traced": halves,
    }


def check_same(run: dict, n_halves: int) -> bool:
    """True if the traced loop gives the engine's counters in each discharge half."""
    from seilab.kmc.engine import Simulation
    from seilab.model import load_model

    x = trace_run(run, float("inf"), max_halves=n_halves)
    sim = Simulation(load_model("paper").with_overrides(run["overrides"]), run["seed"])
    ok = True
    kind = "charge"
    ref = []
    for _ in range(n_halves):
        rec = sim.run_half(kind)
        if kind == "discharge":
            ref.append([int(v) for v in rec.hc])
        kind = "discharge" if kind == "charge" else "charge"
        if int(rec.hc[H_END]) == END_STALLED:
            break
    for h, r in zip(x["halves_traced"], ref, strict=False):
        same = h["hc"] == r
        ok &= same
        print(f"half {h['half']}: {'same counters' if same else 'DIFFERENT'}")
    return ok and len(ref) == len(x["halves_traced"])


def main() -> None:
    from slow_sets import paper_runs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="comma-separated run ids of the paper design")
    p.add_argument("--cpu", type=float, default=60.0, help="CPU seconds per run (checked per half)")
    p.add_argument("--out", default=None)
    p.add_argument(
        "--check",
        type=int,
        default=0,
        help="instead: run the first N halves both ways and compare the counters",
    )
    a = p.parse_args()
    runs = {r["run_id"]: r for r in paper_runs()}
    if a.check:
        ok = all(check_same(runs[rid], a.check) for rid in a.runs.split(","))
        print("traced loop == engine:", ok)
        sys.exit(0 if ok else 1)
    res = []
    for rid in a.runs.split(","):
        x = trace_run(runs[rid], a.cpu)
        print(json.dumps({k: v for k, v in x.items() if k != "halves_traced"}), flush=True)
        res.append(x)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

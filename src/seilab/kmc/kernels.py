"""Numba kernels of the kMC engine.

The engine knows roles, not chemistry: species are integer codes with a role (empty, metal,
background electrolyte, fragment, molecule) and reactions are rows of tables compiled from the
model file (:mod:`seilab.kmc.compile`).

Design (see docs/engine.md):

* Per-site neighbour counters (species counts, SEI counts, "ionisers", selector counts) are
  updated incrementally by :func:`change_site`, which touches only the changed site and its
  neighbours and queues them; derived charges, flags and eligible-site sets are refreshed for
  the queued sites once per event (:func:`settle`; the framework rules read only counters), and
  rates once per event (:func:`flush_rates`) for the sites whose rate inputs changed.
* Rates live in sum trees (one leaf per site) whose inner nodes are recomputed as
  left + right, so the incremental tree equals a tree built from scratch bit for bit.
* The legacy engine re-samples the electrolyte molecules (a uniform random assignment of
  ``N_m`` molecules of each type to the electrolyte sites) after every event.  Here the
  assignment is drawn only where it matters, with the same distribution: for a reaction draw,
  multivariate-hypergeometric counts on the "active" electrolyte sites (those where a molecule
  could react) and a uniform subset of them; for a diffusion draw, lazily revealed labels of the
  proposed fragment's electrolyte neighbours (sequential sampling without replacement) inside an
  exact rejection step.
* The framework rules (wrap, updateLiMetal, updateEther, charges) are applied after every
  event only at sites whose inputs changed since each rule last ran (a typed change log with
  one cursor per rule), which equals applying them to the whole lattice.
* Speed: kernels compile without Numba's reference counting unless they allocate, with LLVM's
  loop vectorizer off and, when only compiled code calls them, without a Python entry point
  (see :class:`_ScalarCompiler` and the decorators after it); per-site helpers take scalars
  only, and the kernels of one step are inlined into the half-cycle loop (:func:`run_half`,
  docs/engine.md).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.core import codegen as numba_codegen
from numba.core import config as numba_config
from numba.core.compiler import Compiler


def _passes_without_unrolling(tm, opt=2, loop_vectorize=False, slp_vectorize=False):
    """Numba's optimisation pipeline (``llvm_bindings.create_pass_builder``), loop unrolling off."""
    import llvmlite.binding as llvm

    pto = llvm.create_pipeline_tuning_options()
    pto.speed_level = opt
    pto.slp_vectorization = slp_vectorize
    pto.loop_vectorization = loop_vectorize
    pto.loop_unrolling = False
    return llvm.create_pass_builder(tm, pto)


# Numba builds its passes through this module-level name since it moved to LLVM's new pass
# manager (0.62, the dependency floor); should a later Numba build them elsewhere, the kernels
# compile with unrolling (slower, same results) and tests/kmc/test_kernel_flags.py fails
_UNROLL_HOOK = hasattr(numba_codegen, "create_pass_builder")


class _ScalarCompiler(Compiler):
    """Numba's default pipeline, with LLVM's loop vectorizer and loop unrolling off while it
    compiles a kernel.

    The kernels' loops are short (a site's 34 neighbours, a few selectors) and branchy; with
    AVX-512 the vectorizer turns them into gathers, scatters and masks that cost more than the
    scalar loop.  Measured on random-00003 (200,000 steps, AMD EPYC Zen 5): 12.9 us per step
    vectorized, 6.0 without (generic x86-64 code, which has no such vectors: 6.4).  Unrolled,
    the same loops (their trip count is a site's neighbour count, known only at run time) grow
    the one large inlined half-cycle function past what the instruction cache and the register
    allocator handle well: without unrolling random-00003 (300,000 steps) took 1.13-1.32 s
    against 1.36-1.54 s, same tables (3 x 3 runs in alternating processes, December 2026).  Numba
    reads ``config.LOOP_VECTORIZE`` and calls ``codegen.create_pass_builder`` when it builds
    its optimisation passes, so both settings hold for this compilation (the kernels it calls
    included) and are restored after; other Numba code in the process keeps its own.
    """

    def _compile_core(self):
        saved = numba_config.LOOP_VECTORIZE
        numba_config.LOOP_VECTORIZE = 0
        if _UNROLL_HOOK:
            saved_pb = numba_codegen.create_pass_builder
            numba_codegen.create_pass_builder = _passes_without_unrolling
        try:
            return super()._compile_core()
        finally:
            numba_config.LOOP_VECTORIZE = saved
            if _UNROLL_HOOK:
                numba_codegen.create_pass_builder = saved_pb


# Every kernel says whether it uses Numba's reference counting (NRT).  A compiled call passes
# each of the state's 60 arrays as separate arguments, and with NRT the callee increments and
# decrements the reference count of each on entry and exit: about 120 calls into the runtime
# per kernel call, a fifth of the instructions of a step in a slow parameter set (102,800 ->
# 82,700 without).  Kernels that allocate no array and return none run without it (the caller
# keeps every array alive for the duration of the call); the two that allocate arrays
# (init_state, half_stats) keep it.  The choice must be written on every kernel: Numba gives a
# kernel that leaves it unset the choice of the kernel whose compilation first reaches it
# (tests/kmc/test_kernel_flags.py checks both).
_kernel = njit(cache=True, _nrt=False, pipeline_class=_ScalarCompiler)
_kernel_nrt = njit(cache=True, _nrt=True, pipeline_class=_ScalarCompiler)
# Kernels only compiled code calls get no Python entry point: the wrapper that unboxes the
# state's 60 arrays from Python objects took about 0.3 s of compilation per kernel.
_INNER = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}
_inner = njit(cache=True, _nrt=False, pipeline_class=_ScalarCompiler, **_INNER)
_inner_inline = njit(
    cache=True, _nrt=False, inline="always", pipeline_class=_ScalarCompiler, **_INNER
)
# the kernels of one step, also called from Python (tests): inlined into the half-cycle loop
_kernel_inline = njit(cache=True, _nrt=False, inline="always", pipeline_class=_ScalarCompiler)

# change_site's call sites pass a uint32 site and species: Numba compiles a function once per
# argument-type combination (a literal 0, a uint8 read from occ, a uint32 from a list), and
# mixed types compiled the big set_site five times (cold start 55.8 s -> 45.2 s).  Unsigned,
# because Numba guards every signed index against a negative value (wraparound) and site and
# species indices never are
_I = np.uint32
# an index computed in int64 arithmetic, reinterpreted as unsigned for the same reason: only
# ever inside the brackets (uint64 in arithmetic with int64 gives float64 in Numba)
_U = np.uint64

# ----------------------------------------------------------------- codes shared with Python
EMPTY = 0
METAL = 1
BACKGROUND = 2
ROLE_EMPTY, ROLE_METAL, ROLE_BACKGROUND, ROLE_FRAGMENT, ROLE_MOLECULE = 0, 1, 2, 3, 4
T_BCB, T_BCO, T_BA, T_OC, T_TE = 0, 1, 2, 3, 4
CL_OC, CL_BA, CL_NONE = 0, 1, 2

# columns of the counter block c2
C_LI_NEAR, C_SEI_OC, C_SEI_BA, C_SEI_BASITE, C_ION, C_HD, C_DOC, C_DBA, C_BA_TOTAL = range(9)
N_C2 = 9

# flag bits
F_PLATE, F_PACKOC, F_PACKBA, F_HD, F_DOC, F_DBA, F_ACTIVE, F_FILLM = 1, 2, 4, 8, 16, 32, 64, 128
# indexable sets
S_PLATE, S_PACKOC, S_PACKBA, S_ACTIVE, S_FILLM = 0, 1, 2, 3, 4
N_SETS = 5

# integer parameters (ip)
(
    IP_NSP,
    IP_NSPLAT,
    IP_NMOL,
    IP_EL_MAXLI,
    IP_WRAP,
    IP_WRAP_BCB_THR,
    IP_LI_REMOVE,
    IP_LI_FILL,
    IP_MAX_STRIP_LI,
    IP_PLATE_MIN,
    IP_PLATE_MAX,
    IP_PACK_MIN,
    IP_HOP_BCB_MAX,
    IP_HOP_BCO_MIN,
    IP_DEST_MIN,
    IP_MAX_TO_STOP,
    IP_BUDGET,
    IP_MAX_ATTEMPTS,
    IP_MAX_REJ,
    IP_STRIP_RX,
    IP_HOP_RX,
    IP_MOL_INT_ANY,
    IP_WRAP_SHORTCUT,
    IP_FILL_MOL_MAX,
    IP_CONSUME_MASK,
    IP_MAX_STEPS,
) = range(26)
N_IP = 26
# float parameters (fp)
FP_KT, FP_DIFF_PREF, FP_SCAN, FP_REJECT, FP_EL_MOLPERSITE = range(5)
N_FP = 5

# misc slots: ionised metal count, force a full pass, then the electrolyte sample of the last
# event (its reveal stamp, unrevealed electrolyte sites, a site the back-fill skips, molecules
# of each type not yet revealed)
M_ION, M_FULL, M_MARK, M_POOL, M_SKIP, M_LEFT = 0, 1, 2, 3, 4, 5

# a framework-rule outcome: metal placed by wrap and removed by updateLiMetal in the same pass
WRAP_THEN_REMOVED = -1

# kinds of change in a log entry (low three bits; the site is entry >> 3)
LOG_FRAGMENT, LOG_METAL, LOG_BACKGROUND = 1, 2, 4

# reaction kinds
K_MOLECULE, K_FRAGMENT, K_STRIP, K_HOP = 0, 1, 2, 3

# end reasons of a half-cycle
END_BUDGET, END_TIME, END_NO_EVENTS, END_STALLED, END_STEP_LIMIT = 0, 1, 2, 3, 4

# per-half counters (hc), indices; per-reaction and per-channel blocks follow
(
    H_EVENTS,
    H_DIFF,
    H_REJECTED,
    H_FAILED,
    H_PLATED,
    H_PLATE_DROPPED,
    H_STRIPPED,
    H_WRAP,
    H_REMOVED,
    H_FILLED,
    H_PROD_DROPPED,
    H_END,
) = range(12)
H_BASE = 12  # then n_rx reaction counts, then n_ch channel counts, then nsp formed counts

# the rate-refresh and settle stamps are int32 (half the cache lines of int64 for the
# neighbours of a change); their counters begin again at 1 before reaching this value
STAMP_WRAP = 2**31 - 1

# reaction-step results
R_FIRED, R_NOT_FIRED, R_REJECTED, R_NO_EVENTS = 0, 1, 2, 3


# ----------------------------------------------------------------------------- sum tree
@_inner
def tree_set(tree, size, i, w):
    node = size + i
    if tree[_U(node)] == w:
        return
    tree[_U(node)] = w
    node >>= 1
    while node >= 1:
        tree[_U(node)] = tree[_U(2 * node)] + tree[_U(2 * node + 1)]
        node >>= 1


@_inner
def tree_pick(tree, size):
    """Leaf index drawn with probability weight / total (retries a zero leaf from rounding)."""
    while True:
        u = np.random.random() * tree[1]
        node = 1
        while node < size:
            left = tree[_U(2 * node)]
            if u < left:
                node = 2 * node
            else:
                u -= left
                node = 2 * node + 1
        if tree[_U(node)] > 0.0:
            return node - size


@_inner
def tree_build(tree, size):
    for node in range(size - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]


# ------------------------------------------------------------------------------ sampling
@_inner
def _lchoose(a, b):
    return math.lgamma(a + 1.0) - math.lgamma(b + 1.0) - math.lgamma(a - b + 1.0)


@_kernel
def hypergeometric(good, bad, n):
    """Number of good items in a uniform sample of n out of good + bad (exact law).

    Inversion of the distribution function from its lowest value, in the smaller of the two
    classes: the cost grows with the mean count of that class in the sample (a few steps for
    the molecules on the active sites), where Numba's ``np.random.hypergeometric`` draws one
    random number per sampled item (hundreds per reaction draw).  Where the lowest value's
    probability underflows (a mean far above it) Numba's sampler is used instead.
    """
    if n <= 0 or good <= 0:
        return 0
    if bad <= 0:
        return n
    swap = good > bad
    g = bad if swap else good
    b = good if swap else bad
    k = max(0, n - b)
    kmax = min(n, g)
    logp = _lchoose(g, k) + _lchoose(b, n - k) - _lchoose(g + b, n)
    if logp < -600.0:
        return np.random.hypergeometric(good, bad, n)
    p = math.exp(logp)
    u = np.random.random()
    while k < kmax and u >= p:
        u -= p
        p *= (g - k) * (n - k) / ((k + 1.0) * (b - n + k + 1.0))
        k += 1
    return n - k if swap else k


# ----------------------------------------------------------------------- indexable sets
@_inner
def set_add(sarr, spos, sn, s, i):
    if spos[s, i] >= 0:
        return
    k = sn[s]
    sarr[s, _U(k)] = i
    spos[s, i] = k
    sn[s] = k + 1


@_inner
def set_remove(sarr, spos, sn, s, i):
    k = spos[s, i]
    if k < 0:
        return
    last = sn[s] - 1
    j = sarr[s, _U(last)]
    sarr[s, k] = j
    spos[s, j] = k
    spos[s, i] = -1
    sn[s] = last


@_inner
def set_swap(sarr, spos, s, a, b):
    i = sarr[s, a]
    j = sarr[s, b]
    sarr[s, a] = j
    sarr[s, b] = i
    spos[s, j] = a
    spos[s, i] = b


# ------------------------------------------------------------------------- the state
# The state is a tuple of arrays (Numba cannot cache jitclasses); see kmc/state.py for names.


# Performance rule for this file: a Numba call cost an atomic reference-count update per
# array argument (also for functions inlined with inline="always"), which was more than the
# work of a per-site helper.  Helpers called per site or per neighbour therefore take scalars
# only; loops over sites live in functions that are called once per change.  (Measured while
# every kernel used reference counting; most now compile without it, see _kernel above, and
# the rule may cost nothing any more: not re-measured.)


@_inner_inline
def _metal_rate(j, r, cnt, INT, rx_rate, ip, fp):
    ea = 0.0
    for s in range(ip[IP_NSPLAT]):
        ea += INT[METAL, s] * cnt[j, s]
    return rx_rate[r] * np.exp(-ea / fp[FP_KT])


@_kernel
def metal_rate(st, i, kind_rx):
    """Strip or hop rate of the metal atom at i (bond-counting barrier)."""
    return _metal_rate(i, kind_rx, st.d.cnt, st.s.INT, st.s.rx_rate, st.s.ip, st.s.fp)


@_inner
def _refresh_rates(
    lst,
    nlst,
    occ,
    chg,
    cnt,
    c2,
    sel,
    flags,
    sarr,
    spos,
    sn,
    wmol,
    tdis,
    tdiff,
    size,
    role,
    sclass,
    INT,
    rx_kind,
    rx_reactant,
    rx_sel,
    rx_rate,
    ip,
    fp,
):
    """Recompute the rates of the sites lst[:nlst] (strip/hop, diffusion, molecule weights)."""
    nsplat = ip[IP_NSPLAT]
    nmol = ip[IP_NMOL]
    kT = fp[FP_KT]
    dpref = fp[FP_DIFF_PREF]
    maxstrip = ip[IP_MAX_STRIP_LI]
    srx = ip[IP_STRIP_RX]
    hrx = ip[IP_HOP_RX]
    nrx = rx_kind.size
    for q in range(nlst):
        j = lst[q]
        o = occ[j]
        # an empty site carries no rate: nothing to do unless it still holds an old one
        if (
            o == EMPTY
            and tdis[_U(size + j)] == 0.0
            and tdiff[_U(size + j)] == 0.0
            and not (flags[j] & F_ACTIVE)
        ):
            continue
        # discharge: strip + hop of a free metal atom at the surface (one bond-counting barrier)
        w = 0.0
        if o == METAL and chg[j] == 0 and cnt[j, BACKGROUND] >= 1 and cnt[j, METAL] <= maxstrip:
            ea = 0.0
            for s in range(nsplat):
                ea += INT[METAL, s] * cnt[j, s]
            boltz = np.exp(-ea / kT)
            if srx >= 0:
                w += rx_rate[srx] * boltz
            if hrx >= 0 and c2[j, C_HD] > 0:
                w += rx_rate[hrx] * boltz * c2[j, C_HD]
        tree_set(tdis, size, j, w)
        # diffusion of a fragment
        w = 0.0
        if role[o] == ROLE_FRAGMENT:
            nd = c2[j, C_DOC] if sclass[o] == CL_OC else c2[j, C_DBA]
            if nd > 0:
                ea = INT[o, METAL] * c2[j, C_LI_NEAR]
                for s in range(nsplat):
                    if s != METAL:
                        ea += INT[o, s] * cnt[j, s]
                w = dpref * np.exp(-ea / kT) * nd
        tree_set(tdiff, size, j, w)
        # molecule reactions at an electrolyte site
        act = False
        if o == BACKGROUND:
            for m in range(nmol):
                wmol[j, m] = 0.0
            for r in range(nrx):
                if rx_kind[r] == K_MOLECULE:
                    v = rx_rate[r] * sel[j, _U(rx_sel[r])]
                    wmol[j, _U(rx_reactant[r] - nsplat)] += v
                    if v > 0.0:
                        act = True
        elif flags[j] & F_ACTIVE:  # no longer electrolyte: drop its molecule weights
            for m in range(nmol):
                wmol[j, m] = 0.0
        if act:
            set_add(sarr, spos, sn, S_ACTIVE, j)
            flags[j] |= F_ACTIVE
        elif flags[j] & F_ACTIVE:
            set_remove(sarr, spos, sn, S_ACTIVE, j)
            flags[j] &= ~F_ACTIVE


@_inner
def refresh_rates(st, lst, nlst):
    """Recompute the rates of the sites lst[:nlst]."""
    d, t = st.d, st.s
    _refresh_rates(
        lst,
        nlst,
        d.occ,
        d.chg,
        d.cnt,
        d.c2,
        d.sel,
        d.flags,
        d.sarr,
        d.spos,
        d.sn,
        d.wmol,
        d.tdis,
        d.tdiff,
        d.tsize[0],
        t.role,
        t.sclass,
        t.INT,
        t.rx_kind,
        t.rx_reactant,
        t.rx_sel,
        t.rx_rate,
        t.ip,
        t.fp,
    )


@_inner_inline
def _flags_of(o, t, cl, nli, nel, sei_oc, sei_ba, pmin, pmax, pack, hbcb, hbco, dmin, fcap):
    """Eligibility flags of a site (plating site, product sites, hop and diffusion destinations,
    back-fill through molecules)."""
    f = 0
    # a BC site the back-fill takes when the molecules are flushed first: no SEI neighbour, and
    # 1..fcap electrolyte sites (its neighbours, and itself if electrolyte) that must all hold
    # a molecule in the current sample (fcap = 0: the legacy order is off)
    if fcap > 0 and (t == T_BCB or t == T_BCO) and sei_oc + sei_ba == 0:
        if o == EMPTY and 1 <= nel <= fcap:
            f |= F_FILLM
        elif o == BACKGROUND and nel + 1 <= fcap:
            f |= F_FILLM
    if o != EMPTY:
        return f
    if (t == T_BCB or t == T_BCO) and nel >= 1 and pmin <= nli <= pmax:
        f |= F_PLATE
    if cl == CL_OC and nel >= 1 and sei_ba == 0 and nli >= pack:
        f |= F_PACKOC
    if cl == CL_BA and nel >= 1 and sei_oc == 0 and nli >= pack:
        f |= F_PACKBA
    if nel >= 1 and ((t == T_BCB and nli <= hbcb) or (t == T_BCO and nli >= hbco)):
        f |= F_HD
    if (t == T_BCO or t == T_OC) and sei_ba == 0 and nli >= dmin:
        f |= F_DOC
    if (t == T_BCB or t == T_BA) and sei_oc == 0 and nli >= dmin:
        f |= F_DBA
    return f


@_inner_inline
def _flag_step(diff, f, bit):
    """+1 / -1 / 0: how a neighbour's count of sites with ``bit`` moves when a site's flags
    change by ``diff`` to ``f``."""
    if not (diff & bit):
        return 0
    return 1 if f & bit else -1


@_inner_inline
def _site_flags(j, o, t, cnt, c2, tclass, ip):
    """Eligibility flags of site j from its counters.

    Once per change (`change_site`) it costs nothing measurable (102,500 against 102,900
    instructions per step in a slow set); `settle`'s loop over the queued sites calls
    :func:`_flags_of` with the parameters read once (0.7 % fewer instructions).
    """
    return _flags_of(
        o,
        t,
        tclass[t],
        cnt[j, METAL],
        cnt[j, BACKGROUND],
        c2[j, C_SEI_OC],
        c2[j, C_SEI_BA],
        ip[IP_PLATE_MIN],
        ip[IP_PLATE_MAX],
        ip[IP_PACK_MIN],
        ip[IP_HOP_BCB_MAX],
        ip[IP_HOP_BCO_MIN],
        ip[IP_DEST_MIN],
        ip[IP_FILL_MOL_MAX],
    )


@_kernel
def set_site(st, i, new):
    """Change the species at site i and update everything that depends on it, locally.

    :func:`change_site` followed by :func:`settle`: after it every counter, charge, flag and
    set membership is current.  Every site whose rates may have changed goes on a list;
    :func:`flush_rates` recomputes them.
    """
    change_site(st, i, new)
    settle(st)


@_inner
def change_site(st, i, new):
    """Change the species at site i: its neighbours' counters now, the rest at :func:`settle`.

    Counters (species, SEI, ioniser, selector and metal-in-reach counts) are current when this
    returns, and so are the destination flags of i; charges, the other flags and set
    memberships of i and its neighbours wait on the settle queue.  The framework rules read
    only counters and occupants, so the changes of one event and its rule pass share one
    settle: a site near several of them is visited once, and a flag that flips and flips back
    within the event costs nothing (on the calibrated ``paper`` half the visits were repeats,
    in a slow parameter set two thirds).
    """
    d, tt = st.d, st.s
    occ, chg, cnt, c2, sel, flags = d.occ, d.chg, d.cnt, d.c2, d.sel, d.flags
    gcount, log, logn, misc = d.gcount, d.log, d.logn, d.misc
    wstamp, wlist, wctr = d.wstamp, d.wlist, d.wctr
    qstamp, qlist, qctr = d.qstamp, d.qlist, d.qctr
    nbr, nn, stype, tclass, near, near_rev, role = (
        tt.nbr,
        tt.nn,
        tt.stype,
        tt.tclass,
        tt.near,
        tt.near_rev,
        tt.role,
    )
    selbits, ip = tt.selbits, tt.ip
    old = occ[i]
    if old == new:
        return
    oldc = chg[i]
    # the new occupant's charge from i's own ioniser count (settle corrects it if a fragment
    # comes or goes nearby later in the event); setting it now lets the selector counts below
    # take it in one pass
    newc_i = 1 if (new == METAL and c2[i, C_ION] > 0) else 0
    occ[i] = new
    gcount[old] -= 1
    gcount[new] += 1
    if oldc != newc_i:
        misc[M_ION] += newc_i - oldc
        chg[i] = newc_i
    if logn[0] < log.size:
        # the entry says what kind of input changed, so each rule re-examines only what it reads
        kind = 0
        if role[old] == ROLE_FRAGMENT or role[new] == ROLE_FRAGMENT:
            kind |= LOG_FRAGMENT
        if old == METAL or new == METAL:
            kind |= LOG_METAL
        if old == BACKGROUND or new == BACKGROUND:
            kind |= LOG_BACKGROUND
        log[_U(logn[0])] = i * 8 + kind
        logn[0] += 1
    else:
        misc[M_FULL] = 1  # overflow: the next maintenance pass runs over the whole lattice
    t = stype[i]
    cl = tclass[t]
    of = role[old] == ROLE_FRAGMENT
    nf = role[new] == ROLE_FRAGMENT
    nsel = sel.shape[1]
    # selectors the old occupant counted for, and the new one counts for (the same for every
    # neighbour: a selector reads the neighbour's species, charge and site type)
    sel_old = selbits[old, oldc, t]
    sel_new = selbits[new, newc_i, t]
    metal_change = old == METAL or new == METAL
    # i's destination flags follow from its new occupant and its own counters, which this
    # change does not touch: they reach its neighbours' destination counts in the loop below
    # (the other flags, which carry set memberships, wait for settle)
    fi = 0
    if new == EMPTY or new == BACKGROUND:
        fi = _site_flags(i, new, t, cnt, c2, tclass, ip)
    dest = F_HD | F_DOC | F_DBA
    ddiff = (fi ^ flags[i]) & dest
    if ddiff:
        flags[i] = (flags[i] & ~dest) | (fi & dest)
    dh_i = _flag_step(ddiff, fi, F_HD)
    do_i = _flag_step(ddiff, fi, F_DOC)
    db_i = _flag_step(ddiff, fi, F_DBA)
    wc = wctr[0]
    nw = wctr[1]
    qc = qctr[0]
    nq = qctr[1]
    # i itself: its rates (it may have lost them) and its flags
    if wstamp[i] != wc:
        wstamp[i] = wc
        wlist[_U(nw)] = i
        nw += 1
    if qstamp[i] != qc:
        qstamp[i] = qc
        qlist[_U(nq)] = i
        nq += 1
    for k in range(nn[i]):
        j = nbr[i, k]
        cnt[j, old] -= 1
        cnt[j, new] += 1
        if ddiff:
            c2[j, C_HD] += dh_i
            c2[j, C_DOC] += do_i
            c2[j, C_DBA] += db_i
        if metal_change and near_rev[i, k]:
            if old == METAL:
                c2[j, C_LI_NEAR] -= 1
            if new == METAL:
                c2[j, C_LI_NEAR] += 1
        if of:
            if cl == CL_OC:
                c2[j, C_SEI_OC] -= 1
            else:
                c2[j, C_SEI_BA] -= 1
            if t == T_BA:
                c2[j, C_SEI_BASITE] -= 1
            if near[i, k]:
                c2[j, C_ION] -= 1
        if nf:
            if cl == CL_OC:
                c2[j, C_SEI_OC] += 1
            else:
                c2[j, C_SEI_BA] += 1
            if t == T_BA:
                c2[j, C_SEI_BASITE] += 1
            if near[i, k]:
                c2[j, C_ION] += 1
        if sel_old != sel_new:
            for s in range(nsel):
                sel[j, s] += ((sel_new >> s) & 1) - ((sel_old >> s) & 1)
            # molecule weights read selectors (metal and fragment rates, which read the
            # other counters, are listed by settle, once per site)
            if occ[j] == BACKGROUND and wstamp[j] != wc:
                wstamp[j] = wc
                wlist[_U(nw)] = j
                nw += 1
        if qstamp[j] != qc:
            qstamp[j] = qc
            qlist[_U(nq)] = j
            nq += 1
    wctr[1] = nw
    qctr[1] = nq


@_inner
def settle(st):
    """Charges, flags and set memberships of the sites queued by :func:`change_site`.

    Each queued site is visited once, whatever number of changes touched it; its charge and
    flags are derived from the current counters, and a change of them is carried one link
    further (selector counts, destination counts, the rate-refresh list).
    """
    d, tt = st.d, st.s
    occ, chg, c2, sel, flags, sarr, spos, sn = (
        d.occ,
        d.chg,
        d.c2,
        d.sel,
        d.flags,
        d.sarr,
        d.spos,
        d.sn,
    )
    cnt, misc = d.cnt, d.misc
    wstamp, wlist, wctr = d.wstamp, d.wlist, d.wctr
    qlist, qctr = d.qlist, d.qctr
    nbr, nn, stype, tclass, role = tt.nbr, tt.nn, tt.stype, tt.tclass, tt.role
    selbits, ip = tt.selbits, tt.ip
    nq = qctr[1]
    if nq == 0:
        return
    nsel = sel.shape[1]
    pmin, pmax, pack = ip[IP_PLATE_MIN], ip[IP_PLATE_MAX], ip[IP_PACK_MIN]
    hbcb, hbco, dmin = ip[IP_HOP_BCB_MAX], ip[IP_HOP_BCO_MIN], ip[IP_DEST_MIN]
    fcap = ip[IP_FILL_MOL_MAX]
    wc = wctr[0]
    nw = wctr[1]
    for e in range(nq):
        j = qlist[e]
        o = occ[j]
        # rates read: metal and fragments their neighbour counts (a site that lost its rates
        # was listed by its own change)
        if (o == METAL or role[o] == ROLE_FRAGMENT) and wstamp[j] != wc:
            wstamp[j] = wc
            wlist[_U(nw)] = j
            nw += 1
        # only metal carries a charge (ioniser count > 0, kept so at every site); a change
        # to or from metal set it already
        if o == METAL:
            newc = 1 if c2[j, C_ION] > 0 else 0
            if newc != chg[j]:
                tj = stype[j]
                oc = chg[j]
                chg[j] = newc
                misc[M_ION] += newc - oc  # number of ionised metal atoms
                c_old = selbits[METAL, oc, tj]
                c_new = selbits[METAL, newc, tj]
                if c_old != c_new:
                    for k in range(nn[j]):
                        n = nbr[j, k]
                        for s in range(nsel):
                            sel[n, s] += ((c_new >> s) & 1) - ((c_old >> s) & 1)
                        # molecule weights read selectors
                        if occ[n] == BACKGROUND and wstamp[n] != wc:
                            wstamp[n] = wc
                            wlist[_U(nw)] = n
                            nw += 1
        # only an empty or electrolyte site carries flags
        f = 0
        if o == EMPTY or o == BACKGROUND:
            tj = stype[j]
            f = _flags_of(
                o,
                tj,
                tclass[tj],
                cnt[j, METAL],
                cnt[j, BACKGROUND],
                c2[j, C_SEI_OC],
                c2[j, C_SEI_BA],
                pmin,
                pmax,
                pack,
                hbcb,
                hbco,
                dmin,
                fcap,
            )
        fo = flags[j] & ~F_ACTIVE
        if f != fo:
            flags[j] = f | (flags[j] & F_ACTIVE)
            diff = f ^ fo
            for s in range(3):  # sets S_PLATE, S_PACKOC, S_PACKBA have flag bits 1 << s
                bit = 1 << s
                if diff & bit:
                    if f & bit:
                        set_add(sarr, spos, sn, s, j)
                    else:
                        set_remove(sarr, spos, sn, s, j)
            if diff & F_FILLM:
                if f & F_FILLM:
                    set_add(sarr, spos, sn, S_FILLM, j)
                else:
                    set_remove(sarr, spos, sn, S_FILLM, j)
            if diff & (F_HD | F_DOC | F_DBA):
                dh = _flag_step(diff, f, F_HD)
                do = _flag_step(diff, f, F_DOC)
                db = _flag_step(diff, f, F_DBA)
                for k in range(nn[j]):
                    n = nbr[j, k]
                    c2[n, C_HD] += dh
                    c2[n, C_DOC] += do
                    c2[n, C_DBA] += db
                    on = occ[n]  # hop and diffusion rates read destination counts
                    if (on == METAL or role[on] == ROLE_FRAGMENT) and wstamp[n] != wc:
                        wstamp[n] = wc
                        wlist[_U(nw)] = n
                        nw += 1
    wctr[1] = nw
    qctr[1] = 0
    qctr[0] += 1
    if qctr[0] == STAMP_WRAP:  # int32 stamps: begin again while the queue is empty
        d.qstamp[:] = 0
        qctr[0] = 1


@_inner
def flush_rates(st):
    """Recompute the rates of every site touched since the last flush, once each.

    Rates (the two trees and the molecule weights) are read only when an event is drawn, so
    the changes of one event and of the framework rules after it share one refresh.
    """
    wlist, wctr = st.d.wlist, st.d.wctr
    refresh_rates(st, wlist, wctr[1])
    wctr[1] = 0
    wctr[0] += 1
    if wctr[0] == STAMP_WRAP:  # int32 stamps: begin again while the list is empty
        st.d.wstamp[:] = 0
        wctr[0] = 1


# ------------------------------------------------------------------ framework rules
@_inner
def _next_stamp(st):
    stampc = st.d.stampc
    stampc[0] += 1
    return stampc[0]


@_inner_inline
def _el_wants(j, occ, cnt, maxli):
    """The electrolyte rule changes site j (empty with <= maxli metal neighbours, or
    electrolyte with more): the one statement of its threshold, for its candidates and its
    decisions."""
    o = occ[j]
    if o == EMPTY:
        return cnt[j, METAL] <= maxli
    if o == BACKGROUND:
        return cnt[j, METAL] > maxli
    return False


@_inner
def _candidates(
    lo, hi, out, stage, mark, occ, cnt, maxli, stamp, log, nbr, nn, stype, tclass, role
):
    """The sites where a rule's decision may have changed since it last ran (deduplicated).

    A rule's decision at a site reads the site's occupant and some neighbour counts: wrap and
    removal read SEI (fragment) counts, back-fill SEI and electrolyte counts, the electrolyte
    rule metal counts.  So a changed site is a candidate, and its neighbours are when the
    change touched what the rule reads (in both cases only sites of a type the rule can act
    on); for wrap, also the BCB neighbours of OC-type fragments next to a BA site whose
    fragment changed (the free-BA count of the BCB rule).

    The electrolyte rule's decision is cheap to take here, so its candidates are only the
    sites where it changes something (an empty site with at most ``maxli`` metal neighbours,
    an electrolyte site with more): the sites left out would decide nothing, and the others
    keep their order, so the rule's changes are the same, in the same order.
    """
    if stage <= 1:
        expand_on = LOG_FRAGMENT
    elif stage == 2:
        expand_on = LOG_FRAGMENT | LOG_BACKGROUND
    else:
        expand_on = LOG_METAL
    # the site types where the rule can act at all (see _rule_changes): wrap on BA, TE and
    # BCB, removal on BA, TE and BCO, back-fill on BC sites, the electrolyte rule wherever the
    # type has a class; other sites are never candidates
    if stage == 0:
        tmask = (1 << T_BA) | (1 << T_TE) | (1 << T_BCB)
    elif stage == 1:
        tmask = (1 << T_BA) | (1 << T_TE) | (1 << T_BCO)
    elif stage == 2:
        tmask = (1 << T_BCB) | (1 << T_BCO)
    else:
        tmask = 0
        for t in range(tclass.size):
            if tclass[t] != CL_NONE:
                tmask |= 1 << t
    n = 0
    el = stage == 3
    for e in range(lo, hi):
        c = _I(log[_U(e)] >> 3)
        kind = log[_U(e)] & 7
        if (
            (tmask >> stype[c]) & 1
            and stamp[c] != mark
            and (not el or _el_wants(c, occ, cnt, maxli))
        ):
            stamp[c] = mark
            out[_U(n)] = c
            n += 1
        if not (kind & expand_on):
            continue
        if el:
            for k in range(nn[c]):
                j = nbr[c, k]
                if _el_wants(j, occ, cnt, maxli) and (tmask >> stype[j]) & 1 and stamp[j] != mark:
                    stamp[j] = mark
                    out[_U(n)] = j
                    n += 1
            continue
        bac = stage == 0 and stype[c] == T_BA
        for k in range(nn[c]):
            j = nbr[c, k]
            if (tmask >> stype[j]) & 1 and stamp[j] != mark:
                stamp[j] = mark
                out[_U(n)] = j
                n += 1
            if bac and role[occ[j]] == ROLE_FRAGMENT and tclass[stype[j]] == CL_OC:
                for k2 in range(nn[j]):
                    b = nbr[j, k2]
                    if stype[b] == T_BCB and stamp[b] != mark:
                        stamp[b] = mark
                        out[_U(n)] = b
                        n += 1
    return n


@_inner
def _rule_changes(
    stage, cand, nc, every, out_site, out_sp, occ, cnt, c2, nbr, nn, stype, tclass, role, ip
):
    """The changes one framework rule makes at the candidate sites.

    Within one rule, no change alters another candidate's decision (wrap and back-fill read
    SEI counts, not metal; removal reads metal and SEI at the site itself; the electrolyte
    rule reads metal counts), so the decisions are taken first and applied afterwards.
    """
    thr = ip[IP_WRAP_BCB_THR]
    maxli = ip[IP_EL_MAXLI]
    shortcut = ip[IP_WRAP_SHORTCUT] != 0 and ip[IP_LI_REMOVE] != 0
    m = 0
    for e in range(nc):
        j = _I(e) if every else cand[e]
        o = occ[j]
        t = stype[j]
        if stage == 0:
            if o == METAL or role[o] == ROLE_FRAGMENT:
                continue
            want = False
            if t == T_BA:
                want = c2[j, C_SEI_OC] > 0
            elif t == T_TE:
                want = c2[j, C_SEI_BA] > 0
            elif t == T_BCB and c2[j, C_SEI_OC] > 0:
                for k in range(nn[j]):
                    s = nbr[j, k]
                    if role[occ[s]] == ROLE_FRAGMENT and tclass[stype[s]] == CL_OC:
                        if c2[s, C_BA_TOTAL] - c2[s, C_SEI_BASITE] < thr:
                            want = True
                            break
            if want:
                out_site[_U(m)] = j
                out_sp[_U(m)] = METAL
                if (
                    shortcut
                    and (t == T_BA or t == T_TE)
                    and c2[j, C_SEI_OC] > 0
                    and c2[j, C_SEI_BA] > 0
                ):
                    out_sp[_U(m)] = WRAP_THEN_REMOVED
                m += 1
        elif stage == 1:
            if o != METAL:
                continue
            soc = c2[j, C_SEI_OC]
            sba = c2[j, C_SEI_BA]
            if ((t == T_BA or t == T_TE) and (soc + sba == 0 or (soc > 0 and sba > 0))) or (
                t == T_BCO and sba > 0
            ):
                out_site[_U(m)] = j
                out_sp[_U(m)] = EMPTY
                m += 1
        elif stage == 2:
            if (
                o == EMPTY
                and (t == T_BCB or t == T_BCO)
                and c2[j, C_SEI_OC] + c2[j, C_SEI_BA] == 0
                and cnt[j, BACKGROUND] == 0
            ):
                out_site[_U(m)] = j
                out_sp[_U(m)] = METAL
                m += 1
        else:
            if tclass[t] != CL_NONE and _el_wants(j, occ, cnt, maxli):
                out_site[_U(m)] = j
                out_sp[_U(m)] = BACKGROUND if o == EMPTY else EMPTY
                m += 1
    return m


@_kernel
def fresh_sample(st, nmol, skip):
    """Start a new, unrevealed electrolyte sample (nmol molecules of each type); return its stamp.

    ``skip`` is a site the back-fill through molecules leaves alone (-1: none).
    """
    misc, gcount, ip = st.d.misc, st.d.gcount, st.s.ip
    mark = _next_stamp(st)
    misc[M_MARK] = mark
    misc[M_POOL] = gcount[BACKGROUND]
    misc[M_SKIP] = skip
    for m in range(ip[IP_NMOL]):
        misc[M_LEFT + m] = nmol[m]
    return mark


@_inner
def _label(x, misc, nm, rev_stamp, rev_label):
    """Molecule type at electrolyte site x in the sample of the last event (-1: background).

    Unrevealed sites are revealed by sequential sampling without replacement from the
    molecules the sample has not placed yet (the law of a full re-sampling).
    """
    mark = misc[M_MARK]
    if rev_stamp[x] == mark:
        return rev_label[x]
    lab = -1
    pool = misc[M_POOL]
    if pool > 0:
        u = np.random.random() * pool
        acc = 0.0
        for m in range(nm):
            acc += misc[M_LEFT + m]
            if u < acc:
                lab = m
                break
        if lab >= 0:
            misc[M_LEFT + lab] -= 1
        misc[M_POOL] = pool - 1
    rev_stamp[x] = mark
    rev_label[x] = lab
    return lab


@_inner
def _molecule_fill(st, m, out_site, out_sp, rev_stamp, rev_label):
    """Back-fill decisions of the legacy order (molecules flushed before updateLiMetal).

    A BC site of the S_FILLM set (no SEI neighbour, empty or electrolyte) is buried once the
    molecules are removed when every electrolyte site among its neighbours (and itself) holds
    a molecule in the sample of the event just fired.  Labels are revealed lazily and kept,
    so sites sharing a neighbour see the same sample.
    """
    d, tt = st.d, st.s
    occ, sarr, sn, misc = d.occ, d.sarr, d.sn, d.misc
    nbr, nn, ip = tt.nbr, tt.nn, tt.ip
    nm = ip[IP_NMOL]
    if misc[M_MARK] == 0:  # no event yet: a fresh sample
        nmol = st.d.rmol  # scratch; the reaction draw that used it is over
        molecule_numbers(st, nmol)
        fresh_sample(st, nmol, -1)
    skip = misc[M_SKIP]
    for e in range(sn[S_FILLM]):
        j = sarr[S_FILLM, e]
        if j == skip:
            continue
        ok = True
        if occ[j] == BACKGROUND and _label(j, misc, nm, rev_stamp, rev_label) < 0:
            ok = False
        if ok:
            for k in range(nn[j]):
                x = nbr[j, k]
                if occ[x] == BACKGROUND and _label(x, misc, nm, rev_stamp, rev_label) < 0:
                    ok = False
                    break
        if ok:
            out_site[_U(m)] = j
            out_sp[_U(m)] = METAL
            m += 1
    return m


@_kernel_inline
def maintenance(st, hc, full, rev_stamp, rev_label):
    """Apply wrap, updateLiMetal and updateEther where their inputs changed (or everywhere).

    ``rev_stamp``/``rev_label`` hold the revealed molecule labels of the last event's
    electrolyte sample, read by the back-fill when molecules are flushed first.
    """
    d, tt = st.d, st.s
    occ, cnt, c2, sn = d.occ, d.cnt, d.c2, d.sn
    log, logn, cur, stamp, misc = d.log, d.logn, d.cur, d.stamp, d.misc
    # preallocated scratch (an allocation per stage and event cost about 5 % of a step):
    # candidates are deduplicated sites (<= N), decisions at most one per candidate plus the
    # back-fill's S_FILLM members (<= 2 N)
    cand, out_site, out_sp = d.rcand, d.rsite, d.rsp
    nbr, nn, stype, tclass, role, ip = tt.nbr, tt.nn, tt.stype, tt.tclass, tt.role, tt.ip
    N = occ.size
    every = full or misc[M_FULL] != 0
    if every:
        misc[M_FULL] = 0
    enabled = (ip[IP_WRAP] != 0, ip[IP_LI_REMOVE] != 0, ip[IP_LI_FILL] != 0, True)
    counter = (H_WRAP, H_REMOVED, H_FILLED, -1)
    for stage in range(4):
        # the back-fill through molecules depends on the sample, so it runs after every event;
        # it reads the S_FILLM set, which the changes so far must reach first
        extra = 0
        if stage == 2 and ip[IP_FILL_MOL_MAX] > 0:
            settle(st)
            extra = sn[S_FILLM]
        if every:
            nc = N
        else:
            lo = cur[stage]
            hi = logn[0]
            cur[stage] = hi
            if hi == lo:
                nc = 0
            else:
                nc = _candidates(
                    lo,
                    hi,
                    cand,
                    stage,
                    _next_stamp(st),
                    occ,
                    cnt,
                    ip[IP_EL_MAXLI],
                    stamp,
                    log,
                    nbr,
                    nn,
                    stype,
                    tclass,
                    role,
                )
        if not enabled[stage] or (nc == 0 and extra == 0):
            continue
        m = 0
        if nc > 0:
            m = _rule_changes(
                stage,
                cand,
                nc,
                every,
                out_site,
                out_sp,
                occ,
                cnt,
                c2,
                nbr,
                nn,
                stype,
                tclass,
                role,
                ip,
            )
        if extra > 0:
            m = _molecule_fill(st, m, out_site, out_sp, rev_stamp, rev_label)
        for e in range(m):
            j = _I(out_site[e])
            if out_sp[e] != WRAP_THEN_REMOVED:
                change_site(st, j, _I(out_sp[e]))
                continue
            # A BA/TE site next to both OC- and BA-type SEI: wrap puts metal on it and the
            # removal rule, which reads only the site itself and SEI counts, takes it off again
            # in this same pass; nothing in between reads it.  Go straight to the outcome (the
            # ledger still counts one wrap and one removal), and log the site so that wrap sees
            # it again after the next event, as the legacy pass does.
            hc[H_REMOVED] += 1
            if occ[j] != EMPTY:
                change_site(st, j, _I(EMPTY))
            elif logn[0] < log.size:
                log[_U(logn[0])] = j * 8
                logn[0] += 1
            else:
                misc[M_FULL] = 1
        if counter[stage] >= 0:
            hc[counter[stage]] += m
    settle(st)
    if full:
        for s in range(4):
            cur[s] = logn[0]
    # compact the log: entries before the first cursor are no longer needed
    lo = cur[0]
    for s in range(4):
        lo = min(lo, cur[s])
    if lo > 0:
        n = logn[0] - lo
        for e in range(n):
            log[e] = log[_U(lo + e)]
        logn[0] = n
        for s in range(4):
            cur[s] -= lo
    flush_rates(st)


# ---------------------------------------------------------------- electrolyte sampling
@_kernel_inline
def molecule_numbers(st, out):
    """Number of molecules of each type for the current number of electrolyte sites.

    N_m = round(c_m V N_A / 1e27) with V = (electrolyte sites not yet holding a molecule)
    x sphere volume / packing fraction, molecules placed in file order (section 2.6).
    """
    gcount = st.d.gcount
    ip, fp, mol_conc = st.s.ip, st.s.fp, st.s.mol_conc
    free = gcount[BACKGROUND]
    for m in range(ip[IP_NMOL]):
        v = np.round(mol_conc[m] * free * fp[FP_EL_MOLPERSITE])
        nm = int(v)
        if nm > free:
            nm = free
        out[m] = nm
        free -= nm


@_kernel_inline
def diffusion_step(st, nmol, rev_stamp, rev_label, hc):
    """One BKL diffusion move of a fragment; returns True if a fragment moved."""
    occ = st.d.occ
    flags = st.d.flags
    tdiff = st.d.tdiff
    tsize = st.d.tsize
    gcount = st.d.gcount
    misc = st.d.misc
    nbr = st.s.nbr
    nn = st.s.nn
    sclass = st.s.sclass
    INT = st.s.INT
    ip = st.s.ip
    fp = st.s.fp
    size = tsize[0]
    if tdiff[1] <= 0.0:
        return False
    nsplat = ip[IP_NSPLAT]
    nm = ip[IP_NMOL]
    kT = fp[FP_KT]
    chosen = -1
    mark = 0
    pool = gcount[BACKGROUND]
    left = st.d.dleft  # scratch: molecules of each type not yet revealed in this draw
    for m in range(nm):
        left[m] = nmol[m]
    if ip[IP_MOL_INT_ANY] == 0:
        chosen = tree_pick(tdiff, size)
    else:
        # Adaptive rejection on lazily revealed molecule labels: a proposed fragment's
        # electrolyte neighbours are revealed (sequential sampling without replacement, the
        # same law as a full re-sampling), it is accepted with exact/base weight, and a
        # rejected leaf is replaced by its exact weight.  Proposals always dominate the exact
        # weights, so the pick follows exact weights; the loop ends within n_fragments steps.
        mark = _next_stamp(st)
        nmod = 0
        modified = st.d.dmod  # scratch: a leaf is re-weighted at most once per draw
        basew = st.d.dbase
        while tdiff[1] > 0.0:
            i = tree_pick(tdiff, size)
            w_now = tdiff[size + i]
            if rev_stamp[i] == mark:  # leaf already holds its exact weight
                chosen = i
                break
            x = occ[i]
            extra = 0.0
            for k in range(nn[i]):
                j = nbr[i, k]
                if occ[j] != BACKGROUND:
                    continue
                if rev_stamp[j] != mark:
                    rev_stamp[j] = mark
                    u = np.random.random() * pool
                    lab = -1
                    acc = 0.0
                    for m in range(nm):
                        acc += left[m]
                        if u < acc:
                            lab = m
                            break
                    rev_label[j] = lab
                    if lab >= 0:
                        left[_U(lab)] -= 1
                    pool -= 1
                lab = rev_label[j]
                if lab >= 0:
                    extra += INT[x, _U(nsplat + lab)]
            if extra == 0.0:
                chosen = i
                break
            ratio = np.exp(-extra / kT)
            if np.random.random() < ratio:
                chosen = i
                break
            # reject: this leaf gets its exact weight for the rest of this draw
            modified[nmod] = i
            basew[nmod] = w_now
            nmod += 1
            rev_stamp[i] = (
                mark  # sites and fragments share the stamp: i is a fragment, never electrolyte
            )
            tree_set(tdiff, size, i, w_now * ratio)
        for q in range(nmod):
            tree_set(tdiff, size, modified[q], basew[q])
        if chosen < 0:
            return False
    i = chosen
    x = occ[i]
    want = F_DOC if sclass[x] == CL_OC else F_DBA
    nd = 0
    for k in range(nn[i]):
        if flags[nbr[i, k]] & want:
            nd += 1
    if nd == 0:
        return False
    pick = np.random.randint(0, nd)
    dest = -1
    for k in range(nn[i]):
        j = nbr[i, k]
        if flags[j] & want:
            if pick == 0:
                dest = j
                break
            pick -= 1
    if ip[IP_FILL_MOL_MAX] > 0:  # the back-fill reads this draw's sample
        if mark == 0:
            fresh_sample(st, nmol, -1)
        else:
            misc[M_MARK] = mark
            misc[M_POOL] = pool
            misc[M_SKIP] = -1
            for m in range(nm):
                misc[M_LEFT + m] = left[m]
    # arrive before leaving: the sites next to both ends keep their SEI and ioniser counts
    # above zero throughout, so their flags and charges do not flip twice (a third fewer
    # charge updates per hop); the state after the move is the same either way
    change_site(st, _I(dest), _I(x))
    change_site(st, _I(i), _I(EMPTY))
    hc[H_DIFF] += 1
    return True


@_inner
def _consume_one(st, sp):
    """Remove one uniformly chosen site holding species sp (a fragment reaction's parent)."""
    occ, gcount = st.d.occ, st.d.gcount
    n = gcount[sp]
    if n <= 0:
        return
    k = np.random.randint(0, n)
    for j in range(occ.size):
        if occ[j] == sp:
            if k == 0:
                set_site(st, _I(j), _I(EMPTY))
                return
            k -= 1


@_inner
def _place(st, sp, hc, nsplat, n_rx, n_ch):
    """Place one product: metal by the plating rule, a fragment on a free site of its class."""
    sarr, sn = st.d.sarr, st.d.sn
    role, sclass = st.s.role, st.s.sclass
    if role[sp] == ROLE_METAL:
        s = S_PLATE
    elif sclass[sp] == CL_OC:
        s = S_PACKOC
    else:
        s = S_PACKBA
    n = sn[s]
    if n == 0:
        if role[sp] == ROLE_METAL:
            hc[H_PLATE_DROPPED] += 1
        else:
            hc[H_PROD_DROPPED] += 1
        return
    j = sarr[s, np.random.randint(0, n)]
    set_site(st, _I(j), _I(sp))
    if role[sp] == ROLE_METAL:
        hc[H_PLATED] += 1
    else:
        hc[H_BASE + n_rx + n_ch + sp] += 1


@_inner
def _fire_channels(st, r, hc):
    ch_start, ch_n, ch_w, pr_start, pr_n, pr_sp, ip = (
        st.s.ch_start,
        st.s.ch_n,
        st.s.ch_w,
        st.s.pr_start,
        st.s.pr_n,
        st.s.pr_sp,
        st.s.ip,
    )
    n_rx = st.s.rx_kind.size
    n_ch = ch_w.size
    tot = 0.0
    for c in range(ch_start[r], ch_start[r] + ch_n[r]):
        tot += ch_w[c]
    u = np.random.random() * tot
    chosen = ch_start[r] + ch_n[r] - 1
    for c in range(ch_start[r], ch_start[r] + ch_n[r]):
        u -= ch_w[c]
        if u < 0.0:
            chosen = c
            break
    hc[H_BASE + n_rx + chosen] += 1
    for p in range(pr_start[chosen], pr_start[chosen] + pr_n[chosen]):
        _place(st, pr_sp[p], hc, ip[IP_NSPLAT], n_rx, n_ch)


@_kernel
def reaction_step(st, half, nmol, hc, dt_out, rev_stamp, rev_label):
    """One BKL reaction draw of the given half (0 charge, 1 discharge).

    When the back-fill follows the legacy order, a fired draw leaves its electrolyte sample
    (labels of the active sites, counts of the rest) for :func:`maintenance`.
    """
    c2 = st.d.c2
    sel = st.d.sel
    flags = st.d.flags
    sarr = st.d.sarr
    spos = st.d.spos
    sn = st.d.sn
    wmol = st.d.wmol
    tdis = st.d.tdis
    tsize = st.d.tsize
    gcount = st.d.gcount
    misc = st.d.misc
    nbr = st.s.nbr
    nn = st.s.nn
    rx_kind = st.s.rx_kind
    rx_reactant = st.s.rx_reactant
    rx_sel = st.s.rx_sel
    rx_rate = st.s.rx_rate
    ip = st.s.ip
    fp = st.s.fp
    size = tsize[0]
    n_rx = rx_kind.size
    limit = fp[FP_REJECT] * fp[FP_SCAN]
    if half == 1:
        W = tdis[1]
        if W <= 0.0:
            return R_NO_EVENTS
        dt = -np.log(1.0 - np.random.random()) / W
        if dt > limit:
            return R_REJECTED
        i = tree_pick(tdis, size)
        if ip[IP_FILL_MOL_MAX] > 0:
            # the legacy candidate needed a background neighbour in this sample, so the site
            # it leaves is never buried by the flush
            fresh_sample(st, nmol, i)
        rs = metal_rate(st, i, ip[IP_STRIP_RX]) if ip[IP_STRIP_RX] >= 0 else 0.0
        rh = 0.0
        if ip[IP_HOP_RX] >= 0:
            rh = metal_rate(st, i, ip[IP_HOP_RX]) * c2[i, C_HD]
        dt_out[0] = dt
        if np.random.random() * (rs + rh) < rs:
            set_site(st, _I(i), _I(EMPTY))
            hc[H_STRIPPED] += 1
            hc[H_BASE + ip[IP_STRIP_RX]] += 1
        else:
            nd = c2[i, C_HD]
            pick = np.random.randint(0, nd)
            dest = -1
            for k in range(nn[i]):
                j = nbr[i, k]
                if flags[j] & F_HD:
                    if pick == 0:
                        dest = j
                        break
                    pick -= 1
            set_site(st, _I(i), _I(EMPTY))
            set_site(st, _I(dest), _I(METAL))
            hc[H_BASE + ip[IP_HOP_RX]] += 1
        return R_FIRED
    # charge half: fragment reactions (site-independent) + molecule reactions
    wfrag = 0.0
    for r in range(n_rx):
        if rx_kind[r] == K_FRAGMENT:
            wfrag += rx_rate[r] * gcount[_U(rx_reactant[r])]
    na = sn[S_ACTIVE]
    if wfrag <= 0.0 and na == 0:
        return R_NO_EVENTS
    nm = ip[IP_NMOL]
    # multivariate hypergeometric counts of each molecule type on the active sites
    pool = gcount[BACKGROUND]
    need = na
    k_tot = 0
    kmol = st.d.rmol
    for m in range(nm):
        kmol[m] = 0
    for m in range(nm):
        if need <= 0:
            break
        good = nmol[m]
        bad = pool - good
        km = hypergeometric(good, bad, need)
        kmol[m] = km
        k_tot += km
        pool -= good
        need -= km
    # a uniform subset of the active sites (partial Fisher-Yates; set order does not matter)
    for e in range(k_tot):
        f = e + np.random.randint(0, na - e)
        if f != e:
            set_swap(sarr, spos, S_ACTIVE, e, f)
    W = wfrag
    e = 0
    for m in range(nm):
        for _q in range(kmol[m]):
            W += wmol[sarr[S_ACTIVE, _U(e)], m]
            e += 1
    if W <= 0.0:
        return R_NOT_FIRED
    dt = -np.log(1.0 - np.random.random()) / W
    if dt > limit:
        return R_REJECTED
    dt_out[0] = dt
    if ip[IP_FILL_MOL_MAX] > 0:  # keep this draw's sample for the back-fill
        mark = _next_stamp(st)
        e = 0
        for m in range(nm):
            for _q in range(kmol[m]):
                j = sarr[S_ACTIVE, _U(e)]
                rev_stamp[j] = mark
                rev_label[j] = m
                e += 1
        for e2 in range(k_tot, na):
            j = sarr[S_ACTIVE, _U(e2)]
            rev_stamp[j] = mark
            rev_label[j] = -1
        misc[M_MARK] = mark
        misc[M_POOL] = gcount[BACKGROUND] - na
        misc[M_SKIP] = -1
        for m in range(nm):
            misc[M_LEFT + m] = nmol[m] - kmol[m]
    u = np.random.random() * W
    # fragment reactions first
    for r in range(n_rx):
        if rx_kind[r] == K_FRAGMENT:
            v = rx_rate[r] * gcount[_U(rx_reactant[r])]
            if u < v:
                hc[H_BASE + r] += 1
                if (ip[IP_CONSUME_MASK] >> r) & 1:
                    _consume_one(st, rx_reactant[r])
                _fire_channels(st, r, hc)
                return R_FIRED
            u -= v
    e = 0
    site = -1
    mol = -1
    for m in range(nm):
        for _q in range(kmol[m]):
            j = sarr[S_ACTIVE, _U(e)]
            v = wmol[j, m]
            if u < v and v > 0.0:
                site = j
                mol = m
                break
            u -= v
            e += 1
        if site >= 0:
            break
    if site < 0:  # rounding at the very end of the list: take the last positive weight
        e = 0
        for m in range(nm):
            for _q in range(kmol[m]):
                j = sarr[S_ACTIVE, _U(e)]
                if wmol[j, m] > 0.0:
                    site = j
                    mol = m
                e += 1
    # which reaction of that molecule, proportional to rate x multiplicity
    tot = wmol[site, mol]
    u = np.random.random() * tot
    chosen = -1
    last = -1
    for r in range(n_rx):
        if rx_kind[r] == K_MOLECULE and rx_reactant[r] - ip[IP_NSPLAT] == mol:
            v = rx_rate[r] * sel[site, _U(rx_sel[r])]
            if v > 0.0:
                last = r
                if u < v:
                    chosen = r
                    break
                u -= v
    if chosen < 0:
        chosen = last
    hc[H_BASE + chosen] += 1
    _fire_channels(st, chosen, hc)
    return R_FIRED


@_kernel
def run_half(st, half, hc, tout, rng_state, rev_stamp, rev_label):
    """Run one half-cycle until the event budget, the time cap, or no possible event.

    ``rng_state`` holds (stop, max_to_stop), which carry over between half-cycles as in the
    legacy loop, and the run's step count so far (every diffusion attempt and reaction draw):
    past ``IP_MAX_STEPS`` (0: no limit) the half ends with ``END_STEP_LIMIT`` before its next
    step.  The count draws no random number, so a run is the same up to its limit.  ``hc``
    receives the half's counters, ``tout[0]`` its kMC duration.

    The kernels of one step (molecule numbers, diffusion draw, rule pass) are inlined here
    (``inline="always"``): as calls, each passed the state's arrays (60 then) as 437 machine
    arguments, and their code did not fit the instruction cache together (cachegrind, a slow
    set: 44 % fewer instruction-cache misses, 14 % fewer L1 data read misses).
    """
    ip, fp = st.s.ip, st.s.fp
    nmol = st.d.hmol
    dt = st.d.hdt
    t = 0.0
    nev = 0
    failed = 0
    rejected = 0
    end = END_BUDGET
    while True:
        if nev >= ip[IP_BUDGET]:
            end = END_BUDGET
            break
        if t >= fp[FP_SCAN]:
            end = END_TIME
            break
        # one step(): exactly one event (a diffusion hop or a reaction) fires
        fired = False
        stop_half = False
        while not fired:
            if ip[IP_MAX_STEPS] > 0 and rng_state[2] >= ip[IP_MAX_STEPS]:
                end = END_STEP_LIMIT
                stop_half = True
                break
            rng_state[2] += 1
            if rng_state[0] < rng_state[1]:
                rng_state[0] += 1
                molecule_numbers(st, nmol)
                if diffusion_step(st, nmol, rev_stamp, rev_label, hc):
                    fired = True
                    maintenance(st, hc, False, rev_stamp, rev_label)
                else:
                    failed += 1
                    hc[H_FAILED] += 1
            else:
                rng_state[0] = 0
                rng_state[1] = (
                    np.random.randint(1, ip[IP_MAX_TO_STOP] + 1) if ip[IP_MAX_TO_STOP] > 0 else 0
                )
                molecule_numbers(st, nmol)
                res = reaction_step(st, half, nmol, hc, dt, rev_stamp, rev_label)
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
    return end


@_kernel
def seed_rng(seed):
    np.random.seed(seed)


@_kernel_nrt
def init_state(st):
    """Counters, flags, sets and trees from scratch (also the reference for tests)."""
    occ = st.d.occ
    chg = st.d.chg
    cnt = st.d.cnt
    c2 = st.d.c2
    sel = st.d.sel
    flags = st.d.flags
    sarr = st.d.sarr
    spos = st.d.spos
    sn = st.d.sn
    wmol = st.d.wmol
    tdis = st.d.tdis
    tdiff = st.d.tdiff
    gcount = st.d.gcount
    misc = st.d.misc
    wctr = st.d.wctr
    nbr = st.s.nbr
    nn = st.s.nn
    stype = st.s.stype
    tclass = st.s.tclass
    near = st.s.near
    near_rev = st.s.near_rev
    role = st.s.role
    selbits = st.s.selbits
    ip = st.s.ip
    N = occ.size
    cnt[:, :] = 0
    c2[:, :] = 0
    sel[:, :] = 0
    flags[:] = 0
    sn[:] = 0
    spos[:, :] = -1
    wmol[:, :] = 0.0
    tdis[:] = 0.0
    tdiff[:] = 0.0
    gcount[:] = 0
    misc[M_ION] = 0
    for i in range(N):
        gcount[occ[i]] += 1
    # ionisers first (charges depend on them)
    for i in range(N):
        o = occ[i]
        t = stype[i]
        for k in range(nn[i]):
            j = nbr[i, k]
            if stype[j] == T_BA:
                c2[i, C_BA_TOTAL] += 1
            if role[o] == ROLE_FRAGMENT and near[i, k]:
                c2[j, C_ION] += 1
    for i in range(N):
        chg[i] = 1 if (occ[i] == METAL and c2[i, C_ION] > 0) else 0
        misc[M_ION] += chg[i]
    for i in range(N):
        o = occ[i]
        t = stype[i]
        cl = tclass[t]
        isf = role[o] == ROLE_FRAGMENT
        for k in range(nn[i]):
            j = nbr[i, k]
            cnt[j, o] += 1
            if o == METAL and near_rev[i, k]:
                c2[j, C_LI_NEAR] += 1
            if isf:
                if cl == CL_OC:
                    c2[j, C_SEI_OC] += 1
                else:
                    c2[j, C_SEI_BA] += 1
                if t == T_BA:
                    c2[j, C_SEI_BASITE] += 1
            sb = selbits[o, chg[i], t]
            for s in range(sel.shape[1]):
                if (sb >> s) & 1:
                    sel[j, s] += 1
    # flags without neighbour propagation, then destination counts, then weights
    for j in range(N):
        f = _site_flags(j, occ[j], stype[j], cnt, c2, tclass, ip)
        flags[j] = f
        if f & F_PLATE:
            set_add(sarr, spos, sn, S_PLATE, j)
        if f & F_PACKOC:
            set_add(sarr, spos, sn, S_PACKOC, j)
        if f & F_PACKBA:
            set_add(sarr, spos, sn, S_PACKBA, j)
        if f & F_FILLM:
            set_add(sarr, spos, sn, S_FILLM, j)
    for j in range(N):
        f = flags[j]
        if f & (F_HD | F_DOC | F_DBA):
            for k in range(nn[j]):
                n = nbr[j, k]
                if f & F_HD:
                    c2[n, C_HD] += 1
                if f & F_DOC:
                    c2[n, C_DOC] += 1
                if f & F_DBA:
                    c2[n, C_DBA] += 1
    wctr[1] = 0
    allsites = np.arange(N).astype(np.int32)
    refresh_rates(st, allsites, N)


@_kernel
def draw_int(lo, hi):
    """Uniform integer in [lo, hi] from the engine's generator."""
    return np.random.randint(lo, hi + 1)


@_kernel_nrt
def half_stats(st, nz, layer, nmol, out_layers, out_scalar):
    """End-of-half observables: per-layer counts and surface counts.

    out_layers[s, z]: count of lattice species s in layer z (rows 0..nsp-1, row METAL holds
    only charge-0 metal, row nsp holds charge-1 metal); molecule rows get one fresh sample of
    the electrolyte assignment.  out_scalar: [Li0, Li+, Li0 at surface, Li+ at surface,
    layers with a fragment, layers with Li0 on a BC site].
    """
    occ, chg, cnt = st.d.occ, st.d.chg, st.d.cnt
    stype, role, ip = st.s.stype, st.s.role, st.s.ip
    N = occ.size
    out_layers[:, :] = 0
    out_scalar[:] = 0
    nsplat = ip[IP_NSPLAT]
    nsp = ip[IP_NSP]
    el = np.empty(N, dtype=np.int64)
    ne = 0
    frag_layer = np.zeros(nz, dtype=np.int64)
    metal_layer = np.zeros(nz, dtype=np.int64)
    for i in range(N):
        o = occ[i]
        z = layer[i]
        if o == METAL:
            if chg[i] == 0:
                out_layers[METAL, z] += 1
                out_scalar[0] += 1
                if cnt[i, BACKGROUND] > 0:
                    out_scalar[2] += 1
                if stype[i] == T_BCB or stype[i] == T_BCO:
                    metal_layer[z] = 1
            else:
                out_layers[nsp, z] += 1
                out_scalar[1] += 1
                if cnt[i, BACKGROUND] > 0:
                    out_scalar[3] += 1
        else:
            out_layers[o, z] += 1
            if role[o] == ROLE_FRAGMENT:
                frag_layer[z] = 1
            if o == BACKGROUND:
                el[ne] = i
                ne += 1
    out_scalar[4] = frag_layer.sum()
    out_scalar[5] = metal_layer.sum()
    e = 0
    for m in range(ip[IP_NMOL]):
        for _q in range(nmol[m]):
            f = e + np.random.randint(0, ne - e)
            tmp = el[e]
            el[e] = el[f]
            el[f] = tmp
            out_layers[nsplat + m, layer[el[e]]] += 1
            e += 1


@_kernel
def sample_tree(tree, size, n, out_idx, out_dt):
    """Draw n (site, waiting time) pairs from a frozen rate tree (for statistical tests)."""
    for r in range(n):
        out_idx[r] = tree_pick(tree, size)
        out_dt[r] = -np.log(1.0 - np.random.random()) / tree[1]

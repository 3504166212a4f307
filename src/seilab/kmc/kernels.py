"""Numba kernels of the kMC engine.

The engine knows roles, not chemistry: species are integer codes with a role (empty, metal,
background electrolyte, fragment, molecule) and reactions are rows of tables compiled from the
model file (:mod:`seilab.kmc.compile`).

Design (see docs/engine.md):

* Per-site neighbour counters (species counts, SEI counts, "ionisers", selector counts) are
  updated incrementally by :func:`set_site`, which touches only the changed site and its
  neighbours; derived flags, eligible-site sets and rates are refreshed for those sites only.
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
  event only at sites whose inputs changed since each rule last ran (a change log with one
  cursor per rule), which equals applying them to the whole lattice.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ----------------------------------------------------------------- codes shared with Python
EMPTY = 0
METAL = 1
BACKGROUND = 2
ROLE_EMPTY, ROLE_METAL, ROLE_BACKGROUND, ROLE_FRAGMENT, ROLE_MOLECULE = 0, 1, 2, 3, 4
T_BCB, T_BCO, T_BA, T_OC, T_TE = 0, 1, 2, 3, 4
CL_OC, CL_BA, CL_NONE = 0, 1, 2

# columns of the int16 counter block c2
C_LI_NEAR, C_SEI_OC, C_SEI_BA, C_SEI_BASITE, C_ION, C_HD, C_DOC, C_DBA, C_BA_TOTAL = range(9)
N_C2 = 9

# flag bits
F_PLATE, F_PACKOC, F_PACKBA, F_HD, F_DOC, F_DBA, F_ACTIVE = 1, 2, 4, 8, 16, 32, 64
# indexable sets
S_PLATE, S_PACKOC, S_PACKBA, S_ACTIVE = 0, 1, 2, 3
N_SETS = 4

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
) = range(22)
N_IP = 22
# float parameters (fp)
FP_KT, FP_DIFF_PREF, FP_SCAN, FP_REJECT, FP_EL_MOLPERSITE = range(5)
N_FP = 5

# reaction kinds
K_MOLECULE, K_FRAGMENT, K_STRIP, K_HOP = 0, 1, 2, 3

# end reasons of a half-cycle
END_BUDGET, END_TIME, END_NO_EVENTS, END_STALLED = 0, 1, 2, 3

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

# reaction-step results
R_FIRED, R_NOT_FIRED, R_REJECTED, R_NO_EVENTS = 0, 1, 2, 3


# ----------------------------------------------------------------------------- sum tree
@njit(cache=True)
def tree_set(tree, size, i, w):
    node = size + i
    if tree[node] == w:
        return
    tree[node] = w
    node >>= 1
    while node >= 1:
        tree[node] = tree[2 * node] + tree[2 * node + 1]
        node >>= 1


@njit(cache=True)
def tree_pick(tree, size):
    """Leaf index drawn with probability weight / total (retries a zero leaf from rounding)."""
    while True:
        u = np.random.random() * tree[1]
        node = 1
        while node < size:
            left = tree[2 * node]
            if u < left:
                node = 2 * node
            else:
                u -= left
                node = 2 * node + 1
        if tree[node] > 0.0:
            return node - size


@njit(cache=True)
def tree_build(tree, size):
    for node in range(size - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]


# ----------------------------------------------------------------------- indexable sets
@njit(cache=True)
def set_add(sarr, spos, sn, s, i):
    if spos[s, i] >= 0:
        return
    k = sn[s]
    sarr[s, k] = i
    spos[s, i] = k
    sn[s] = k + 1


@njit(cache=True)
def set_remove(sarr, spos, sn, s, i):
    k = spos[s, i]
    if k < 0:
        return
    last = sn[s] - 1
    j = sarr[s, last]
    sarr[s, k] = j
    spos[s, j] = k
    spos[s, i] = -1
    sn[s] = last


@njit(cache=True)
def set_swap(sarr, spos, s, a, b):
    i = sarr[s, a]
    j = sarr[s, b]
    sarr[s, a] = j
    sarr[s, b] = i
    spos[s, j] = a
    spos[s, i] = b


# ------------------------------------------------------------------------- the state
# The state is a tuple of arrays (Numba cannot cache jitclasses); see kmc/state.py for names.


@njit(cache=True, inline="always")
def _sel_match(sel_sp, sel_chg, sel_mask, s, sp, chg, stype):
    if sel_sp[s] != sp:
        return False
    if sel_chg[s] >= 0 and sel_chg[s] != chg:
        return False
    return (sel_mask[s] >> stype) & 1 == 1


# Hot helpers take explicit arrays and are inlined into set_site: passing the state tuple to
# a non-inlined call costs one reference-count update per array, which dominated run time.


@njit(cache=True, inline="always")
def _metal_rate(j, r, cnt, INT, rx_rate, ip, fp):
    ea = 0.0
    for s in range(ip[IP_NSPLAT]):
        ea += INT[METAL, s] * cnt[j, s]
    return rx_rate[r] * np.exp(-ea / fp[FP_KT])


@njit(cache=True)
def metal_rate(st, i, kind_rx):
    """Strip or hop rate of the metal atom at i (bond-counting barrier)."""
    return _metal_rate(i, kind_rx, st[0][2], st[1][8], st[1][15], st[1][24], st[1][25])


@njit(cache=True, inline="always")
def _frag_base_rate(i, occ, cnt, c2, INT, ip, fp):
    x = occ[i]
    ea = INT[x, METAL] * c2[i, C_LI_NEAR]
    for s in range(ip[IP_NSPLAT]):
        if s != METAL:
            ea += INT[x, s] * cnt[i, s]
    return fp[FP_DIFF_PREF] * np.exp(-ea / fp[FP_KT])


@njit(cache=True)
def _refresh_weights(j, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc):
    o = occ[j]
    # an empty site carries no rate: nothing to do unless it still holds an old one
    if o == EMPTY and tdis[size + j] == 0.0 and tdiff[size + j] == 0.0 and not (flags[j] & F_ACTIVE):
        return
    # discharge: strip + hop of a free metal atom at the surface
    w = 0.0
    if o == METAL and chg[j] == 0 and cnt[j, BACKGROUND] >= 1 and cnt[j, METAL] <= ip[IP_MAX_STRIP_LI]:
        if ip[IP_STRIP_RX] >= 0:
            w += _metal_rate(j, ip[IP_STRIP_RX], cnt, INT, rx_rate, ip, fp)
        if ip[IP_HOP_RX] >= 0 and c2[j, C_HD] > 0:
            w += _metal_rate(j, ip[IP_HOP_RX], cnt, INT, rx_rate, ip, fp) * c2[j, C_HD]
    tree_set(tdis, size, j, w)
    # diffusion of a fragment
    w = 0.0
    if role[o] == ROLE_FRAGMENT:
        nd = c2[j, C_DOC] if sclass[o] == CL_OC else c2[j, C_DBA]
        if nd > 0:
            w = _frag_base_rate(j, occ, cnt, c2, INT, ip, fp) * nd
    tree_set(tdiff, size, j, w)
    # molecule reactions at an electrolyte site
    if o == BACKGROUND:
        act = False
        for m in range(ip[IP_NMOL]):
            wmol[j, m] = 0.0
        for r in range(rx_kind.size):
            if rx_kind[r] == K_MOLECULE:
                m = rx_reactant[r] - ip[IP_NSPLAT]
                v = rx_rate[r] * sel[j, rx_sel[r]]
                wmol[j, m] += v
                if v > 0.0:
                    act = True
        if act:
            set_add(sarr, spos, sn, S_ACTIVE, j)
            flags[j] |= F_ACTIVE
        else:
            set_remove(sarr, spos, sn, S_ACTIVE, j)
            flags[j] &= ~F_ACTIVE
    elif flags[j] & F_ACTIVE:  # no longer electrolyte: drop its molecule weights
        set_remove(sarr, spos, sn, S_ACTIVE, j)
        flags[j] &= ~F_ACTIVE
        for m in range(ip[IP_NMOL]):
            wmol[j, m] = 0.0


@njit(cache=True)
def refresh_weights(st, j):
    """Recompute the rates of site j (strip/hop, diffusion, molecule weights)."""
    d, t = st[0], st[1]
    _refresh_weights(j, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12][0],
                     t[0], t[1], t[2], t[3], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14],
                     t[15], t[24], t[25], d[19])


@njit(cache=True)
def _flag_nb(j, col, delta, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc):
    for k in range(nn[j]):
        n = nbr[j, k]
        c2[n, col] += delta
        _refresh_weights(n, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc)


@njit(cache=True, inline="always")
def _site_flags(j, o, t, cnt, c2, tclass, ip):
    """Eligibility flags of site j (plating site, product sites, hop and diffusion destinations)."""
    f = 0
    if o != EMPTY:
        return f
    nli = cnt[j, METAL]
    nel = cnt[j, BACKGROUND]
    cl = tclass[t]
    if (t == T_BCB or t == T_BCO) and nel >= 1 and ip[IP_PLATE_MIN] <= nli <= ip[IP_PLATE_MAX]:
        f |= F_PLATE
    if cl == CL_OC and nel >= 1 and c2[j, C_SEI_BA] == 0 and nli >= ip[IP_PACK_MIN]:
        f |= F_PACKOC
    if cl == CL_BA and nel >= 1 and c2[j, C_SEI_OC] == 0 and nli >= ip[IP_PACK_MIN]:
        f |= F_PACKBA
    if nel >= 1 and ((t == T_BCB and nli <= ip[IP_HOP_BCB_MAX]) or (t == T_BCO and nli >= ip[IP_HOP_BCO_MIN])):
        f |= F_HD
    if (t == T_BCO or t == T_OC) and c2[j, C_SEI_BA] == 0 and nli >= ip[IP_DEST_MIN]:
        f |= F_DOC
    if (t == T_BCB or t == T_BA) and c2[j, C_SEI_OC] == 0 and nli >= ip[IP_DEST_MIN]:
        f |= F_DBA
    return f


@njit(cache=True)
def _refresh(j, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc):
    o = occ[j]
    t = stype[j]
    # charge ("ionised" metal bound to SEI), derived from the ioniser count
    newc = 1 if (o == METAL and c2[j, C_ION] > 0) else 0
    if newc != chg[j]:
        oldc = chg[j]
        chg[j] = newc
        misc[0] += newc - oldc  # number of ionised metal atoms
        for k in range(nn[j]):
            n = nbr[j, k]
            for s in range(sel_sp.size):
                if _sel_match(sel_sp, sel_chg, sel_mask, s, METAL, oldc, t):
                    sel[n, s] -= 1
                if _sel_match(sel_sp, sel_chg, sel_mask, s, METAL, newc, t):
                    sel[n, s] += 1
            _refresh_weights(n, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc)
    f = _site_flags(j, o, t, cnt, c2, tclass, ip)
    old = flags[j] & ~F_ACTIVE
    if f != old:
        flags[j] = f | (flags[j] & F_ACTIVE)
        diff = f ^ old
        if diff & F_PLATE:
            if f & F_PLATE:
                set_add(sarr, spos, sn, S_PLATE, j)
            else:
                set_remove(sarr, spos, sn, S_PLATE, j)
        if diff & F_PACKOC:
            if f & F_PACKOC:
                set_add(sarr, spos, sn, S_PACKOC, j)
            else:
                set_remove(sarr, spos, sn, S_PACKOC, j)
        if diff & F_PACKBA:
            if f & F_PACKBA:
                set_add(sarr, spos, sn, S_PACKBA, j)
            else:
                set_remove(sarr, spos, sn, S_PACKBA, j)
        if diff & (F_HD | F_DOC | F_DBA):
            dh = 0 if not (diff & F_HD) else (1 if f & F_HD else -1)
            do = 0 if not (diff & F_DOC) else (1 if f & F_DOC else -1)
            db = 0 if not (diff & F_DBA) else (1 if f & F_DBA else -1)
            for k in range(nn[j]):
                n = nbr[j, k]
                c2[n, C_HD] += dh
                c2[n, C_DOC] += do
                c2[n, C_DBA] += db
                _refresh_weights(n, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc)
    _refresh_weights(j, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc)


@njit(cache=True)
def refresh(st, j):
    """Recompute charge, flags, set memberships and rates of site j from its counters."""
    d, t = st[0], st[1]
    _refresh(j, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12][0],
             t[0], t[1], t[2], t[3], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14],
             t[15], t[24], t[25], d[19])


@njit(cache=True)
def set_site(st, i, new):
    """Change the species at site i and update everything that depends on it, locally."""
    d, tt = st[0], st[1]
    occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11]
    size = d[12][0]
    gcount, log, logn, misc = d[13], d[14], d[15], d[19]
    nbr, nn, stype, tclass, near, near_rev, role, sclass, INT = tt[0], tt[1], tt[2], tt[3], tt[4], tt[5], tt[6], tt[7], tt[8]
    sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate = tt[9], tt[10], tt[11], tt[12], tt[13], tt[14], tt[15]
    ip, fp = tt[24], tt[25]
    old = occ[i]
    if old == new:
        return
    oldc = chg[i]
    occ[i] = new
    gcount[old] -= 1
    gcount[new] += 1
    if oldc:
        misc[0] -= 1
        chg[i] = 0
    if logn[0] < log.size:
        log[logn[0]] = i
        logn[0] += 1
    else:
        misc[1] = 1  # overflow: the next maintenance pass runs over the whole lattice
    t = stype[i]
    cl = tclass[t]
    of = role[old] == ROLE_FRAGMENT
    nf = role[new] == ROLE_FRAGMENT
    for k in range(nn[i]):
        j = nbr[i, k]
        cnt[j, old] -= 1
        cnt[j, new] += 1
        if near_rev[i, k]:
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
        for s in range(sel_sp.size):
            if _sel_match(sel_sp, sel_chg, sel_mask, s, old, oldc, t):
                sel[j, s] -= 1
            if _sel_match(sel_sp, sel_chg, sel_mask, s, new, 0, t):
                sel[j, s] += 1
    # the new occupant starts with charge 0; refreshing i ionises it if bound
    _refresh(i, occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc)
    for k in range(nn[i]):
        _refresh(nbr[i, k], occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, size, nbr, nn, stype, tclass, role, sclass, INT, sel_sp, sel_chg, sel_mask, rx_kind, rx_reactant, rx_sel, rx_rate, ip, fp, misc)


# ------------------------------------------------------------------ framework rules
@njit(cache=True)
def _wrap_wants_metal(st, j):
    occ, c2 = st[0][0], st[0][3]
    nbr, nn, stype, tclass, role, ip = st[1][0], st[1][1], st[1][2], st[1][3], st[1][6], st[1][24]
    o = occ[j]
    if role[o] == ROLE_FRAGMENT:
        return False
    t = stype[j]
    if t == T_BA and c2[j, C_SEI_OC] > 0:
        return True
    if t == T_TE and c2[j, C_SEI_BA] > 0:
        return True
    if t == T_BCB and c2[j, C_SEI_OC] > 0:
        thr = ip[IP_WRAP_BCB_THR]
        for k in range(nn[j]):
            s = nbr[j, k]
            if role[occ[s]] == ROLE_FRAGMENT and tclass[stype[s]] == CL_OC:
                if c2[s, C_BA_TOTAL] - c2[s, C_SEI_BASITE] < thr:
                    return True
    return False


@njit(cache=True)
def _remove_wants_empty(st, j):
    occ, c2 = st[0][0], st[0][3]
    stype = st[1][2]
    if occ[j] != METAL:
        return False
    t = stype[j]
    nsei = c2[j, C_SEI_OC] + c2[j, C_SEI_BA]
    if t == T_BA or t == T_TE:
        return nsei == 0 or (c2[j, C_SEI_OC] > 0 and c2[j, C_SEI_BA] > 0)
    if t == T_BCO:
        return c2[j, C_SEI_BA] > 0
    return False


@njit(cache=True)
def _next_stamp(st):
    stampc = st[0][18]
    stampc[0] += 1
    return stampc[0]


@njit(cache=True)
def _candidates(st, lo, hi, out, with_bcb):
    """Sites within one link of the log entries lo..hi (deduplicated); optionally the BCB
    neighbours of OC-type fragments next to a changed BA site (input of the wrap BCB rule)."""
    occ, stamp, log = st[0][0], st[0][17], st[0][14]
    nbr, nn, stype, tclass, role = st[1][0], st[1][1], st[1][2], st[1][3], st[1][6]
    mark = _next_stamp(st)
    n = 0
    for e in range(lo, hi):
        c = log[e]
        if stamp[c] != mark:
            stamp[c] = mark
            out[n] = c
            n += 1
        for k in range(nn[c]):
            j = nbr[c, k]
            if stamp[j] != mark:
                stamp[j] = mark
                out[n] = j
                n += 1
            if with_bcb and stype[c] == T_BA and role[occ[j]] == ROLE_FRAGMENT and tclass[stype[j]] == CL_OC:
                for k2 in range(nn[j]):
                    b = nbr[j, k2]
                    if stype[b] == T_BCB and stamp[b] != mark:
                        stamp[b] = mark
                        out[n] = b
                        n += 1
    return n


@njit(cache=True)
def maintenance(st, hc, full):
    """Apply wrap, updateLiMetal and updateEther where their inputs changed (or everywhere)."""
    occ, cnt, c2, log, logn, cur, misc = st[0][0], st[0][2], st[0][3], st[0][14], st[0][15], st[0][16], st[0][19]
    stype, tclass, ip = st[1][2], st[1][3], st[1][24]
    N = occ.size
    buf = np.empty(0, dtype=np.int32)
    if full or misc[1]:
        misc[1] = 0
        buf = np.arange(N).astype(np.int32)
    for stage in range(4):
        if full or buf.size == N:
            cand = buf
            nc = N
        else:
            lo = cur[stage]
            hi = logn[0]
            cap = (hi - lo) * 64 + 64
            cand = np.empty(cap, dtype=np.int32)
            nc = _candidates(st, lo, hi, cand, stage == 0)
            cur[stage] = hi
        if stage == 0 and ip[IP_WRAP]:
            for e in range(nc):
                j = cand[e]
                if occ[j] != METAL and _wrap_wants_metal(st, j):
                    set_site(st, j, METAL)
                    hc[H_WRAP] += 1
        elif stage == 1 and ip[IP_LI_REMOVE]:
            for e in range(nc):
                j = cand[e]
                if _remove_wants_empty(st, j):
                    set_site(st, j, EMPTY)
                    hc[H_REMOVED] += 1
        elif stage == 2 and ip[IP_LI_FILL]:
            for e in range(nc):
                j = cand[e]
                t = stype[j]
                if occ[j] == EMPTY and (t == T_BCB or t == T_BCO) and c2[j, C_SEI_OC] + c2[j, C_SEI_BA] == 0 and cnt[j, BACKGROUND] == 0:
                    set_site(st, j, METAL)
                    hc[H_FILLED] += 1
        elif stage == 3:
            for e in range(nc):
                j = cand[e]
                if tclass[stype[j]] == CL_NONE:
                    continue
                if occ[j] == EMPTY and cnt[j, METAL] <= ip[IP_EL_MAXLI]:
                    set_site(st, j, BACKGROUND)
                elif occ[j] == BACKGROUND and cnt[j, METAL] > ip[IP_EL_MAXLI]:
                    set_site(st, j, EMPTY)
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
            log[e] = log[lo + e]
        logn[0] = n
        for s in range(4):
            cur[s] -= lo


# ---------------------------------------------------------------- electrolyte sampling
@njit(cache=True)
def molecule_numbers(st, out):
    """Number of molecules of each type for the current number of electrolyte sites.

    N_m = round(c_m V N_A / 1e27) with V = (electrolyte sites not yet holding a molecule)
    x sphere volume / packing fraction, molecules placed in file order (section 2.6).
    """
    gcount = st[0][13]
    ip, fp, mol_conc = st[1][24], st[1][25], st[1][26]
    free = gcount[BACKGROUND]
    for m in range(ip[IP_NMOL]):
        v = np.round(mol_conc[m] * free * fp[FP_EL_MOLPERSITE])
        nm = int(v)
        if nm > free:
            nm = free
        out[m] = nm
        free -= nm


@njit(cache=True)
def diffusion_step(st, nmol, rev_stamp, rev_label, hc):
    """One BKL diffusion move of a fragment; returns True if a fragment moved."""
    (occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, tsize, gcount, log,
     logn, cur, stamp, stampc, misc) = st[0]
    (nbr, nn, stype, tclass, near, near_rev, role, sclass, INT, sel_sp, sel_chg, sel_mask,
     rx_kind, rx_reactant, rx_sel, rx_rate, rx_half, rx_el, ch_start, ch_n, ch_w, pr_start,
     pr_n, pr_sp, ip, fp, mol_conc) = st[1]
    size = tsize[0]
    if tdiff[1] <= 0.0:
        return False
    nsplat = ip[IP_NSPLAT]
    nm = ip[IP_NMOL]
    kT = fp[FP_KT]
    chosen = -1
    if ip[IP_MOL_INT_ANY] == 0:
        chosen = tree_pick(tdiff, size)
    else:
        # Adaptive rejection on lazily revealed molecule labels: a proposed fragment's
        # electrolyte neighbours are revealed (sequential sampling without replacement, the
        # same law as a full re-sampling), it is accepted with exact/base weight, and a
        # rejected leaf is replaced by its exact weight.  Proposals always dominate the exact
        # weights, so the pick follows exact weights; the loop ends within n_fragments steps.
        mark = _next_stamp(st)
        pool = gcount[BACKGROUND]
        left = np.empty(nm, dtype=np.int64)
        for m in range(nm):
            left[m] = nmol[m]
        nmod = 0
        modified = np.empty(64, dtype=np.int64)
        basew = np.empty(64)
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
                        left[lab] -= 1
                    pool -= 1
                lab = rev_label[j]
                if lab >= 0:
                    extra += INT[x, nsplat + lab]
            if extra == 0.0:
                chosen = i
                break
            ratio = np.exp(-extra / kT)
            if np.random.random() < ratio:
                chosen = i
                break
            # reject: this leaf gets its exact weight for the rest of this draw
            if nmod == modified.size:
                m2 = np.empty(2 * nmod, dtype=np.int64)
                b2 = np.empty(2 * nmod)
                m2[:nmod] = modified
                b2[:nmod] = basew
                modified = m2
                basew = b2
            modified[nmod] = i
            basew[nmod] = w_now
            nmod += 1
            rev_stamp[i] = mark  # sites and fragments share the stamp: i is a fragment, never electrolyte
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
    set_site(st, i, EMPTY)
    set_site(st, dest, x)
    hc[H_DIFF] += 1
    return True


@njit(cache=True)
def _place(st, sp, hc, nsplat, n_rx, n_ch):
    """Place one product: metal by the plating rule, a fragment on a free site of its class."""
    sarr, sn = st[0][6], st[0][8]
    role, sclass = st[1][6], st[1][7]
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
    set_site(st, j, sp)
    if role[sp] == ROLE_METAL:
        hc[H_PLATED] += 1
    else:
        hc[H_BASE + n_rx + n_ch + sp] += 1


@njit(cache=True)
def _fire_channels(st, r, hc):
    ch_start, ch_n, ch_w, pr_start, pr_n, pr_sp, ip = (
        st[1][18], st[1][19], st[1][20], st[1][21], st[1][22], st[1][23], st[1][24])
    n_rx = st[1][12].size
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


@njit(cache=True)
def reaction_step(st, half, nmol, hc, dt_out):
    """One BKL reaction draw of the given half (0 charge, 1 discharge)."""
    (occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, tsize, gcount, log,
     logn, cur, stamp, stampc, misc) = st[0]
    (nbr, nn, stype, tclass, near, near_rev, role, sclass, INT, sel_sp, sel_chg, sel_mask,
     rx_kind, rx_reactant, rx_sel, rx_rate, rx_half, rx_el, ch_start, ch_n, ch_w, pr_start,
     pr_n, pr_sp, ip, fp, mol_conc) = st[1]
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
        rs = metal_rate(st, i, ip[IP_STRIP_RX]) if ip[IP_STRIP_RX] >= 0 else 0.0
        rh = 0.0
        if ip[IP_HOP_RX] >= 0:
            rh = metal_rate(st, i, ip[IP_HOP_RX]) * c2[i, C_HD]
        dt_out[0] = dt
        if np.random.random() * (rs + rh) < rs:
            set_site(st, i, EMPTY)
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
            set_site(st, i, EMPTY)
            set_site(st, dest, METAL)
            hc[H_BASE + ip[IP_HOP_RX]] += 1
        return R_FIRED
    # charge half: fragment reactions (site-independent) + molecule reactions
    wfrag = 0.0
    for r in range(n_rx):
        if rx_kind[r] == K_FRAGMENT:
            wfrag += rx_rate[r] * gcount[rx_reactant[r]]
    na = sn[S_ACTIVE]
    if wfrag <= 0.0 and na == 0:
        return R_NO_EVENTS
    nm = ip[IP_NMOL]
    # multivariate hypergeometric counts of each molecule type on the active sites
    pool = gcount[BACKGROUND]
    need = na
    k_tot = 0
    kmol = np.zeros(nm, dtype=np.int64)
    for m in range(nm):
        if need <= 0:
            break
        good = nmol[m]
        bad = pool - good
        km = np.random.hypergeometric(good, bad, need) if good > 0 else 0
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
            W += wmol[sarr[S_ACTIVE, e], m]
            e += 1
    if W <= 0.0:
        return R_NOT_FIRED
    dt = -np.log(1.0 - np.random.random()) / W
    if dt > limit:
        return R_REJECTED
    dt_out[0] = dt
    u = np.random.random() * W
    # fragment reactions first
    for r in range(n_rx):
        if rx_kind[r] == K_FRAGMENT:
            v = rx_rate[r] * gcount[rx_reactant[r]]
            if u < v:
                hc[H_BASE + r] += 1
                _fire_channels(st, r, hc)
                return R_FIRED
            u -= v
    e = 0
    site = -1
    mol = -1
    for m in range(nm):
        for _q in range(kmol[m]):
            j = sarr[S_ACTIVE, e]
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
                j = sarr[S_ACTIVE, e]
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
            v = rx_rate[r] * sel[site, rx_sel[r]]
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


@njit(cache=True)
def run_half(st, half, hc, tout, rng_state, rev_stamp, rev_label):
    """Run one half-cycle until the event budget, the time cap, or no possible event.

    ``rng_state`` holds (stop, max_to_stop), which carry over between half-cycles as in the
    legacy loop.  ``hc`` receives the half's counters, ``tout[0]`` its kMC duration.
    """
    ip, fp = st[1][24], st[1][25]
    nmol = np.zeros(max(ip[IP_NMOL], 1), dtype=np.int64)
    dt = np.zeros(1)
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
            if rng_state[0] < rng_state[1]:
                rng_state[0] += 1
                molecule_numbers(st, nmol)
                if diffusion_step(st, nmol, rev_stamp, rev_label, hc):
                    fired = True
                    maintenance(st, hc, False)
                else:
                    failed += 1
                    hc[H_FAILED] += 1
            else:
                rng_state[0] = 0
                rng_state[1] = np.random.randint(1, ip[IP_MAX_TO_STOP] + 1) if ip[IP_MAX_TO_STOP] > 0 else 0
                molecule_numbers(st, nmol)
                res = reaction_step(st, half, nmol, hc, dt)
                if res == R_FIRED:
                    fired = True
                    t += dt[0]
                    nev += 1
                    failed = 0
                    rejected = 0
                    maintenance(st, hc, False)
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


@njit(cache=True)
def seed_rng(seed):
    np.random.seed(seed)


@njit(cache=True)
def init_state(st):
    """Counters, flags, sets and trees from scratch (also the reference for tests)."""
    (occ, chg, cnt, c2, sel, flags, sarr, spos, sn, wmol, tdis, tdiff, tsize, gcount, log,
     logn, cur, stamp, stampc, misc) = st[0]
    (nbr, nn, stype, tclass, near, near_rev, role, sclass, INT, sel_sp, sel_chg, sel_mask,
     rx_kind, rx_reactant, rx_sel, rx_rate, rx_half, rx_el, ch_start, ch_n, ch_w, pr_start,
     pr_n, pr_sp, ip, fp, mol_conc) = st[1]
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
    misc[0] = 0
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
        misc[0] += chg[i]
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
            for s in range(sel_sp.size):
                if _sel_match(sel_sp, sel_chg, sel_mask, s, o, chg[i], t):
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
    for j in range(N):
        refresh_weights(st, j)


@njit(cache=True)
def draw_int(lo, hi):
    """Uniform integer in [lo, hi] from the engine's generator."""
    return np.random.randint(lo, hi + 1)


@njit(cache=True)
def half_stats(st, nz, layer, nmol, out_layers, out_scalar):
    """End-of-half observables: per-layer counts and surface counts.

    out_layers[s, z]: count of lattice species s in layer z (rows 0..nsp-1, row METAL holds
    only charge-0 metal, row nsp holds charge-1 metal); molecule rows get one fresh sample of
    the electrolyte assignment.  out_scalar: [Li0, Li+, Li0 at surface, Li+ at surface,
    layers with a fragment, layers with Li0 on a BC site].
    """
    occ, chg, cnt = st[0][0], st[0][1], st[0][2]
    stype, role, ip = st[1][2], st[1][6], st[1][24]
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


@njit(cache=True)
def sample_tree(tree, size, n, out_idx, out_dt):
    """Draw n (site, waiting time) pairs from a frozen rate tree (for statistical tests)."""
    for r in range(n):
        out_idx[r] = tree_pick(tree, size)
        out_dt[r] = -np.log(1.0 - np.random.random()) / tree[1]

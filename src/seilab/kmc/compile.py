"""Compile a :class:`seilab.model.Model` into the integer and float tables of the kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seilab.errors import ModelError
from seilab.kmc import kernels as K
from seilab.kmc.state import Dynamic, Static
from seilab.lattice import _CACHE_MAX_SITES, TYPE_CLASS, TYPE_NAMES, Lattice, lattice_from_model

AVOGADRO = 6.02214076e23
#: Back-fill through molecules: the most electrolyte sites that must all hold a molecule.
FILL_MOL_MAX = 4


@dataclass
class Compiled:
    """Static tables plus the names needed to read the kernels' counters."""

    lattice: Lattice
    species: list[str]  # code -> name ("" for empty)
    role: np.ndarray
    reactions: list  # enabled reactions, kernel order
    channels: list[tuple[int, int]]  # (reaction index, channel index within it)
    static: Static
    n_frag: int
    n_mol: int
    #: (species code, charge or -1 for any, site-type bit mask) of each selector, in kernel
    #: order: what ``static.selbits`` encodes and ``sel[:, s]`` counts
    selectors: list[tuple[int, int, int]]


_DERIVED: dict[tuple, tuple[Lattice, np.ndarray]] = {}


def per_lattice(lat: Lattice, key: tuple, make) -> np.ndarray:
    """``make()`` once per lattice object and key (a table derived from the lattice alone).

    Campaign workers reuse one cached lattice for hundreds of runs (``lattice_from_model``
    keeps those of up to a million sites), so its derived tables are kept with it; callers
    must not write to them.  Bigger lattices are not kept, nor are their tables.
    """
    if lat.n_sites > _CACHE_MAX_SITES:
        return make()
    k = (id(lat), *key)
    hit = _DERIVED.get(k)
    if hit is not None and hit[0] is lat:
        return hit[1]
    val = make()
    if len(_DERIVED) >= 8:
        _DERIVED.pop(next(iter(_DERIVED)))
    _DERIVED[k] = (lat, val)
    return val


def _near_rev(lat: Lattice) -> np.ndarray:
    """near_rev[i, k]: site i lies within the bonding radius of its neighbour nbr[i, k].

    The lattice is translation invariant, so the table of the 16 sites of one cube is tiled.
    """
    from seilab.lattice import NB

    n, m = lat.nbr.shape
    cell = np.zeros((NB, m), dtype=np.bool_)
    for i in range(NB):
        for k in range(lat.n_nbr[i]):
            j = lat.nbr[i, k]
            slot = int(np.nonzero(lat.nbr[j] == i)[0][0])
            cell[i, k] = lat.near[j, slot]
    return np.tile(cell, (n // NB, 1))


def compile_model(model, lattice: Lattice | None = None) -> Compiled:
    """Turn a validated model into kernel tables."""
    spec = model.spec
    lat = lattice if lattice is not None else lattice_from_model(spec)
    sp = spec.species
    metal = next(n for n, s in sp.items() if s.role == "metal")
    background = next(n for n, s in sp.items() if s.role == "background")
    frags = [n for n, s in sp.items() if s.role == "fragment"]
    mols = list(spec.electrolyte.molecules) + [
        n for n, s in sp.items() if s.role == "molecule" and n not in spec.electrolyte.molecules
    ]
    names = ["", metal, background, *frags, *mols]
    code = {n: i for i, n in enumerate(names)}
    nsp = len(names)
    nsplat = 3 + len(frags)
    role = np.array(
        [K.ROLE_EMPTY, K.ROLE_METAL, K.ROLE_BACKGROUND]
        + [K.ROLE_FRAGMENT] * len(frags)
        + [K.ROLE_MOLECULE] * len(mols),
        dtype=np.int8,
    )
    sclass = np.full(nsp, K.CL_NONE, dtype=np.int8)
    for f in frags:
        sclass[code[f]] = K.CL_OC if sp[f].site_class == "OC_type" else K.CL_BA

    ps = spec.pair_settings
    INT = np.zeros((nsp, nsp))
    for key, val in spec.pairs.items():
        a, b = key.split("-")
        if ps.window and not (ps.window_ev[0] < val < ps.window_ev[1]):
            val = 0.0
        INT[code[a], code[b]] = val
    if any(INT[code[metal], nsplat:] != 0):
        raise ModelError(
            "pairs: a metal-molecule pair is not supported (the metal barrier ignores molecules)"
        )

    phys = spec.physics
    kT = phys.k_boltzmann_ev_per_k * phys.temperature_k
    prot = spec.protocol
    rx_all = [r for r in spec.reactions if r.enabled]
    # kernel order: molecule and fragment reactions, then strip, then hop
    selectors: list[tuple[int, int, int]] = []
    rx_kind, rx_reactant, rx_sel, rx_rate, rx_half, rx_el = [], [], [], [], [], []
    ch_start, ch_n, ch_w, pr_start, pr_n, pr_sp = [], [], [], [], [], []
    channels = []
    kinds = {"molecule": K.K_MOLECULE, "fragment": K.K_FRAGMENT, "strip": K.K_STRIP, "hop": K.K_HOP}
    strip_rx = hop_rx = -1
    for r_i, rx in enumerate(rx_all):
        kind = kinds[rx.kind]
        s_idx = -1
        if rx.count is not None:
            mask = 0
            for t in rx.count.sites:
                mask |= 1 << TYPE_NAMES.index(t)
            key = (code[rx.count.species], -1 if rx.count.charge is None else rx.count.charge, mask)
            if key not in selectors:
                selectors.append(key)
            s_idx = selectors.index(key)
        volt = prot.voltage_charge_v if rx.half == "charge" else prot.voltage_discharge_v
        ea = 0.0 if rx.ea == "bonds" else float(rx.ea)
        rate = (
            phys.global_prefactor
            * rx.sigma
            * rx.k0
            * np.exp(-(ea - rx.alpha * (volt - rx.e0)) / kT)
        )
        rx_kind.append(kind)
        rx_reactant.append(code[rx.reactant])
        rx_sel.append(s_idx)
        rx_rate.append(rate)
        rx_half.append(0 if rx.half == "charge" else 1)
        rx_el.append(rx.electrons)
        if kind == K.K_STRIP:
            strip_rx = r_i
        if kind == K.K_HOP:
            hop_rx = r_i
        ch_start.append(len(ch_w))
        ch_n.append(len(rx.channels))
        for c_i, ch in enumerate(rx.channels):
            channels.append((r_i, c_i))
            ch_w.append(ch.weight)
            pr_start.append(len(pr_sp))
            pr_n.append(len(ch.products))
            pr_sp.extend(code[p] for p in ch.products)
    if not selectors:
        selectors.append((0, -1, 0))  # keeps array shapes non-empty
    if len(selectors) > 62:
        raise ModelError(
            f"{model.source}: reactions: {len(selectors)} distinct neighbour counts; allowed: at most 62"
        )
    # the selectors an occupant counts for, by (species, charge, site type): one load where a
    # change or a charge flip asks
    selbits = np.zeros((nsp, 2, len(TYPE_CLASS)), dtype=np.int64)
    for s_i, (s_sp, s_chg, s_mask) in enumerate(selectors):
        for c in (0, 1):
            if s_chg >= 0 and s_chg != c:
                continue
            for t in range(len(TYPE_CLASS)):
                if (s_mask >> t) & 1:
                    selbits[s_sp, c, t] |= 1 << s_i

    r = spec.rules
    ip = np.zeros(K.N_IP, dtype=np.int64)
    ip[K.IP_NSP] = nsp
    ip[K.IP_NSPLAT] = nsplat
    ip[K.IP_NMOL] = len(mols)
    ip[K.IP_EL_MAXLI] = spec.initial.electrolyte_max_li_neighbors
    ip[K.IP_WRAP] = int(r.wrap)
    ip[K.IP_WRAP_BCB_THR] = r.wrap_bcb_when_free_ba_below
    ip[K.IP_LI_REMOVE] = int(r.li_remove)
    ip[K.IP_LI_FILL] = int(r.li_fill)
    ip[K.IP_MAX_STRIP_LI] = r.max_li_neighbors_strip
    ip[K.IP_PLATE_MIN] = r.plating_min_li
    ip[K.IP_PLATE_MAX] = r.plating_max_li
    ip[K.IP_PACK_MIN] = r.pack_min_li
    ip[K.IP_HOP_BCB_MAX] = r.hop_bcb_max_li
    ip[K.IP_HOP_BCO_MIN] = r.hop_bco_min_li
    ip[K.IP_DEST_MIN] = spec.diffusion.min_li_neighbors_destination
    ip[K.IP_MAX_TO_STOP] = spec.diffusion.max_to_stop
    ip[K.IP_BUDGET] = prot.event_budget
    ip[K.IP_MAX_ATTEMPTS] = prot.max_failed_attempts
    ip[K.IP_MAX_REJ] = prot.max_rejections
    ip[K.IP_MAX_STEPS] = prot.max_steps
    ip[K.IP_STRIP_RX] = strip_rx
    ip[K.IP_HOP_RX] = hop_rx
    ip[K.IP_MOL_INT_ANY] = int(np.any(INT[:nsplat, nsplat:] != 0))
    ip[K.IP_WRAP_SHORTCUT] = 1  # tests switch it off to check it against the literal rules
    # legacy order: molecules flushed before the back-fill.  Sites that need more than
    # FILL_MOL_MAX molecules at once are left out (probability < 0.027**5 = 1.4e-8 per event)
    ip[K.IP_FILL_MOL_MAX] = (
        FILL_MOL_MAX if (r.flush_molecules_before_framework and r.li_fill) else 0
    )
    consume = 0
    for r_i, rx in enumerate(rx_all):
        if rx.kind == "fragment" and not rx.keep_parent:
            if r_i > 62:
                raise ModelError(
                    f"{model.source}: reactions.{rx.name}.keep_parent: at most 63 reactions "
                    "before one that consumes its parent; allowed: true"
                )
            consume |= 1 << r_i
    ip[K.IP_CONSUME_MASK] = consume
    fp = np.zeros(K.N_FP)
    fp[K.FP_KT] = kT
    fp[K.FP_DIFF_PREF] = phys.global_prefactor * spec.diffusion.sigma * spec.diffusion.k0
    fp[K.FP_SCAN] = prot.scan_interval_s
    fp[K.FP_REJECT] = prot.reject_fraction
    el = spec.electrolyte
    fp[K.FP_EL_MOLPERSITE] = (
        (4.0 / 3.0) * np.pi * el.sphere_radius_angstrom**3 / el.packing_fraction * AVOGADRO / 1e27
    )
    mol_conc = np.array([el.molecules.get(m, 0.0) for m in mols] or [0.0])

    tclass = TYPE_CLASS.copy()
    static = Static(
        lat.nbr.view(np.uint32),
        lat.n_nbr,
        lat.site_type.view(np.uint8),
        tclass,
        lat.near,
        per_lattice(lat, ("near_rev",), lambda: _near_rev(lat)),
        role,
        sclass,
        INT,
        selbits,
        np.array(rx_kind, dtype=np.int64),
        np.array(rx_reactant, dtype=np.int64),
        np.array(rx_sel, dtype=np.int64),
        np.array(rx_rate, dtype=np.float64),
        np.array(rx_half, dtype=np.int64),
        np.array(rx_el, dtype=np.int64),
        np.array(ch_start, dtype=np.int64),
        np.array(ch_n, dtype=np.int64),
        np.array(ch_w or [0.0], dtype=np.float64),
        np.array(pr_start or [0], dtype=np.int64),
        np.array(pr_n or [0], dtype=np.int64),
        np.array(pr_sp or [0], dtype=np.int64),
        ip,
        fp,
        mol_conc,
    )
    return Compiled(
        lat, names, role, rx_all, channels, static, len(frags), len(mols), list(selectors)
    )


def new_dynamic(comp: Compiled, occ: np.ndarray) -> Dynamic:
    """Allocate the dynamic arrays for an occupation vector (counters filled by init_state)."""
    n = occ.size
    nsp = len(comp.species)
    size = 1
    while size < n:
        size <<= 1
    nsel = len(comp.selectors)
    nmol = max(comp.n_mol, 1)
    # neighbour counts fit int8 (at most the neighbours of a site: 34 on the model's lattice),
    # half the cache lines of int16 for the neighbours of a change (cachegrind, a slow set:
    # 16 % fewer L1 read misses); a lattice with more neighbours keeps int16
    ctype = np.int8 if comp.static.nbr.shape[1] <= np.iinfo(np.int8).max else np.int16
    return Dynamic(
        occ.astype(np.uint8),
        np.zeros(n, dtype=np.int8),  # chg
        np.zeros((n, nsp), dtype=ctype),  # cnt
        np.zeros((n, K.N_C2), dtype=ctype),  # c2
        np.zeros((n, nsel), dtype=ctype),  # sel
        np.zeros(n, dtype=np.int16),  # flags
        np.zeros((K.N_SETS, n), dtype=np.uint32),  # sarr
        np.full((K.N_SETS, n), -1, dtype=np.int32),  # spos
        np.zeros(K.N_SETS, dtype=np.int64),  # sn
        np.zeros((n, nmol)),  # wmol
        np.zeros(2 * size),  # tdis
        np.zeros(2 * size),  # tdiff
        np.array([size], dtype=np.int64),  # tsize
        np.zeros(nsp, dtype=np.int64),  # gcount
        np.zeros(1 << 16, dtype=np.uint32),  # change log
        np.zeros(1, dtype=np.int64),  # log length
        np.zeros(4, dtype=np.int64),  # rule cursors
        np.zeros(n, dtype=np.int64),  # stamps
        np.zeros(1, dtype=np.int64),  # stamp counter
        # misc: [ionised metal count, force full pass, then the last event's electrolyte
        # sample: reveal stamp, unrevealed sites, skipped site, unrevealed molecules per type]
        np.zeros(K.M_LEFT + nmol, dtype=np.int64),
        np.zeros(n, dtype=np.int32),  # stamps of the rate-refresh list
        np.zeros(n, dtype=np.uint32),  # rate-refresh list: sites touched since the last flush
        np.array([1, 0], dtype=np.int64),  # rate-refresh [stamp, list length]
        np.zeros(n, dtype=np.int32),  # stamps of the settle queue
        np.zeros(n, dtype=np.uint32),  # settle queue: sites whose charge and flags wait
        np.array([1, 0], dtype=np.int64),  # settle queue [stamp, length]
        np.zeros(n, dtype=np.uint32),  # scratch: rule candidates
        np.zeros(2 * n, dtype=np.uint32),  # scratch: rule decisions, sites
        np.zeros(2 * n, dtype=np.int8),  # scratch: rule decisions, species
        np.zeros(nmol, dtype=np.int64),  # scratch: unrevealed molecules of a diffusion draw
        # scratch: re-weighted leaves of a diffusion draw (at most one per fragment) and their
        # weights before; np.zeros leaves untouched pages unmapped, so a big box pays for the
        # leaves a draw re-weights, not for N
        np.zeros(n, dtype=np.int64),
        np.zeros(n),
        np.zeros(nmol, dtype=np.int64),  # scratch: molecules on a reaction draw's active sites
        np.zeros(nmol, dtype=np.int64),  # scratch: the half loop's molecule numbers
        np.zeros(1),  # scratch: the waiting time of the reaction just fired
    )

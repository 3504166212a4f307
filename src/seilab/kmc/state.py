"""Names of the arrays the kernels share (the kMC state).

The state travels through the compiled kernels as two named tuples (Numba compiles a named
tuple exactly like a plain tuple, so names cost nothing at run time; a jitclass would, and
cannot be cached).  Indices (sites, species, site types) are unsigned: Numba guards every
signed index against a negative value, and these never are.  Code reads fields by name
(``st.d.gcount``, ``comp.static.ip``); adding an array means adding its name here and
allocating it in :func:`seilab.kmc.compile.new_dynamic` or
:func:`seilab.kmc.compile.compile_model`.
"""

from __future__ import annotations

from collections import namedtuple

#: Per-run arrays, changed by every event.
DYNAMIC_FIELDS = (
    "occ",  # (N,) uint8 species code of every site
    "chg",  # (N,) int8 charge of a metal atom (1: bound to SEI)
    "cnt",  # (N, nsp) int8 neighbour count of each species (int16 past 127 neighbours)
    "c2",  # (N, N_C2) int8 derived neighbour counters (C_* columns; int16 as cnt)
    "sel",  # (N, nsel) int8 neighbour counts of the reactions' selectors (int16 as cnt)
    "flags",  # (N,) int16 eligibility flags (F_* bits)
    "sarr",  # (N_SETS, N) uint32 members of the indexable sets
    "spos",  # (N_SETS, N) int32 position of a site in each set (-1: absent)
    "sn",  # (N_SETS,) int64 set sizes
    "wmol",  # (N, nmol) float64 molecule-reaction weight of an electrolyte site
    "tdis",  # (2 size,) float64 sum tree of strip + hop rates (discharge)
    "tdiff",  # (2 size,) float64 sum tree of fragment diffusion rates
    "tsize",  # (1,) int64 number of tree leaves
    "gcount",  # (nsp,) int64 number of sites holding each species
    "log",  # (65536,) uint32 change log: site * 8 + kind of change
    "logn",  # (1,) int64 log length
    "cur",  # (4,) int64 log cursor of each framework rule
    "stamp",  # (N,) int64 stamps that deduplicate candidate sites
    "stampc",  # (1,) int64 stamp counter
    "misc",  # ionised metal count, force-full-pass flag, electrolyte sample (M_* slots)
    "wstamp",  # (N,) int32 stamps of the rate-refresh list (counter wraps: STAMP_WRAP)
    "wlist",  # (N,) uint32 sites whose rates need refreshing
    "wctr",  # (2,) int64 rate-refresh [stamp, list length]
    "qstamp",  # (N,) int32 stamps of the settle queue (counter wraps: STAMP_WRAP)
    "qlist",  # (N,) uint32 sites whose charge and flags wait for settle
    "qctr",  # (2,) int64 settle queue [stamp, length]
    "rcand",  # (N,) uint32 scratch: a framework rule's candidate sites
    "rsite",  # (2N,) uint32 scratch: the sites a framework rule changes
    "rsp",  # (2N,) int8 scratch: their new species (WRAP_THEN_REMOVED: -1)
    "dleft",  # (nmol,) int64 scratch: unrevealed molecules of a diffusion draw
    "dmod",  # (N,) int64 scratch: leaves a diffusion draw re-weighted
    "dbase",  # (N,) float64 scratch: their weights before
    "rmol",  # (nmol,) int64 scratch: molecules of each type on a reaction draw's active sites
    "hmol",  # (nmol,) int64 scratch: the half-cycle loop's molecule numbers before a draw
    "hdt",  # (1,) float64 scratch: waiting time of the reaction the loop just fired
)

#: Per-model tables, never written during a run.
STATIC_FIELDS = (
    "nbr",  # (N, M) uint32 neighbour indices (the lattice's int32 table viewed unsigned)
    "nn",  # (N,) int32 number of neighbours
    "stype",  # (N,) uint8 site type (viewed unsigned)
    "tclass",  # (5,) int8 site class of each site type
    "near",  # (N, M) bool: neighbour within the site's bonding radius
    "near_rev",  # (N, M) bool: the site lies within its neighbour's bonding radius
    "role",  # (nsp,) int8 role of each species
    "sclass",  # (nsp,) int8 site class of each fragment
    "INT",  # (nsp, nsp) float64 pair interaction energies (eV)
    "selbits",  # (nsp, 2, 5) int64 the selectors a (species, charge, site type) counts for
    "rx_kind",  # (n_rx,) int64 reaction kind (K_*)
    "rx_reactant",  # (n_rx,) int64 reactant species
    "rx_sel",  # (n_rx,) int64 selector of the reaction (-1: none)
    "rx_rate",  # (n_rx,) float64 rate constant at the half's voltage
    "rx_half",  # (n_rx,) int64 0 charge, 1 discharge
    "rx_el",  # (n_rx,) int64 electrons transferred
    "ch_start",  # (n_rx,) int64 first channel of each reaction
    "ch_n",  # (n_rx,) int64 number of channels
    "ch_w",  # (n_ch,) float64 channel weights
    "pr_start",  # (n_ch,) int64 first product of each channel
    "pr_n",  # (n_ch,) int64 number of products
    "pr_sp",  # (n_pr,) int64 product species
    "ip",  # (N_IP,) int64 integer parameters (IP_* slots)
    "fp",  # (N_FP,) float64 float parameters (FP_* slots)
    "mol_conc",  # (nmol,) float64 molecule concentrations
)

Dynamic = namedtuple("Dynamic", DYNAMIC_FIELDS)
Static = namedtuple("Static", STATIC_FIELDS)
#: What the kernels receive: ``st.d`` (Dynamic) and ``st.s`` (Static).
State = namedtuple("State", ("d", "s"))

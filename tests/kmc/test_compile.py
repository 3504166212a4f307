"""Tables derived once per cached lattice (`compile.per_lattice`) and the dtypes the kernels get."""

import numpy as np

from seilab.kmc import Simulation
from seilab.kmc import kernels as K
from seilab.kmc.compile import _near_rev
from seilab.model import load_model


def test_the_initial_cell_follows_its_own_keys_on_a_shared_lattice():
    # two models on one (cached) lattice that differ only in the initial cell: each run gets
    # its own occupation, equal to one derived afresh, and a run cannot change the kept one
    box = (4, 4, 20)
    thin = load_model("paper", {"initial.anode_thickness_angstrom": 25.0}).with_box(box)
    thick = load_model("paper", {"initial.anode_thickness_angstrom": 45.0}).with_box(box)
    a, b, a2 = Simulation(thin, 1), Simulation(thick, 1), Simulation(thin, 2)
    assert a.comp.lattice is b.comp.lattice is a2.comp.lattice
    assert b.metal0 > a.metal0
    for sim in (a, b):
        assert np.array_equal(sim.dyn.occ, sim._make_occupation())
    a.run_half("charge")  # writes a's own occupation
    assert np.array_equal(Simulation(thin, 3).dyn.occ, a2._make_occupation())
    assert np.array_equal(a.comp.static.near_rev, _near_rev(a.comp.lattice))


def test_neighbour_counters_are_int8_and_hold_the_largest_count():
    sim = Simulation(load_model("paper").with_box((4, 4, 16)), 0)
    comp = sim.comp
    m = comp.static.nbr.shape[1]
    assert m <= 127
    for name in ("cnt", "c2", "sel"):
        assert getattr(sim.dyn, name).dtype == np.int8, name
    # a metal site inside the slab counts every neighbour: the counters reach nn, not more
    assert sim.dyn.cnt.sum(axis=1).max() == comp.static.nn.max() == m
    assert sim.dyn.wstamp.dtype == sim.dyn.qstamp.dtype == np.int32
    assert K.STAMP_WRAP == 2**31 - 1


def test_site_and_species_indices_reach_the_kernels_unsigned():
    # Numba guards every signed array index against a negative value (a compare and a select
    # per access, a quarter of a slow set's instructions); sites, species and site types never
    # are negative, so the arrays that hold them are unsigned
    sim = Simulation(load_model("paper").with_box((4, 4, 16)), 0)
    s, d = sim.comp.static, sim.dyn
    assert s.nbr.dtype == np.uint32 and s.stype.dtype == np.uint8 and d.occ.dtype == np.uint8
    for name in ("sarr", "log", "wlist", "qlist", "rcand", "rsite"):
        assert getattr(d, name).dtype == np.uint32, name
    assert K._I is np.uint32
    # the lattice's own table keeps its -1 padding; the kernels' view shares its memory
    lat = sim.comp.lattice
    assert lat.nbr.dtype == np.int32 and np.shares_memory(lat.nbr, s.nbr)


def test_selector_counts_follow_their_definitions_during_a_run():
    # the selector table (static.selbits) and the incremental counts it drives, checked against
    # the selectors' own definitions (species, charge, site types) counted afresh with NumPy
    sim = Simulation(load_model("paper").with_box((4, 4, 16)), 3)
    for kind in ("charge", "discharge") * 3:
        sim.run_half(kind)
    comp, d = sim.comp, sim.dyn
    lat = comp.lattice
    real = lat.nbr >= 0
    nb = np.where(real, lat.nbr, 0)
    occ, chg, stype = d.occ.astype(int), d.chg.astype(int), lat.site_type.astype(int)
    assert any(c >= 0 for _, c, _ in comp.selectors)  # a charge-specific selector is covered
    for s, (sp, c, mask) in enumerate(comp.selectors):
        match = (occ == sp) & ((c < 0) | (chg == c)) & (((mask >> stype) & 1) == 1)
        expect = (match[nb] & real).sum(axis=1)
        assert np.array_equal(d.sel[:, s], expect), s
    assert d.sel.any()

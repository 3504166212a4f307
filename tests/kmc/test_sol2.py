"""F5DEE on Li2O (SOL2, c-1): the per-draw firing law on a constructed lattice.

The legacy engine counts, for every SOL molecule, the O neighbours on BA sites; SOL2 (3.5e3 /s
per pair) then wins any draw in which a SOL sits next to such an O.  With the electrolyte
re-sampled before every draw (N_SOL molecules on uniformly random electrolyte sites), a lone
Li2O motif with k electrolyte neighbours makes SOL2 fire in a draw with probability
1 - C(P - k, N_SOL) / C(P, N_SOL), P = electrolyte sites.  seilab samples only the "active"
sites; this test checks that the result is the same law.
"""

import math

import numpy as np

from seilab.kmc import Simulation
from seilab.kmc import kernels as K
from seilab.lattice import BA, TE
from seilab.model import load_model

MOL_PER_SITE_PER_M = 4.0 / 3.0 * math.pi / 0.74 * 6.02214076e23 / 1e27  # spec 2.6


def test_sol2_fires_when_a_solvent_sits_next_to_an_exposed_oxide():
    sim = Simulation(load_model("paper-legacy").with_box((4, 4, 16)), seed=3)
    st, lat, occ = sim.st, sim.comp.lattice, sim.dyn[0]
    o_code = sim.comp.species.index("O")
    names = [r.name for r in sim.comp.reactions]
    isol2 = K.H_BASE + names.index("sol2")
    hc = np.zeros(K.H_BASE + 200, dtype=np.int64)
    K.maintenance(st, hc, True, sim.rev_stamp, sim.rev_label)
    # a BA site deep in the electrolyte (the slab is centred in z): an isolated Li2O motif
    z = lat.positions()[:, 2]
    ba = np.nonzero((lat.site_type == BA) & (occ == K.BACKGROUND) & (z > 6.0) & (z < 10.0))[0]
    o = int(ba[0])
    K.set_site(st, o, o_code)
    K.maintenance(st, hc, False, sim.rev_stamp, sim.rev_label)
    nb = lat.nbr[o, : lat.n_nbr[o]]
    assert (occ[nb[lat.site_type[nb] == TE]] == K.METAL).all()  # wrap: Li on its 8 TE sites
    exposed = nb[occ[nb] == K.BACKGROUND]
    # antifluorite motif in electrolyte: its 8 BA and 4 BCB neighbours keep nLi = 2
    assert len(exposed) == 12
    pool = int((occ == K.BACKGROUND).sum())
    n_sol = round(6.5 * pool * MOL_PER_SITE_PER_M)
    assert sim.molecule_numbers()[0] == n_sol
    k = len(exposed)
    p = 1.0 - math.exp(
        math.lgamma(pool - k + 1)
        + math.lgamma(pool - n_sol + 1)
        - math.lgamma(pool - k - n_sol + 1)
        - math.lgamma(pool + 1)
    )
    nmol = sim.molecule_numbers()
    dt = np.zeros(1)
    draws, hits = 3000, 0
    for _ in range(draws):
        twin = tuple(a.copy() for a in sim.dyn)
        h = np.zeros_like(hc)
        K.reaction_step(
            (twin, sim.comp.static), 0, nmol, h, dt, sim.rev_stamp.copy(), sim.rev_label.copy()
        )
        hits += int(h[isol2])
    sd = math.sqrt(p * (1 - p) / draws)
    # a selector that missed the BCB neighbours (8 of 12 sites) would give p = 0.16, not 0.23
    print(
        f"SOL2 per draw {hits / draws:.4f}, law {p:.4f} (sd {sd:.4f}), k={k}, P={pool}, N_SOL={n_sol}"
    )
    assert abs(hits / draws - p) < 4 * sd, (hits / draws, p)

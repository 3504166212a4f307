"""The rate law against hand-computed values, and event selection statistics."""

import math

import numpy as np
import pytest
from scipy import stats

from seilab.kmc import Simulation
from seilab.kmc import kernels as K
from seilab.kmc.compile import compile_model
from seilab.model import load_model

KT = 8.617334181e-5 * 298.0  # the model files' kB (1.380649e-23 J/K x 6.24150974e18 eV/J)


def _rate(comp, name):
    i = [r.name for r in comp.reactions].index(name)
    return comp.static[15][i]


def test_rate_law_hand_values():
    comp = compile_model(load_model("paper").with_box((3, 3, 8)))
    assert _rate(comp, "plating") == pytest.approx(0.5 * 1.5e-3)
    assert _rate(comp, "sfo") == pytest.approx(0.5 * 1e-6)
    assert _rate(comp, "sol2") == pytest.approx(0.5 * 1e10 * math.exp(-0.364 / KT), rel=1e-12)
    assert _rate(comp, "sol2") == pytest.approx(3.49e3, rel=5e-3)  # the reference table's value


def test_rate_law_potential_term():
    m = load_model("paper", {"reactions.plating.alpha": 0.5, "reactions.plating.ea": 0.2}).with_box(
        (3, 3, 8)
    )
    comp = compile_model(m)
    expect = 0.5 * 1.0 * 1.5e-3 * math.exp(-(0.2 - 0.5 * (4.4 - (-3.04))) / KT)
    assert _rate(comp, "plating") == pytest.approx(expect, rel=1e-12)


def test_bond_counting_barrier_of_stripping():
    sim = Simulation(load_model("paper").with_box((4, 4, 12)), seed=0)
    cnt = sim.dyn[2]
    e_lili = 0.103728287
    metal = np.nonzero(sim.dyn[0] == K.METAL)[0]
    i = int(metal[np.argmin(cnt[metal, K.METAL])])
    n = int(cnt[i, K.METAL])
    strip_rx = int(sim.comp.static[24][K.IP_STRIP_RX])
    got = K.metal_rate(sim.st, i, strip_rx)
    assert got == pytest.approx(0.5 * 56.25 * math.exp(-n * e_lili / KT), rel=1e-12)
    # reference numbers of the model file at nLi = 1..4 (0.495, 8.7e-3, 1.5e-4, 2.7e-6 1/s)
    for k, ref in zip(range(1, 5), (0.495, 8.7e-3, 1.5e-4, 2.7e-6), strict=True):
        assert 0.5 * 56.25 * math.exp(-k * e_lili / KT) == pytest.approx(ref, rel=0.05)


@pytest.fixture(scope="module")
def evolved():
    sim = Simulation(load_model("paper").with_box((6, 6, 20)), seed=5)
    for _ in range(1):
        sim.run_half("charge")
        sim.run_half("discharge")
    return sim


@pytest.mark.parametrize("tree_index", [10, 11])  # discharge rates, fragment diffusion rates
def test_event_frequencies_and_waiting_times(evolved, tree_index):
    tree = evolved.dyn[tree_index].copy()
    size = int(evolved.dyn[12][0])
    w = tree[size:]
    assert tree[1] > 0
    n = 40000
    idx = np.zeros(n, dtype=np.int64)
    dt = np.zeros(n)
    K.seed_rng(123)
    K.sample_tree(tree, size, n, idx, dt)
    sites = np.nonzero(w > 0)[0]
    p = w[sites] / w[sites].sum()
    # merge rare sites into one bin so every expected count is >= 5
    order = np.argsort(p)[::-1]
    keep = order[p[order] * n >= 5]
    counts = np.bincount(np.searchsorted(sites, idx), minlength=sites.size)
    obs = np.append(counts[keep], n - counts[keep].sum())
    exp = np.append(p[keep] * n, n * (1 - p[keep].sum()))
    if exp[-1] < 1e-9:
        obs, exp = obs[:-1], exp[:-1]
    assert set(idx.tolist()) <= set(sites.tolist())
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    assert stats.kstest(dt, "expon", args=(0, 1 / tree[1])).pvalue > 1e-3

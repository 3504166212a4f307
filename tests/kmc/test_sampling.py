"""The kernels' own samplers follow their exact laws (chi-square against the exact pmf)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import stats

from seilab.kmc import kernels as K


@njit(cache=False)
def _draws(good, bad, n, size, seed):
    np.random.seed(seed)  # noqa: NPY002 - the compiled stream the kernels draw from
    out = np.empty(size, dtype=np.int64)
    for q in range(size):
        out[q] = K.hypergeometric(good, bad, n)
    return out


@pytest.mark.parametrize(
    ("good", "bad", "n"),
    [
        (40, 1500, 300),  # molecules on the active sites: the common case
        (1500, 40, 300),  # more good than bad: the smaller class is counted
        (30, 20, 45),  # the lowest possible count is above zero
        (500, 500, 600),  # mean far from the lowest value
        (5, 3000, 2000),
        (4000, 4000, 7000),  # lowest value's probability underflows: the fallback sampler
    ],
)
def test_hypergeometric_follows_the_exact_law(good, bad, n):
    x = _draws(good, bad, n, 40_000, 7)
    lo, hi = max(0, n - bad), min(n, good)
    assert x.min() >= lo and x.max() <= hi
    law = stats.hypergeom(good + bad, good, n)
    ks = np.arange(lo, hi + 1)
    expected = law.pmf(ks) * x.size
    observed = np.bincount(x - lo, minlength=ks.size)[: ks.size]
    # pool the sparse tails so that every cell expects at least 5 draws
    keep = expected >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] < 5:
        obs[-2] += obs[-1]
        exp[-2] += exp[-1]
        obs, exp = obs[:-1], exp[:-1]
    chi2 = ((obs - exp) ** 2 / exp).sum()
    p = stats.chi2.sf(chi2, obs.size - 1)
    assert p > 1e-4, (good, bad, n, chi2, obs.size)
    assert abs(x.mean() - law.mean()) < 5 * law.std() / np.sqrt(x.size)


def test_hypergeometric_edges():
    assert _draws(0, 10, 5, 10, 1).max() == 0
    assert _draws(10, 0, 5, 10, 1).min() == 5
    assert _draws(10, 10, 0, 10, 1).max() == 0
    assert (_draws(3, 10, 13, 10, 1) == 3).all()  # the whole pool

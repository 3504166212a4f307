"""The 16-site superlattice: coordination numbers and periodicity."""

import numpy as np
import pytest

from seilab.errors import ModelError
from seilab.lattice import BCB, BCO, TE, build_lattice, lattice_from_model
from seilab.model import load_model


@pytest.fixture(scope="module")
def lat():
    return lattice_from_model(load_model("paper").with_box((4, 5, 6)).spec)


def test_coordination_numbers_of_each_site_class(lat):
    assert lat.coordination() == {"BCB": 34, "BCO": 34, "BA": 26, "OC": 26, "TE": 14}


def test_neighbour_relation_is_symmetric_and_periodic(lat):
    n, m = lat.nbr.shape
    pairs = {(i, int(j)) for i in range(n) for j in lat.nbr[i, : lat.n_nbr[i]]}
    assert all((j, i) in pairs for i, j in pairs)
    # every site, including those on the box faces, has its full coordination
    pos = lat.positions()
    L = np.array(lat.box) * lat.a
    for i in (0, n - 1, n // 2):
        d = pos[lat.nbr[i, : lat.n_nbr[i]]] - pos[i]
        d -= L * np.round(d / L)  # minimum image
        dist = np.linalg.norm(d, axis=1)
        assert dist.max() <= 3.4641 * lat.a / 4.0 * 1.05 + 1e-9
        assert dist.min() > 0


def test_pair_counts_match_reference_table(lat):
    # BCB: 8 BCO, 12 BA, 6 OC, 8 TE; TE: 1 BCB, 1 BCO, 3 BA, 3 OC, 6 TE
    i = int(np.nonzero(lat.site_type == BCB)[0][0])
    t = lat.site_type[lat.nbr[i, : lat.n_nbr[i]]]
    assert np.bincount(t, minlength=5).tolist() == [0, 8, 12, 6, 8]
    i = int(np.nonzero(lat.site_type == TE)[0][0])
    t = lat.site_type[lat.nbr[i, : lat.n_nbr[i]]]
    assert np.bincount(t, minlength=5).tolist() == [1, 1, 3, 3, 6]
    i = int(np.nonzero(lat.site_type == BCO)[0][0])
    assert lat.near[i].sum() == 14  # 6 BA at 2.0 A and 8 TE at 1.732 A within minR(OC-type)


def test_topology_does_not_depend_on_lattice_constant():
    cut = load_model("paper").spec.lattice.cutoffs
    a = build_lattice((3, 3, 3), 4.0, cut)
    b = build_lattice((3, 3, 3), 4.47, cut)
    assert np.array_equal(a.nbr, b.nbr)


def test_box_too_small_for_periodic_images():
    with pytest.raises(ModelError, match="box"):
        build_lattice((2, 3, 3), 4.0, load_model("paper").spec.lattice.cutoffs)

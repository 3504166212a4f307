"""The 16-site superlattice: basis, periodic neighbour tables, layers.

Each cubic cell of side *a* holds 16 sites (section 2.1 of the model reference): the two BCC
metal sublattices BCB (corner) and BCO (body centre), three OC and three BA interstitials, and
eight tetrahedral TE sites.  Neighbours are site pairs within ``cutoff x tolerance`` under the
periodic minimum image; cut-offs are given at a reference lattice constant and scale with *a*,
so the topology does not depend on *a*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seilab.errors import ModelError

#: Site-type codes.
BCB, BCO, BA, OC, TE = 0, 1, 2, 3, 4
TYPE_NAMES = ("BCB", "BCO", "BA", "OC", "TE")
#: OC-type = OC u BCO; BA-type = BA u BCB (section 2.1).
CLASS_OC, CLASS_BA, CLASS_NONE = 0, 1, 2
TYPE_CLASS = np.array([CLASS_BA, CLASS_OC, CLASS_BA, CLASS_OC, CLASS_NONE], dtype=np.int8)

_q = (0.25, 0.75)
BASIS_FRAC = np.array(
    [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5)]
    + [(0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)]
    + [(0.5, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.5)]
    + [(x, y, z) for x in _q for y in _q for z in _q]
)
BASIS_TYPE = np.array([BCB, BCO, BA, BA, BA, OC, OC, OC] + [TE] * 8, dtype=np.int8)
NB = len(BASIS_TYPE)  # 16 sites per cube


@dataclass(frozen=True)
class Lattice:
    """Periodic superlattice with neighbour tables.

    Attributes
    ----------
    box
        (nx, ny, nz) in cubes.
    a
        Lattice constant in Angstrom.
    site_type
        (N,) int8 site-type code of every site.
    nbr
        (N, M) int32 neighbour indices, padded with -1.
    n_nbr
        (N,) int32 number of neighbours.
    near
        (N, M) bool: neighbour within the bonding radius minR of site *i*'s class.
    layer
        (N,) int32 z-layer (cube index along z) of every site.
    """

    box: tuple[int, int, int]
    a: float
    site_type: np.ndarray
    nbr: np.ndarray
    n_nbr: np.ndarray
    near: np.ndarray
    layer: np.ndarray
    offsets: tuple  # per-basis neighbour stencils (for inspection and tests)

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return int(self.site_type.size)

    def positions(self) -> np.ndarray:
        """(N, 3) Cartesian positions in Angstrom."""
        nx, ny, nz = self.box
        idx = np.arange(self.n_sites)
        b = idx % NB
        cell = idx // NB
        cx = cell % nx
        cy = (cell // nx) % ny
        cz = cell // (nx * ny)
        return (np.stack([cx, cy, cz], axis=1) + BASIS_FRAC[b]) * self.a

    def coordination(self) -> dict[str, int]:
        """Coordination number of each site type (unique values; one per type in a bulk cell)."""
        out = {}
        for t, name in enumerate(TYPE_NAMES):
            vals = np.unique(self.n_nbr[self.site_type == t])
            out[name] = int(vals[0]) if vals.size == 1 else tuple(int(v) for v in vals)
        return out


def _cutoff_matrix(cutoffs: dict[str, float]) -> np.ndarray:
    cm = np.zeros((5, 5))
    for key, val in cutoffs.items():
        a, b = (TYPE_NAMES.index(p) for p in key.split("-"))
        cm[a, b] = cm[b, a] = val
    return cm


def build_lattice(
    box: tuple[int, int, int],
    a: float,
    cutoffs: dict[str, float],
    *,
    reference_a: float = 4.0,
    tolerance: float = 1.05,
    min_r: tuple[float, float] = (2.0, 1.732),
) -> Lattice:
    """Build the periodic lattice and its neighbour tables.

    Parameters
    ----------
    box
        (nx, ny, nz) cubes; each at least 3 so that periodic images do not repeat neighbours.
    a
        Lattice constant (Angstrom); only reported lengths depend on it.
    cutoffs
        ``{"BCB-BCO": 3.4641, ...}`` in Angstrom at ``reference_a``.
    min_r
        Bonding radius (reference Angstrom) of a fragment on an OC-type and a BA-type site,
        compared with the same tolerance as the cut-offs.
    """
    nx, ny, nz = (int(v) for v in box)
    if min(nx, ny, nz) < 3:
        raise ModelError(f"lattice.box {list(box)}: every dimension must be >= 3 cubes")
    cm = _cutoff_matrix(cutoffs) * tolerance / reference_a  # in units of a
    # minR gets the same tolerance as the cut-offs: 1.732 is meant as the TE distance 1.73205.
    rmin = np.array([min_r[0], min_r[1], 0.0]) * tolerance / reference_a
    stencils = []
    for b in range(NB):
        rows = []
        for b2 in range(NB):
            cut = cm[BASIS_TYPE[b], BASIS_TYPE[b2]]
            if cut == 0:
                continue
            for d in np.ndindex(3, 3, 3):
                off = np.array(d) - 1
                vec = BASIS_FRAC[b2] + off - BASIS_FRAC[b]
                dist = float(np.linalg.norm(vec))
                if 1e-9 < dist <= cut + 1e-9:
                    near = dist <= rmin[TYPE_CLASS[BASIS_TYPE[b]]]
                    rows.append((b2, *off, near))
        stencils.append(np.array(rows, dtype=np.int64))
    m = max(len(s) for s in stencils)
    ncell = nx * ny * nz
    n = ncell * NB
    # The neighbour of every cube's site b is the same basis site b2 of a shifted cube; the
    # shifted cube index is a sum of three periodic 1-D parts, broadcast over the cube grid.
    # Temporaries stay at one integer per (cube, stencil entry) of one basis site (big boxes:
    # the 40 x 40 x 160 box has 4.1 M sites) instead of several per (site, neighbour).
    zs, ys, xs = np.arange(nz), np.arange(ny), np.arange(nx)
    nbr = np.full((ncell, NB, m), -1, dtype=np.int32)
    near = np.zeros((ncell, NB, m), dtype=np.bool_)
    n_nbr = np.zeros((ncell, NB), dtype=np.int32)
    for b, st in enumerate(stencils):
        k = len(st)
        zp = ((zs[None, :] + st[:, 3:4]) % nz) * (ny * nx)  # (k, nz)
        yp = ((ys[None, :] + st[:, 2:3]) % ny) * nx
        xp = (xs[None, :] + st[:, 1:2]) % nx
        block = (zp[:, :, None, None] + yp[:, None, :, None] + xp[:, None, None, :]) * NB + st[
            :, 0, None, None, None
        ]  # (k, nz, ny, nx)
        nbr[:, b, :k] = block.reshape(k, ncell).T
        near[:, b, :k] = st[None, :, 4].astype(bool)
        n_nbr[:, b] = k
    nbr = nbr.reshape(n, m)
    near = near.reshape(n, m)
    n_nbr = n_nbr.reshape(n)
    cz = np.arange(ncell) // (nx * ny)
    site_type = np.tile(BASIS_TYPE, ncell)
    layer = np.repeat(cz, NB).astype(np.int32)
    return Lattice((nx, ny, nz), float(a), site_type, nbr, n_nbr, near, layer, tuple(stencils))


_CACHE: dict[tuple, Lattice] = {}
_CACHE_MAX_SITES = 1_000_000  # campaign workers build the same small lattice again and again


def lattice_from_model(spec) -> Lattice:
    """Build the lattice that a :class:`seilab.model.ModelSpec` describes.

    Lattices of up to a million sites are kept per process (the tables are never written to),
    so the runs of a campaign share one.
    """
    lat = spec.lattice
    key = (
        tuple(lat.box),
        float(lat.a_angstrom),
        tuple(sorted(lat.cutoffs.items())),
        float(lat.reference_a_angstrom),
        float(lat.neighbor_tolerance),
        (float(lat.min_r.OC_type), float(lat.min_r.BA_type)),
    )
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    out = build_lattice(
        tuple(lat.box),
        lat.a_angstrom,
        lat.cutoffs,
        reference_a=lat.reference_a_angstrom,
        tolerance=lat.neighbor_tolerance,
        min_r=(lat.min_r.OC_type, lat.min_r.BA_type),
    )
    if out.n_sites <= _CACHE_MAX_SITES:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = out
    return out

"""Extended XYZ frames (read by ASE and OVITO) of the occupied lattice sites."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seilab.kmc import kernels as K
from seilab.lattice import TYPE_NAMES

# Chemical symbols for species whose lattice label is not an element (ASE needs symbols);
# the model's own label is kept in the `label` column.
_SYMBOL = {"SFO": "P", "F5D": "C", "SOL": "Ar", "FSI": "Cl", "ETH": "He"}


def write_xyz(sim, path: str | Path, comment: str = "", background: bool = False) -> Path:
    """Write one frame: metal (with its charge label), fragments, and optionally electrolyte."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lat = sim.comp.lattice
    occ = sim.dyn.occ
    chg = sim.dyn.chg
    keep = (occ != K.EMPTY) if background else ((occ != K.EMPTY) & (occ != K.BACKGROUND))
    idx = np.nonzero(keep)[0]
    pos = lat.positions()[idx]
    names = sim.comp.species
    lx, ly, lz = (n * lat.a for n in lat.box)
    lines = [
        str(idx.size),
        f'Lattice="{lx:.4f} 0.0 0.0 0.0 {ly:.4f} 0.0 0.0 0.0 {lz:.4f}" '
        "Properties=species:S:1:pos:R:3:label:S:1:site:I:1:charge:I:1:site_type:S:1 "
        f'pbc="T T T" {comment}'.rstrip(),
    ]
    for k, i in enumerate(idx):
        name = names[occ[i]]
        lines.append(
            f"{_SYMBOL.get(name, name)} {pos[k, 0]:.4f} {pos[k, 1]:.4f} {pos[k, 2]:.4f} "
            f"{name} {i} {int(chg[i])} {TYPE_NAMES[lat.site_type[i]]}"
        )
    from seilab.io import atomic_write_text

    return atomic_write_text("\n".join(lines) + "\n", path)

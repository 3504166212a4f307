"""DFT pair-bonding energies of the default model.

The values mirror the ``pairs`` table of the default (paper) model file: they are the
first-principles energies (eV) the paper compares its Bayesian-optimisation optimum with, and
the values at which pairs that are not optimised are held.  Keys are the pair names of
:data:`seilab.schema.PAIRS`.
"""

from __future__ import annotations

from types import MappingProxyType

from seilab import schema

#: DFT pair-bonding energies (eV) of the default model, keyed by pair name (e.g. ``"SFO-Li"``).
DFT_PAIR_ENERGIES: MappingProxyType[str, float] = MappingProxyType(
    {
        "Li-Li": 0.103728287,
        "F-Li": 0.714559923,
        "F-F": 0.03369,
        "F-SOL": 0.5,
        "SFO-Li": 0.714559923,
        "SFO-SFO": 0.03369,
        "SFO-SOL": 0.75,
        "O-Li": 0.802665683,
        "O-O": 0.061483735,
        "O-SOL": 0.5,
        "F5D-Li": 0.714559923,
        "F5D-F5D": 0.03369,
        "F5D-SOL": 0.75,
        "S-Li": 0.743882148,
        "S-S": 0.073475469,
        "S-SOL": 0.5,
        "N-Li": 0.900038843,
        "N-N": 0.11657537,
        "N-SOL": 0.5,
    }
)

assert tuple(DFT_PAIR_ENERGIES) == schema.PAIRS, "DFT table must list every pair of the schema"


def dft_pair_columns() -> dict[str, float]:
    """DFT energies keyed by data-set column (``e_pair_*_ev``).

    Returns
    -------
    dict
        ``{schema.pair_column(pair): energy_eV}`` for all 19 pairs.
    """
    return {schema.pair_column(p): float(v) for p, v in DFT_PAIR_ENERGIES.items()}

"""DFT pair-bonding energies, read from the default (paper) model file.

The model file's ``[pairs]`` table holds the first-principles energies (eV) the paper compares its
Bayesian-optimisation optimum with, and the values at which pairs that are not optimised are
held.  They are read from there (never typed again here).  Keys are the pair names of
:data:`seilab.schema.PAIRS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from seilab import schema

#: The model whose pair energies are the DFT values.
DFT_MODEL = "paper"


@cache
def dft_pair_energies(model: str = DFT_MODEL) -> MappingProxyType[str, float]:
    """DFT pair-bonding energies (eV) of a bundled model, keyed by pair name (``"SFO-Li"``)."""
    from seilab.model import load_model

    pairs = load_model(model).pair_energies()
    return MappingProxyType({p: float(pairs[p]) for p in schema.PAIRS})


#: DFT pair-bonding energies (eV) of the default model, keyed by pair name (e.g. ``"SFO-Li"``).
DFT_PAIR_ENERGIES: MappingProxyType[str, float] = dft_pair_energies()


def dft_pair_columns() -> dict[str, float]:
    """DFT energies keyed by data-set column (``e_pair_*_ev``).

    Returns
    -------
    dict
        ``{schema.pair_column(pair): energy_eV}`` for all 19 pairs.
    """
    return {schema.pair_column(p): float(v) for p, v in DFT_PAIR_ENERGIES.items()}


def full_energies(partial: Mapping[str, float]) -> dict[str, float]:
    """All 19 pair energies: the given ones, the DFT value for the others."""
    return {p: float(partial.get(p, DFT_PAIR_ENERGIES[p])) for p in schema.PAIRS}

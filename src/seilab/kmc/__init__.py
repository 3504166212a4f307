"""The kMC engine: Numba kernels, the cycling driver and the per-cycle table."""

from seilab.kmc.engine import RunResult, Simulation, simulate, write_table

__all__ = ["RunResult", "Simulation", "simulate", "write_table"]

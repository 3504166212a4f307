"""seilab: kinetic Monte Carlo of SEI growth on Li metal, campaigns and ML analysis."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seilab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load_model", "simulate"]


def __getattr__(name: str):
    # Lazy imports keep `import seilab` cheap (no Numba, no pandas) for CLI start-up and workers.
    if name == "load_model":
        from seilab.model import load_model

        return load_model
    if name == "simulate":
        from seilab.kmc import simulate

        return simulate
    raise AttributeError(f"module 'seilab' has no attribute {name!r}")

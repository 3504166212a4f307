"""Exceptions that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class SeilabError(Exception):
    """Base class of user-facing errors (bad input, bad folder, bad arguments)."""


class ModelError(SeilabError):
    """A model file or override is invalid; the message names the file, key and what is allowed."""


class CampaignError(SeilabError):
    """A campaign design or folder is invalid."""


class AnalysisError(SeilabError):
    """A data set cannot be analysed (empty folder, missing column, unknown parameter)."""


class MissingExtraError(SeilabError):
    """A command needs an optional part of seilab (an extra) that is not installed."""


#: Optional parts of seilab and the modules each provides (``pip install 'seilab[NAME]'``).
EXTRAS: dict[str, tuple[str, ...]] = {
    "ml": (
        "matplotlib",
        "sklearn",
        "shap",
        "optuna",
        "xgboost",
        "catboost",
        "lifelines",
        "torch",
    ),
    "cluster": ("distributed", "dask_jobqueue"),
}


def require_extra(extra: str, what: str) -> None:
    """Check, before any work, that the modules of an extra can be imported.

    Parameters
    ----------
    extra
        A key of :data:`EXTRAS`.
    what
        What needs it, as the user typed it (``"seilab analyze ce"``).

    Raises
    ------
    MissingExtraError
        "<what> needs the '<extra>' extra: pip install 'seilab[<extra>]'" (names the missing
        modules).
    """
    from importlib.util import find_spec

    missing = []
    for mod in EXTRAS[extra]:
        try:
            if find_spec(mod) is None:
                missing.append(mod)
        except (ImportError, ValueError):
            missing.append(mod)
    if missing:
        raise MissingExtraError(
            f"{what} needs the '{extra}' extra: pip install 'seilab[{extra}]' "
            f"(missing: {', '.join(missing)})"
        )

"""Verification simulations of the ``bo`` stage, through the campaign machinery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.optimize.space import RunSpecs
from seilab.errors import AnalysisError


# ---------------------------------------------------------------------- verification
def campaign_simulator_options(folder: str | Path | None) -> dict[str, Any]:
    """Simulator options of the campaign that produced a data set (its ``campaign.toml``).

    Verification must simulate what the surrogate learnt from: the same model, box, number of
    cycles and campaign-wide overrides (``--set``) as the campaign, or the simulated CE is not
    comparable with the predicted one.

    Parameters
    ----------
    folder
        Campaign folder; ``None`` or a folder without ``campaign.toml`` gives ``{}``.

    Returns
    -------
    dict
        Keyword options of ``seilab.campaign.run_param_sets``: ``base_model``, ``cycles``,
        ``box``, ``overrides`` and ``workers`` (those the file records).

    Raises
    ------
    AnalysisError
        When ``campaign.toml`` exists but is not valid TOML.
    """
    import tomllib

    if folder is None:
        return {}
    path = Path(folder) / schema.CAMPAIGN_CONFIG
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not valid TOML ({exc})") from None
    sim, exe = doc.get("simulator", {}), doc.get("execution", {})
    opts: dict[str, Any] = {}
    if sim.get("model") is not None:
        opts["base_model"] = str(sim["model"])
    if sim.get("cycles") is not None:
        opts["cycles"] = int(sim["cycles"])
    if sim.get("box") is not None:
        opts["box"] = [int(v) for v in sim["box"]]
    if sim.get("set"):
        opts["overrides"] = dict(sim["set"])
    if exe.get("backend", "process") == "process" and exe.get("workers") is not None:
        opts["workers"] = int(exe["workers"])
    return opts


def campaign_runner(**options: Any) -> RunSpecs:
    """The campaign machinery's runner ``seilab.campaign.run_param_sets`` as a ``run_specs``.

    Parameters
    ----------
    **options
        Keyword options of ``run_param_sets`` (``base_model``, ``cycles``, ``box``,
        ``overrides``, ``workers``, ``seed``, ...); ``None`` values are left out.

    Returns
    -------
    callable
        ``run_specs(param_sets, replicates, out_dir) -> DataFrame`` (one row per run).
    """
    from seilab.campaign import run_param_sets

    kwargs = {k: v for k, v in options.items() if v is not None}

    def run_specs(specs: list[dict[str, float]], replicates: int, out_dir: Path) -> pd.DataFrame:
        return run_param_sets(specs, replicates, out_dir, **kwargs)

    run_specs.options = kwargs  # type: ignore[attr-defined]  # part of the batch key
    return run_specs


def _simulated_column(df: pd.DataFrame) -> str:
    for c in ("ce_mean_pct", "ce_pct"):
        if c in df.columns:
            return c
    raise AnalysisError(
        f"run_specs returned columns {list(df.columns)}; expected 'spec' and 'ce_mean_pct'"
    )


def verify_campaign_dir(
    run_specs: RunSpecs, specs: list[dict[str, float]], replicates: int, out_dir: Path
) -> Path:
    """Campaign folder of one verification batch: ``out_dir/campaign-<key>``.

    The key hashes the parameter sets, the replicates and the runner's simulator options, so a
    resumed study whose best proposals changed (or a different ``--sim-cycles``) gets a new
    folder instead of a campaign folder that refuses different parameter sets.
    """
    ident = {
        "specs": specs,
        "replicates": int(replicates),
        "simulator": getattr(run_specs, "options", None),
    }
    from seilab.io import stable_hash

    return out_dir / f"campaign-{stable_hash(ident, 12)}"


def simulate(
    run_specs: RunSpecs, specs: list[dict[str, float]], replicates: int, out_dir: Path
) -> pd.DataFrame:
    """Run (or reuse) the simulator on parameter sets; per-spec replicate statistics.

    ``run_specs`` writes its campaign folder to :func:`verify_campaign_dir`; the per-run table it
    returns is kept beside it as ``results.parquet``, so a re-run with the same specs reuses it.

    Returns
    -------
    pandas.DataFrame
        One row per spec: ``spec``, ``simulated_ce_pct`` (replicate mean), ``simulated_std``,
        ``simulated_sem``, ``simulated_min``, ``simulated_max``, ``replicates`` (runs with a
        CE), ``runs_failed`` (runs without one: failed or no charge).
    """
    camp = verify_campaign_dir(run_specs, specs, replicates, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = camp.with_name(camp.name + "-results.parquet")
    if cache.is_file():
        raw = pd.read_parquet(cache)
    else:
        raw = run_specs(specs, replicates, camp)
        if not isinstance(raw, pd.DataFrame) or "spec" not in raw.columns:
            raise AnalysisError(
                "run_specs must return a DataFrame with a 'spec' column (index into the specs)"
            )
        raw.to_parquet(cache, index=False)
        (out_dir / f"{camp.name}-specs.json").write_text(
            json.dumps({"specs": specs, "replicates": replicates}, indent=1)
        )
    col = _simulated_column(raw)
    g = raw.groupby("spec")[col]
    stats = pd.DataFrame(
        {
            "simulated_ce_pct": g.mean(),
            "simulated_std": g.std(ddof=1),
            "simulated_min": g.min(),
            "simulated_max": g.max(),
            "replicates": g.count(),
            "runs_failed": g.size() - g.count(),
        }
    )
    stats["simulated_sem"] = stats["simulated_std"] / np.sqrt(stats["replicates"])
    return stats.reset_index()

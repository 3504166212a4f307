"""``seilab simulate`` and ``seilab model show|validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(help="Show or validate model files.", no_args_is_help=True)


def parse_sets(items: list[str] | None) -> dict:
    """Turn repeated ``NAME=VALUE`` options into an overrides dict (values parsed as TOML)."""
    from seilab.errors import ModelError
    from seilab.model import parse_value

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ModelError(f"--set {item!r}: expected NAME=VALUE, e.g. --set pair.Li-Li=0.3")
        key, val = item.split("=", 1)
        out[key.strip()] = parse_value(val.strip())
    return out


def simulate_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output Parquet file (one row per cycle).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Bundled model name or TOML file.")
    ] = "paper",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override NAME=VALUE (repeatable), e.g. pair.Li-Li=0.3."),
    ] = None,
    cycles: Annotated[
        int | None, typer.Option(help="Number of cycles (default: the model's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    box: Annotated[
        tuple[int, int, int] | None, typer.Option(help="Box in cubes: NX NY NZ.")
    ] = None,
    snapshots: Annotated[
        str, typer.Option(help="Cycles to write as extended XYZ, e.g. '1,50,100'.")
    ] = "",
    snapshot_dir: Annotated[
        Path | None, typer.Option(help="Folder for XYZ frames (default: OUT's stem + _xyz).")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Simulate charge/discharge cycling of a Li slab and write the per-cycle table."""
    from seilab.errors import ModelError
    from seilab.io import check_writable_dir, check_writable_file
    from seilab.kmc import simulate
    from seilab.model import load_model

    if out.suffix != ".parquet":
        raise ModelError(f"--out {out}: the output must be a .parquet file")
    check_writable_file(out)  # before the simulation, not after it
    m = load_model(model, parse_sets(set_))
    snaps: list[int] = []
    if snapshots:
        try:
            snaps = [int(s) for s in snapshots.split(",") if s.strip()]
        except ValueError:
            raise ModelError(
                f"--snapshots {snapshots!r}: expected cycle numbers like '1,50,100'"
            ) from None
    sdir = snapshot_dir or out.with_name(out.stem + "_xyz")
    if snaps:
        check_writable_dir(sdir, option="--snapshot-dir")
    res = simulate(
        m, cycles=cycles, seed=seed, box=box, snapshots=snaps, snapshot_dir=sdir, progress=progress
    )
    res.write(out)
    df = res.table
    ce = [v for v in df.column("ce_pct").to_pylist() if v == v] if df.num_rows else []
    mean = f"{sum(ce) / len(ce):.1f} %" if ce else "n/a"
    typer.echo(
        f"wrote {out}: {df.num_rows} cycles, end: {res.end_reason}, mean CE {mean}, "
        f"wall {res.metadata['wall_s']:.2f} s"
    )


@model_app.command("show")
def model_show(
    name: Annotated[str, typer.Argument(help="Bundled model name or TOML file.")] = "paper",
) -> None:
    """Print a model file (the default `paper` model unless NAME is given)."""
    from seilab.model import model_text

    typer.echo(model_text(name), nl=False)


@model_app.command("validate")
def model_validate(
    file: Annotated[str, typer.Argument(help="TOML model file or bundled name.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override NAME=VALUE (repeatable).")
    ] = None,
) -> None:
    """Check a model file; prints one line naming the file, key and what is allowed if invalid."""
    from seilab.model import load_model

    m = load_model(file, parse_sets(set_))
    typer.echo(f"{m.source}: valid model {m.name!r} (sha256 {m.sha256[:12]})")


@model_app.command("list")
def model_list() -> None:
    """List the bundled models."""
    from seilab.model import available_models

    for n in available_models():
        typer.echo(n)


def warmup_cmd() -> None:
    """Compile the simulator's kernels into Numba's cache (once per install; later runs load it)."""
    import time

    from seilab.kmc.engine import exercise_kernels
    from seilab.kmc.warmup import cache_dir, ensure_compiled

    t0 = time.perf_counter()
    spent = ensure_compiled(exercise_kernels)
    typer.echo(
        f"seilab kernels ready in {cache_dir()} "
        f"({'cache filled' if spent > 0 else 'already cached'}, {time.perf_counter() - t0:.1f} s)"
    )

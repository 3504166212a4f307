"""What every stage is: one step of ``seilab run`` into its own folder, with declared outputs.

A stage declares the names of the files it writes (module constants, imported by the report),
runs one pure analysis (settings in, result out), writes its outputs atomically
(:mod:`seilab.io`), saves its figures (:func:`seilab.plotting.style.save_figure`) and writes its
summary JSON last.  The summary lists what was written (``outputs``) and every declared output
that was not, with the reason (``skipped``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from seilab.io import atomic_write_json, versions

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from seilab.stages.presets import Preset


@dataclass
class StageContext:
    """What a stage needs besides its settings.

    Attributes
    ----------
    folder
        The run folder.
    preset, seed, model, workers, backend, scheduler, jobs
        The run's options (:class:`seilab.stages.runner.RunOptions`).
    progress
        Show progress bars and spinners.
    log
        Receives one line per event.
    dirs
        Stage name -> its folder (:data:`seilab.stages.registry.STAGE_DIRS`).
    """

    folder: Path
    preset: Preset
    seed: int = 0
    model: str = "paper"
    workers: int | None = None
    backend: str = "process"
    scheduler: str | None = None
    jobs: int = 2
    progress: bool = False
    log: Callable[[str], None] = print
    dirs: Mapping[str, str] = field(default_factory=dict)

    def stage_dir(self, name: str) -> Path:
        """Folder of a stage inside the run folder (``dirs``, from the registry)."""
        return self.folder / self.dirs.get(name, name)

    @contextmanager
    def spinner(self, text: str) -> Iterator[None]:
        """A rich spinner on stderr while the block runs (nothing without progress)."""
        if not self.progress:
            yield
            return
        from rich.console import Console

        with Console(stderr=True).status(text):
            yield

    @property
    def campaign(self) -> Path:
        """The campaign folder of the run."""
        return self.stage_dir("campaign")


def console_steps(show: bool) -> Callable[[str], AbstractContextManager[None]] | None:
    """A step hook for the analyses (:data:`seilab.analysis.ce.StepHook`) that shows progress.

    While a step runs, a rich spinner on stderr names it; when it ends, its wall time is logged
    (``dataset: 1.2 s``).  The analyses only time their steps and return the timings; printing
    them is the stage's business.

    Parameters
    ----------
    show
        ``False`` gives ``None`` (no display).
    """
    if not show:
        return None
    import time

    from rich.console import Console

    console = Console(stderr=True)

    @contextmanager
    def hook(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with console.status(f"{name} ..."):
            yield
        console.log(f"{name}: {time.perf_counter() - t0:.1f} s")

    return hook


class Stage:
    """Base class of a stage: a name, a folder, declared outputs, settings and ``run``.

    Subclasses set the class attributes and implement :meth:`settings` and :meth:`run`.
    """

    #: Registry key and ``seilab-run.json`` entry.
    name: ClassVar[str] = ""
    #: One-line title shown in progress and in the report's overview.
    title: ClassVar[str] = ""
    #: Sub-folder of the run folder (empty: the run folder itself).
    folder: ClassVar[str] = ""
    #: The summary file, written last: the stage's completion mark.
    summary: ClassVar[str] = "summary.json"
    #: Upstream stage whose input key enters this stage's key.
    after: ClassVar[str | None] = None

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """Every file the stage may write into its folder (the summary included)."""
        raise NotImplementedError

    def settings(self, ctx: StageContext) -> dict[str, Any]:
        """The settings that decide the stage's outputs (hashed for resume)."""
        return {}

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        """Compute and write the outputs into ``out``; return ``{"note": ...}`` and extras."""
        raise NotImplementedError


class OutputWriter:
    """Writes a stage's declared outputs atomically and keeps the record for its summary.

    Parameters
    ----------
    out
        The stage folder (created).
    declared
        The declared output names; writing any other name is a programming error.
    """

    def __init__(self, out: Path, declared: Iterable[str]) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.declared = tuple(declared)
        self.written: list[str] = []
        self.skipped: dict[str, str] = {}

    def path(self, name: str) -> Path:
        if name not in self.declared:
            raise ValueError(f"{name!r} is not a declared output of {self.out.name}")
        return self.out / name

    def _done(self, name: str) -> Path:
        if name not in self.written:
            self.written.append(name)
        self.skipped.pop(name, None)
        return self.out / name

    def csv(self, name: str, frame: pd.DataFrame, *, index: bool = False) -> Path:
        """Write a table as CSV."""
        from seilab.io import atomic_write_csv

        atomic_write_csv(frame, self.path(name), index=index)
        return self._done(name)

    def parquet(self, name: str, frame: Any, *, index: bool = False) -> Path:
        """Write a table (pandas or pyarrow) as Parquet."""
        from seilab.io import atomic_write_parquet

        atomic_write_parquet(frame, self.path(name), index=index)
        return self._done(name)

    def figure(self, name: str, fig: Figure) -> Path:
        """Save a figure as PNG (one DPI, one style)."""
        from seilab.plotting.style import save_figure

        save_figure(fig, self.path(name))
        return self._done(name)

    def json(self, name: str, obj: Any) -> Path:
        """Write JSON."""
        atomic_write_json(obj, self.path(name))
        return self._done(name)

    def mark(self, name: str) -> Path:
        """Record a declared file written by a library (e.g. an Optuna database)."""
        return self._done(name)

    def skip(self, name: str, reason: str) -> None:
        """Record why a declared output is not written."""
        self.path(name)
        if name not in self.written:
            self.skipped[name] = reason

    def finish(self, summary_name: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Write the summary last, listing what was written and what was skipped (and why).

        Every declared output neither written nor skipped is recorded as skipped with the reason
        "not produced", so the summary accounts for every declared name.
        """
        for name in self.declared:
            if name != summary_name and name not in self.written and name not in self.skipped:
                self.skipped[name] = "not produced by this run"
        doc = {
            **summary,
            "outputs": [n for n in self.written if n != summary_name],
            "skipped": dict(self.skipped),
            "versions": summary.get("versions") or versions(),
        }
        self.json(summary_name, doc)
        return doc


def check_command(command: str, folder: Path, out: Path) -> None:
    """Before any work of an analysis command: its extra is installed, ``folder`` is a campaign
    and ``out`` can be written (one clear line otherwise, nothing created)."""
    from seilab.analysis.dataset import check_inputs
    from seilab.errors import require_extra

    require_extra("ml", command)
    check_inputs(folder, out)

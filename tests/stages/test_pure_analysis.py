"""``seilab.analysis`` is pure: no print, no file written, no figure, no simulation, no display.

A static check of the source; the commands that print results (``seilab analyze``,
``seilab optimize``) live in the stage layer (:mod:`seilab.stages.cli`)."""

from __future__ import annotations

import ast
from pathlib import Path

import seilab.analysis

ROOT = Path(seilab.analysis.__file__).parent
COMMAND_MODULES: set[str] = set()  # none left in seilab.analysis
#: Calls that print, write files or draw.
BANNED_CALLS = {
    "print",
    "to_csv",
    "to_parquet",
    "to_pickle",
    "write_text",
    "write_bytes",
    "mkdir",
    "savefig",
    "dump",
    "run_param_sets",
    "run_campaign",
    "simulate",
}
#: Modules the analysis must not import (display, figures, the stage layer, the engine).
BANNED_IMPORTS = ("rich", "matplotlib", "seilab.plotting", "seilab.stages", "seilab.kmc")


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.name not in COMMAND_MODULES)


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name in BANNED_CALLS:
                found.append(f"{path.name}:{node.lineno} calls {name}()")
            if name == "open" and any(
                isinstance(a, ast.Constant)
                and isinstance(a.value, str)
                and set(a.value) & set("wax")
                for a in [*node.args, *(k.value for k in node.keywords)]
            ):
                found.append(f"{path.name}:{node.lineno} opens a file for writing")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for n in names:
                if any(n == b or n.startswith(b + ".") for b in BANNED_IMPORTS):
                    found.append(f"{path.name}:{node.lineno} imports {n}")
    return found


def test_the_scan_sees_the_analysis_modules():
    names = {p.name for p in _modules()}
    assert {"ce.py", "space.py", "surrogate.py", "networks.py", "recipe.py"} <= names


def test_the_scan_finds_what_it_bans(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import rich\nfrom seilab.plotting import ce\nprint(1)\ndf.to_csv('x')\nopen('f', 'w')\n"
    )
    assert len(_offences(bad)) == 5


def test_analysis_prints_writes_draws_and_simulates_nothing():
    found = [o for p in _modules() for o in _offences(p)]
    assert found == []

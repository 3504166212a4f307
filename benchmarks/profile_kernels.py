"""Where the compiled kernels spend their time, by source line and by function (Linux perf).

Numba's machine code has no symbols that perf can read, so this script compiles the kernels
afresh with line information (``NUMBA_DEBUGINFO=1``, an empty ``NUMBA_CACHE_DIR``), keeps the
object code of every compiled kernel and where it was loaded, runs a simulation under
``perf record`` (user-space clock samples) and maps each sample through the object code to a
line of ``kernels.py`` (``addr2line``).  Code that LLVM inlined is reported at the line it came
from, or at the line of its call; memory stalls count where they occur, so the table measures
time, not instructions (use cachegrind for those).

With line information LLVM keeps some kernels out of line that the production build inlines
(``change_site`` into ``run_half``), so the line table overstates call costs;
``--production`` profiles the kernels as they run and reports only the share of each
compiled kernel.

Needs ``perf`` (with ``kernel.perf_event_paranoid`` <= 2) and binutils (``nm``, ``objdump``,
``addr2line``).  The compilation takes about a minute and is not counted.

Usage::

    python benchmarks/profile_kernels.py --run random-00003-r0 --steps 400000   # a slow set
    python benchmarks/profile_kernels.py --default 4                             # 4 default runs
    python benchmarks/profile_kernels.py --run random-00003-r0 --production      # kernels as run
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _sections(path: str) -> dict[str, int]:
    out = subprocess.run(["objdump", "-h", path], capture_output=True, text=True).stdout
    sizes = {}
    for ln in out.splitlines():
        p = ln.split()
        if len(p) > 2 and p[1] in (".text", ".ltext"):
            sizes[p[1]] = int(p[2], 16)
    return sizes


def child(args: argparse.Namespace, work: Path) -> None:
    """Compile, record where each kernel's code lies, then simulate (run under perf)."""
    from seilab.kmc import kernels as K
    from seilab.kmc import simulate

    simulate("paper", cycles=1, seed=1, box=(4, 4, 16))  # compiles every kernel
    regions = []
    for name in dir(K):
        disp = getattr(K, name)
        for k, cres in enumerate(getattr(disp, "overloads", {}).values()):
            lib = cres.library
            try:
                obj = lib.serialize_using_object_code()[2][0]
            except RuntimeError:  # loaded from a cache: no object code to map
                continue
            path = str(work / f"{name}.{k}.o")
            Path(path).write_bytes(obj)
            entry = cres.fndesc.llvm_func_name
            nm = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True)
            off = next(
                (int(p[0], 16) for p in map(str.split, nm.stdout.splitlines()) if p[-1] == entry),
                None,
            )
            secs = _sections(path)
            if off is None or not secs:
                continue
            sec = ".ltext" if ".ltext" in secs else ".text"
            base = lib.get_pointer_to_function(entry) - off
            regions.append(
                {"name": name, "path": path, "base": base, "size": secs[sec], "sec": sec}
            )
    if not regions:
        raise SystemExit("no kernel object code found (was the cache empty?)")
    (work / "regions.json").write_text(json.dumps(regions))
    if args.run:
        sys.path.insert(0, str(HERE))
        from slow_sets import simulate_run

        simulate_run(args.run, args.steps)
    else:
        for seed in range(args.default):
            simulate("paper", seed=seed)


def report(work: Path, top: int, debuginfo: bool = True) -> None:
    """Samples per compiled kernel, and (with line information) per function and line."""
    regions = sorted(json.loads((work / "regions.json").read_text()), key=lambda r: r["base"])
    bases = [r["base"] for r in regions]
    ips = subprocess.run(
        ["perf", "script", "-i", str(work / "perf.data"), "-F", "ip"],
        capture_output=True,
        text=True,
    ).stdout.split()
    hits: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for s in ips:
        ip = int(s, 16)
        k = bisect.bisect_right(bases, ip) - 1
        if k >= 0 and 0 <= ip - regions[k]["base"] < regions[k]["size"]:
            hits[k][ip - regions[k]["base"]] += 1
    inside = sum(sum(c.values()) for c in hits.values())
    print(f"{len(ips)} samples, {inside} in the kernels' code")
    if not inside:
        return
    by_kernel: collections.Counter = collections.Counter()
    for k, cnt in hits.items():
        by_kernel[regions[k]["name"]] += sum(cnt.values())
    print("\nshare  compiled kernel (its code and what LLVM inlined into it)")
    for name, c in by_kernel.most_common(top):
        print(f"{100 * c / inside:5.1f}  {name}")
    if not debuginfo:
        return
    lines: collections.Counter = collections.Counter()
    for k, cnt in hits.items():
        r = regions[k]
        offs = sorted(cnt)
        out = subprocess.run(
            ["addr2line", "-a", "-e", r["path"], "-j", r["sec"], *map(hex, offs)],
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        where = {int(out[i], 16): out[i + 1] for i in range(0, len(out) - 1, 2)}
        for o, c in cnt.items():
            lines[where.get(o, f"{r['name']}:?")] += c
    src = (HERE.parent / "src" / "seilab" / "kmc" / "kernels.py").read_text().split("\n")
    defs = [(i + 1, m.group(1)) for i, ln in enumerate(src) if (m := re.match(r"def (\w+)", ln))]

    def function(loc: str) -> str:
        m = re.search(r"kernels\.py:(\d+)", loc)
        if not m:
            return "(no line)"
        n = int(m.group(1))
        return [name for start, name in defs if start <= n][-1] if defs[0][0] <= n else "?"

    by_fn: collections.Counter = collections.Counter()
    for loc, c in lines.items():
        by_fn[function(loc)] += c
    print("\nshare  function (inlined code counted where it came from)")
    for name, c in by_fn.most_common(top):
        print(f"{100 * c / inside:5.1f}  {name}")
    print("\nshare  line")
    for loc, c in lines.most_common(top):
        m = re.search(r"kernels\.py:(\d+)", loc)
        text = src[int(m.group(1)) - 1].strip()[:72] if m else ""
        print(f"{100 * c / inside:5.1f}  {loc.rsplit('/', 1)[-1][:20]:20s} {text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="a run of the paper design (benchmarks/slow_sets.py ids)")
    ap.add_argument("--steps", type=int, default=400_000, help="step budget of --run")
    ap.add_argument("--default", type=int, default=4, help="default paper runs (no --run)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--production",
        action="store_true",
        help="the kernels as they run (no line information: LLVM inlines differently with it)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args, Path(args.child))
        return
    with tempfile.TemporaryDirectory(prefix="seilab-prof-") as d:
        work = Path(d)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "cache"))
        if not args.production:
            env["NUMBA_DEBUGINFO"] = "1"
        cmd = [sys.executable, __file__, "--child", d, "--steps", str(args.steps)]
        cmd += ["--default", str(args.default)] + (["--run", args.run] if args.run else [])
        rec = ["perf", "record", "-q", "-F", "2000", "-e", "cpu-clock:u", "-o", f"{d}/perf.data"]
        subprocess.run(rec + cmd, env=env, check=True, stderr=subprocess.DEVNULL)
        report(work, args.top, debuginfo=not args.production)


if __name__ == "__main__":
    main()

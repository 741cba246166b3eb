"""Run every benchmark (``benchmarks/bench_*.py``) and write JSON + PNG results to ``benchmarks/results/``.

Usage (from the repository root)::

    python -m benchmarks.run                 # all benchmarks, full sizes -> benchmarks/results/
    python -m benchmarks.run --quick         # tiny sizes (seconds)      -> benchmarks/results/quick/
    python -m benchmarks.run --only exact    # one benchmark (bench_exact.py); repeat --only for several
    python -m benchmarks.run --list          # list the benchmarks found

Each benchmark runs in its own Python process (``python -m benchmarks.bench_<name>``) so that one
benchmark's memory and thread pools never affect another's timings. ``OMP_WAIT_POLICY=PASSIVE`` is set
for them unless already set: on a shared, oversubscribed CPU, spinning OpenMP workers made LAPACK calls
10-50x slower and the timings meaningless. Options after ``--`` are passed to every benchmark.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def discover() -> list[str]:
    """Names of the benchmarks: ``bench_<name>.py`` files next to this script, sorted."""
    return sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats; results/quick/")
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder for every benchmark")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        wanted = [n.removeprefix("bench_").removesuffix(".py") for n in args.only]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; available: {names}")
        names = [n for n in names if n in wanted]

    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    failed: list[str] = []
    for name in names:
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"]
        if args.quick:
            cmd.append("--quick")
        if args.out is not None:
            cmd += ["--out", str(args.out)]
        cmd += extra
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.1f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

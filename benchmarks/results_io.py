"""Where benchmark results go and what they record: the common command line (``--quick``, ``--out``),
the JSON writer (with the machine's description), and the figure writer.

Every ``benchmarks/bench_<name>.py`` is a module with a ``main(argv=None)`` that parses its options with
`make_parser`, measures (`benchmarks.timing`, `benchmarks.memory`), writes ``<out>/<name>.json`` with
`write_json` and its plot with `save_figure`. Run one with ``python -m benchmarks.bench_<name>``, all with
``python -m benchmarks.run`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
#: Committed results (JSON + PNG). ``--quick`` runs go to ``RESULTS_DIR / "quick"`` (git-ignored).
RESULTS_DIR = ROOT / "benchmarks" / "results"
#: Plots written to RESULTS_DIR are also copied here so that the strict docs build finds them.
DOCS_ASSETS = ROOT / "docs" / "assets" / "benchmarks"


def make_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark accepts.

    ``--quick``: tiny sizes and few repeats (a smoke run, seconds); results go to ``results/quick/``
    so that they never overwrite the committed ones. ``--out DIR``: write results elsewhere.
    Scripts may add their own options to the returned parser.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    return parser


def output_dir(args: argparse.Namespace) -> Path:
    """The folder results go to: ``--out`` if given, else ``results/quick`` for ``--quick``, else ``results``."""
    out = args.out if getattr(args, "out", None) is not None else None
    if out is None:
        out = RESULTS_DIR / "quick" if getattr(args, "quick", False) else RESULTS_DIR
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def write_json(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``payload`` to ``<out_dir>/<name>.json`` with ``"benchmark"`` and ``"machine"`` keys added.

    ``machine`` is `machine_info` unless the payload already has one. Returns the path.
    """
    out_dir = RESULTS_DIR if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "machine": payload.get("machine") or machine_info()}
    data.update({k: v for k, v in payload.items() if k != "machine"})
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    return path


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend (install the ``bench`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, name: str, out_dir: Path | None = None, *, dpi: int = 120) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` and close it.

    When ``out_dir`` is the committed results folder the PNG is also copied to ``docs/assets/benchmarks/``
    (the docs page shows it from there).
    """
    out_dir = RESULTS_DIR if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    if out_dir.resolve() == RESULTS_DIR.resolve():
        DOCS_ASSETS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_ASSETS / path.name)
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: versions, threads, CPU/GPU, memory, load and the UTC date.

    ``torch.set_num_threads`` is left at torch's default; the value in use is recorded. The load average
    is recorded too, since the benchmark machines may be shared.
    """
    import numpy

    import renyi_info

    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "renyi_info": renyi_info.__version__,
        "git_commit": _git_commit(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_total_bytes": _total_memory_bytes(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy_env": os.environ.get("OMP_WAIT_POLICY"),
        "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = {
            "device": torch.cuda.get_device_name(0),
            "version": torch.version.cuda,
            "device_count": torch.cuda.device_count(),
        }
    return info

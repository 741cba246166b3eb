"""Peak memory of one call: `peak_memory` (resident memory, measured in a fresh subprocess, with an
optional address-space cap that turns an out-of-memory run into ``{"oom": True}``) and `cuda_peak_memory`.

The subprocess is ``python -m benchmarks.memory --memory-child SPEC``.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.results_io import ROOT

_CHILD_FLAG = "--memory-child"
_RESULT_MARK = "@@PEAK_MEMORY@@"


def _maxrss_bytes() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmSize``, ``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _vm_size_bytes() -> int | None:
    return _proc_status_bytes("VmSize")


def _reset_high_water_mark() -> bool:
    """Reset the peak-RSS mark ``VmHWM`` to the current RSS (Linux >= 4.0); False where not possible.

    ``ru_maxrss`` alone cannot be reset: memory freed before the baseline (import and set-up transients)
    would hide the first part of the measured call's own allocations.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _proc_status_bytes("VmHWM") is not None


_OOM_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory", "cannot allocate memory")


def _memory_child(spec_json: str) -> None:
    """Body of the subprocess started by `peak_memory` (prints one marked JSON line)."""
    spec = json.loads(spec_json)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    # Start the thread pools and LAPACK once so that their memory is part of the baseline.
    a = torch.randn(64, 64, dtype=torch.float64)
    torch.linalg.eigvalsh(a @ a.mT)
    import renyi_info  # noqa: F401

    baseline_imports = _maxrss_bytes()
    module_name, _, func_name = spec["target"].partition(":")
    make = getattr(importlib.import_module(module_name), func_name)
    run = make(**spec.get("kwargs", {}))
    gc.collect()
    baseline_maxrss = _maxrss_bytes()
    use_hwm = _reset_high_water_mark()
    baseline = _proc_status_bytes("VmHWM") if use_hwm else baseline_maxrss
    result: dict[str, Any] = {
        "oom": False,
        "error": None,
        "measure": "VmHWM reset via /proc/self/clear_refs" if use_hwm else "ru_maxrss",
        "baseline_imports_bytes": baseline_imports,
        "baseline_bytes": baseline,
        "limit_bytes": spec.get("limit_bytes"),
    }
    if spec.get("limit_bytes"):
        vm = _vm_size_bytes()
        if vm is not None:
            cap = vm + int(spec["limit_bytes"])
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                cap = min(cap, hard)
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        run()
    except MemoryError as exc:
        result.update(oom=True, error=f"MemoryError: {exc}")
    except RuntimeError as exc:
        if any(m in str(exc).lower() for m in _OOM_MESSAGES):
            result.update(oom=True, error=f"RuntimeError: {str(exc)[:300]}")
        else:
            raise
    maxrss = _maxrss_bytes()
    peak_total = (_proc_status_bytes("VmHWM") or maxrss) if use_hwm else maxrss
    result["peak_total_bytes"] = peak_total
    result["peak_bytes"] = None if result["oom"] else max(peak_total - baseline, 0)
    result["ru_maxrss_delta_bytes"] = maxrss - baseline_maxrss
    print(_RESULT_MARK + json.dumps(result), flush=True)


def peak_memory(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    limit_bytes: int | None = None,
    threads: int | None = None,
    timeout_s: float = 900.0,
) -> dict[str, Any]:
    """Peak resident memory used by one call, measured in a fresh Python subprocess.

    ``target`` is ``"module:function"`` (importable from the repository root, e.g.
    ``"benchmarks.bench_fused:memory_case"``); ``function(**kwargs)`` does the set-up (builds the inputs)
    and returns a zero-argument callable, which is called once. The child records the peak resident
    set after imports and set-up (the baseline), then after the call; ``peak_bytes`` is the difference,
    i.e. the memory the call itself added on top of its inputs. On Linux the peak mark (``VmHWM``) is
    reset to the current RSS at the baseline (``/proc/self/clear_refs``), so that import transients do
    not hide part of the call's peak; elsewhere ``ru_maxrss`` (``resource.getrusage``) is used as is.
    ``ru_maxrss_delta_bytes`` (``ru_maxrss`` after minus before the call) is always recorded too.

    Args:
        target: ``"module:function"``.
        kwargs: JSON-serialisable keyword arguments for the set-up function.
        limit_bytes: if given, the child's address space (``RLIMIT_AS``) is capped at its size after
            set-up plus this many bytes, so that an allocation beyond it fails inside the child and is
            recorded as ``{"oom": True}`` instead of exhausting the machine.
        threads: ``torch.set_num_threads`` in the child (default: torch's default).
        timeout_s: the child is killed after this long (recorded as an error).

    Returns:
        ``{"oom", "peak_bytes", "peak_total_bytes", "baseline_bytes", "baseline_imports_bytes",
        "ru_maxrss_delta_bytes", "measure", "limit_bytes", "error"}``; ``peak_bytes`` is ``None`` when the call ran out of memory.
        A child killed by a signal under a cap (the C++ allocator may abort) also counts as ``oom``.
    """
    spec = {"target": target, "kwargs": kwargs or {}, "limit_bytes": limit_bytes, "threads": threads}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, "-m", "benchmarks.memory", _CHILD_FLAG, json.dumps(spec)]
    base: dict[str, Any] = {
        "oom": False,
        "peak_bytes": None,
        "peak_total_bytes": None,
        "baseline_bytes": None,
        "baseline_imports_bytes": None,
        "ru_maxrss_delta_bytes": None,
        "measure": None,
        "limit_bytes": limit_bytes,
        "error": None,
    }
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        base["error"] = f"timeout after {timeout_s} s"
        return base
    for line in proc.stdout.splitlines():
        if line.startswith(_RESULT_MARK):
            base.update(json.loads(line[len(_RESULT_MARK) :]))
            return base
    tail = (proc.stderr or proc.stdout)[-500:]
    if proc.returncode < 0 and limit_bytes is not None:
        base.update(oom=True, error=f"killed by signal {-proc.returncode} under the memory cap")
    elif limit_bytes is not None and any(m in tail.lower() for m in (*_OOM_MESSAGES, "bad_alloc")):
        base.update(oom=True, error=tail.strip())
    else:
        base["error"] = f"exit code {proc.returncode}: {tail.strip()}"
    return base


def cuda_peak_memory(fn: Callable[[], Any], device: str | torch.device = "cuda") -> int:
    """Peak CUDA memory (bytes) allocated by one ``fn()`` call above what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == _CHILD_FLAG:
        _memory_child(sys.argv[2])
    else:
        sys.exit("benchmarks/memory.py is a library; run `python -m benchmarks.run` instead")

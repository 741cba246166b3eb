"""Shared machinery for the benchmarks: timing, peak memory, machine metadata, results I/O and the
naive research-code references that renyi_info is compared against.

Every ``benchmarks/bench_<name>.py`` is a module with a ``main(argv=None)`` that parses its options with
:func:`make_parser` (``--quick``, ``--out``), measures with :func:`time_fn` / :func:`peak_memory`, writes
``<out>/<name>.json`` with :func:`write_json` and its plot with :func:`save_figure`. Run them all with
``python -m benchmarks.run`` (see ``benchmarks/README.md``).

Stable API (other benchmark scripts rely on it):

* :func:`make_parser`, :func:`output_dir` -- command line (``--quick``, ``--out``) and where results go;
* :func:`time_fn` -- median wall time of a callable (warm-up, repeats, optional time budget, CUDA sync);
  :func:`time_interleaved` -- the same for several callables timed round-robin (they share the load);
* :func:`make_step` -- a forward or forward+backward closure over fixed inputs;
* :func:`peak_memory` -- peak RSS of a callable in a fresh subprocess, optional address-space cap (an
  out-of-memory run is recorded as ``{"oom": True}``); :func:`cuda_peak_memory` for GPU memory;
* :func:`machine_info`, :func:`write_json`, :func:`save_figure`, :func:`pyplot`;
* :func:`features`, :func:`paired_features`, :func:`max_rel_diff`;
* naive references :func:`naive_gram`, :func:`naive_renyi_entropy`, :func:`naive_entropy`,
  :func:`naive_joint_entropy`, :func:`naive_mutual_information` (materialised normalised Grams,
  materialised Hadamard products, full ``torch.linalg.eigh`` with eigenvectors, autograd backward,
  results in bits).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import importlib
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
#: Committed results (JSON + PNG). ``--quick`` runs go to ``RESULTS_DIR / "quick"`` (git-ignored).
RESULTS_DIR = ROOT / "benchmarks" / "results"
#: Plots written to RESULTS_DIR are also copied here so that the strict docs build finds them.
DOCS_ASSETS = ROOT / "docs" / "assets" / "benchmarks"

_CHILD_FLAG = "--memory-child"
_RESULT_MARK = "@@PEAK_MEMORY@@"

# ----------------------------------------------------------------------------------------------------
# command line and output


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

    ``machine`` is :func:`machine_info` unless the payload already has one. Returns the path.
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


# ----------------------------------------------------------------------------------------------------
# machine metadata


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


# ----------------------------------------------------------------------------------------------------
# timing


def _sync(device: str | torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 5,
    max_time_s: float | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Wall time of ``fn()`` with :func:`time.perf_counter`: ``warmup`` untimed calls, then ``repeats`` timed.

    Python's garbage collector runs once before the timed calls and is off during them (as in ``timeit``).

    Args:
        fn: a zero-argument callable (see :func:`make_step`).
        warmup: untimed calls first (allocator, thread pools, kernel caches).
        repeats: timed calls; the median is the headline number.
        max_time_s: stop repeating once the timed calls have taken this long (at least one is made),
            so that slow configurations cost a bounded time.
        device: a CUDA device to synchronise before and after each call (``None``: CPU, no sync).

    Returns:
        ``{"median_s", "min_s", "max_s", "repeats", "times_s"}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for _ in range(max(warmup, 0)):
        fn()
    _sync(device)
    times: list[float] = []
    spent = 0.0
    with _gc_paused():
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            spent += elapsed
            if max_time_s is not None and spent >= max_time_s:
                break
    return _summary(times)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Collect once, then keep Python's cyclic garbage collector off while timing (as ``timeit`` does)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = 1,
    repeats: int = 5,
    max_time_s: float | None = None,
    device: str | torch.device | None = None,
) -> dict[str, dict[str, Any]]:
    """Time several callables round-robin (A, B, C, A, B, C, ...) so that they see the same machine load.

    Same arguments as :func:`time_fn`; ``max_time_s`` applies to each callable separately (one that has
    used its budget stops repeating while the others go on). Returns ``{name: time_fn-style dict}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for _ in range(max(warmup, 0)):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    with _gc_paused():
        for _ in range(repeats):
            for name, fn in fns.items():
                if max_time_s is not None and times[name] and sum(times[name]) >= max_time_s:
                    continue
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - start)
    return {name: _summary(ts) for name, ts in times.items()}


def _summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": len(times),
        "times_s": times,
    }


def make_step(
    fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], *, backward: bool
) -> Callable[[], None]:
    """A closure evaluating ``fn(*inputs)`` (forward, under ``torch.no_grad``) or forward plus backward.

    For ``backward=True`` the inputs are detached leaf copies requiring grad and the closure calls
    ``torch.autograd.grad(fn(*leaves).sum(), leaves)`` (no gradient accumulates between calls).
    """
    if not backward:
        frozen = [t.detach() for t in inputs]

        def forward() -> None:
            with torch.no_grad():
                fn(*frozen)

        return forward

    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]

    def forward_backward() -> None:
        out = fn(*leaves)
        torch.autograd.grad(out.sum(), leaves)

    return forward_backward


# ----------------------------------------------------------------------------------------------------
# memory


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
    """Body of the subprocess started by :func:`peak_memory` (prints one marked JSON line)."""
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
    cmd = [sys.executable, "-m", "benchmarks.common", _CHILD_FLAG, json.dumps(spec)]
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


# ----------------------------------------------------------------------------------------------------
# inputs and comparisons


def features(
    n: int,
    d: int,
    *,
    seed: int = 0,
    batch: Sequence[int] = (),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Gaussian features ``(*batch, n, d)`` from a seeded generator (reproducible across runs)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, d, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)


def paired_features(
    n: int,
    dx: int,
    dy: int,
    *,
    noise: float = 1.0,
    seed: int = 0,
    batch: Sequence[int] = (),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dependent views ``x`` ``(*batch, n, dx)`` and ``y = x W + noise * e`` ``(*batch, n, dy)``.

    The mutual information between them is clearly non-zero, so relative differences of MI values are
    meaningful.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, dx, generator=gen, dtype=torch.float64)
    w = torch.randn(dx, dy, generator=gen, dtype=torch.float64) / math.sqrt(dx)
    y = x @ w + noise * torch.randn(*batch, n, dy, generator=gen, dtype=torch.float64)
    return x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


def max_rel_diff(value: torch.Tensor | float, reference: torch.Tensor | float) -> float:
    """``max |value - reference| / max(|reference|, tiny)`` over all elements, as a Python float."""
    v = torch.as_tensor(value, dtype=torch.float64)
    r = torch.as_tensor(reference, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    return float(((v - r).abs() / r.abs().clamp_min(tiny)).max())


# ----------------------------------------------------------------------------------------------------
# naive references, written the way research code does it


def naive_gram(x: torch.Tensor, kernel: str = "cosine", sigma: float | None = None) -> torch.Tensor:
    """Trace-normalised Gram ``K / tr K`` of ``x`` ``(..., n, d)``, fully materialised.

    Kernels: ``cosine`` (F.normalize then ``x xᵀ``), ``linear`` (``x xᵀ``), ``gaussian``
    (``exp(-cdist(x, x)² / (2σ²))``).
    """
    if kernel == "cosine":
        z = torch.nn.functional.normalize(x, dim=-1)
        k = z @ z.transpose(-2, -1)
    elif kernel == "linear":
        k = x @ x.transpose(-2, -1)
    elif kernel == "gaussian":
        if sigma is None:
            raise ValueError("naive_gram: kernel='gaussian' needs sigma")
        k = torch.exp(-(torch.cdist(x, x) ** 2) / (2 * sigma**2))
    else:
        raise ValueError(f"naive_gram: kernel must be 'cosine', 'linear' or 'gaussian'; got {kernel!r}")
    trace = torch.diagonal(k, dim1=-2, dim2=-1).sum(-1)
    return k / trace[..., None, None]


def naive_renyi_entropy(a: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rényi entropy in bits of a trace-one PSD matrix ``a``: full ``eigh`` (eigenvectors too), ``|λ|^α``.

    ``alpha = 1`` gives von Neumann's ``-Σ λ log2 λ``. This is the common research snippet; its
    gradient comes from autograd through ``torch.linalg.eigh``.
    """
    eigenvalues, _eigenvectors = torch.linalg.eigh(a)
    lam = torch.abs(eigenvalues)
    if alpha == 1:
        return -(lam * torch.log2(lam.clamp_min(1e-30))).sum(-1)
    return torch.log2(torch.sum(lam**alpha, dim=-1)) / (1 - alpha)


def naive_entropy(
    x: torch.Tensor, alpha: float = 2.0, kernel: str = "cosine", sigma: float | None = None
) -> torch.Tensor:
    """``S_α(K_x / tr K_x)`` in bits, naively (materialised Gram, full ``eigh``)."""
    return naive_renyi_entropy(naive_gram(x, kernel, sigma), alpha)


def naive_joint_entropy(
    *xs: torch.Tensor, alpha: float = 2.0, kernel: str = "cosine", sigma: float | None = None
) -> torch.Tensor:
    """Joint entropy in bits: Hadamard product of the normalised Grams, renormalised, full ``eigh``."""
    a = naive_gram(xs[0], kernel, sigma)
    for x in xs[1:]:
        a = a * naive_gram(x, kernel, sigma)
    trace = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1)
    return naive_renyi_entropy(a / trace[..., None, None], alpha)


def naive_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
) -> torch.Tensor:
    """``I_α(x; y) = S(A) + S(B) - S(A∘B / tr(A∘B))`` in bits, naively (three full ``eigh`` calls)."""
    a = naive_gram(x, kernel, sigma)
    b = naive_gram(y, kernel, sigma)
    ab = a * b
    ab = ab / torch.diagonal(ab, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    return naive_renyi_entropy(a, alpha) + naive_renyi_entropy(b, alpha) - naive_renyi_entropy(ab, alpha)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == _CHILD_FLAG:
        _memory_child(sys.argv[2])
    else:
        sys.exit("benchmarks/common.py is a library; run `python -m benchmarks.run` instead")

"""Wall-clock timing of benchmark calls: `time_fn` (median of repeats after warm-up), `time_interleaved`
(several callables round-robin, so that they share the machine's load) and `make_step` (a forward or
forward+backward closure over fixed inputs).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch


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
    """Wall time of ``fn()`` with `time.perf_counter`: ``warmup`` untimed calls, then ``repeats`` timed.

    Python's garbage collector runs once before the timed calls and is off during them (as in ``timeit``).

    Args:
        fn: a zero-argument callable (see `make_step`).
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

    Same arguments as `time_fn`; ``max_time_s`` applies to each callable separately (one that has
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

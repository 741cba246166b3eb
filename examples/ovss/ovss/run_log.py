"""What a run reports: the ``metrics.jsonl`` log (one run per folder) and progress on a terminal or in a file.

``metrics.jsonl`` holds one JSON record per line, each with the run's ``run`` id and its
``iteration``: training records (``loss``, its terms, ``grad_norm``, ``lr``) and evaluation records
(``eval``, ``mIoU``). Rules that keep one run per log:

- a new run refuses a folder that already holds another run's files (`check_fresh_output_dir`);
- a resumed run rewinds the log to the checkpoint's iteration (`MetricsLog.open`), so replayed
  iterations are never written twice;
- readers take one run (`read_metrics`: the last run id in the file).

Progress: a tqdm bar when the stream is a terminal, otherwise a plain line at most every
``interval`` seconds (and at the end), so a log file gets a few readable lines, not every update.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RUN_FILES",
    "MetricsLog",
    "Progress",
    "check_fresh_output_dir",
    "read_metrics",
    "remove_run_files",
]

#: Files and folders a run writes into its output folder (the data root may live there too: kept).
RUN_FILES = (
    "checkpoints",
    "metrics.jsonl",
    "metrics.json",
    "tensorboard",
    "plots",
    "results.json",
    "results.md",
    "config.yaml",
    "model.pth",
    "run.json",
)


def check_fresh_output_dir(output_dir: str | Path) -> None:
    """Refuse to start a new run in a folder that holds another run's outputs.

    Raises:
        FileExistsError: naming the files found, ``--resume`` (continue that run) and
            ``--start-over`` (delete its outputs first) or another ``output_dir``.
    """
    out = Path(output_dir)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(found)}). Continue it with --resume, start over with "
            f"--start-over (deletes those outputs), or choose another folder with output_dir=..."
        )


def remove_run_files(output_dir: str | Path) -> list[Path]:
    """Delete a previous run's outputs (`RUN_FILES`) from ``output_dir``; returns what was removed."""
    import shutil

    out = Path(output_dir)
    removed = []
    for name in RUN_FILES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
            removed.append(p)
        elif p.exists():
            p.unlink()
            removed.append(p)
    return removed


def _records(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
    return rows


def read_metrics(path: str | Path, run: str | None = None) -> list[dict[str, Any]]:
    """The records of one run of a ``metrics.jsonl`` (``run``: its id; default the file's last run).

    Records without a run id count as one run. A record repeated for an iteration (a log that was not
    rewound on resume) keeps its last occurrence.
    """
    rows = _records(Path(path))
    if not rows:
        return []
    run = run if run is not None else rows[-1].get("run")
    mine = [r for r in rows if r.get("run") == run]
    seen: dict[tuple[int, str | None], dict[str, Any]] = {}
    for r in mine:
        seen[(int(r.get("iteration", 0)), r.get("eval"))] = r
    return sorted(seen.values(), key=lambda r: (int(r.get("iteration", 0)), r.get("eval") or ""))


class MetricsLog:
    """The run's ``metrics.jsonl``: appends records tagged with the run id, flushed line by line.

    Args:
        path: the log file.
        run: the run's id (stored in its checkpoints).
    """

    def __init__(self, path: str | Path, run: str) -> None:
        self.path = Path(path)
        self.run = run
        self._file: IO[str] | None = None

    def open(self, *, resume_from: int | None = None) -> MetricsLog:
        """Open for appending; when resuming at ``resume_from``, first drop every record after it.

        The rewrite keeps this run's records up to ``resume_from`` and is atomic (temporary file +
        rename). A fresh run (``resume_from=None``) starts an empty log.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = []
        if resume_from is not None:
            keep = [
                r
                for r in _records(self.path)
                if r.get("run") == self.run and int(r.get("iteration", 0)) <= resume_from
            ]
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (``run`` added) and flush it."""
        if self._file is None:
            raise RuntimeError("MetricsLog.open() first")
        self._file.write(json.dumps({"run": self.run, **record}) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _fmt_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Progress of a loop: a tqdm bar on a terminal, plain throttled lines otherwise.

    Args:
        total: number of steps.
        initial: steps already done (a resumed run).
        desc: label of the lines / bar.
        stream: where to write (default ``sys.stderr``).
        interval: minimum seconds between two plain lines (the last step always prints one).
        enabled: ``False`` makes every call a no-op.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with Progress(3, desc="train", stream=out, interval=0) as p:
        ...     for _ in range(3):
        ...         p.update(loss=0.5)
        >>> out.getvalue().splitlines()[-1].startswith("train: 3/3 (100%)")
        True
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        desc: str = "",
        stream: IO[str] | None = None,
        interval: float = 30.0,
        enabled: bool = True,
    ) -> None:
        self.total, self.n, self.desc = int(total), int(initial), desc
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.enabled = enabled
        self._start = time.monotonic()
        self._start_n = self.n
        self._last = -float("inf")
        self._bar = None
        if enabled and _isatty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, initial=self.n, desc=desc, dynamic_ncols=True, file=self.stream
            )

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` steps; ``postfix`` values (floats are formatted) are shown with the count."""
        if not self.enabled:
            return
        self.n += n
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in postfix.items()}
        if self._bar is not None:
            self._bar.update(n)
            if shown:
                self._bar.set_postfix(shown, refresh=False)
            return
        now = time.monotonic()
        if now - self._last < self.interval and self.n < self.total:
            return
        self._last = now
        elapsed = now - self._start
        done = self.n - self._start_n
        eta = elapsed / done * (self.total - self.n) if done > 0 else float("nan")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        parts = [f"{self.desc}: {self.n}/{self.total} ({pct:.0f}%)"]
        parts += [f"{k} {v}" for k, v in shown.items()]
        parts.append(f"elapsed {_fmt_seconds(elapsed)}")
        if eta == eta:  # not NaN
            parts.append(f"eta {_fmt_seconds(eta)}")
        print(", ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar (plain mode: nothing to do)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def track(items: Iterable, total: int, *, desc: str, enabled: bool = True) -> Iterable:
    """Iterate ``items`` with a `Progress` (evaluation loops)."""
    with Progress(total, desc=desc, enabled=enabled) as p:
        for x in items:
            yield x
            p.update()

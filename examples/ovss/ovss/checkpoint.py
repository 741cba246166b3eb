"""Checkpoint files of the OVSS trainer: atomic writes, a checksum verified on every read, safe loading.

Every file is written by ``torch.save`` into a temporary file of the same folder, flushed to disk,
then renamed over the target (``os.replace``): a crash at any moment leaves either the old file or
the new one, never a mix. Each file holds a dict with

- ``format``: ``"ovss-checkpoint/1"`` (full training state) or ``"ovss-weights/1"`` (an exported
  model for inference);
- ``sha256``: the SHA-256 of everything else (:func:`state_digest`: every tensor's dtype, shape and
  bytes, every key and plain value), checked on load, so flipped bits inside tensor data are caught,
  not only a damaged zip container;
- only tensors and plain Python values (numpy RNG state as a tensor), so every read uses
  ``torch.load(..., weights_only=True)`` and can never run code stored in a file.

A training checkpoint lives in ``<output_dir>/checkpoints/``; ``last_checkpoint`` names the newest.
:func:`find_resume_checkpoint` follows it, and falls back (with a warning) to the newest intact
checkpoint when it names a missing or damaged file.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "WEIGHTS_FORMAT",
    "CheckpointError",
    "find_resume_checkpoint",
    "last_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "numpy_rng_state",
    "remove_stale_temp_files",
    "save_atomic",
    "set_numpy_rng_state",
    "state_digest",
]

CHECKPOINT_FORMAT = "ovss-checkpoint/1"
WEIGHTS_FORMAT = "ovss-weights/1"
POINTER = "last_checkpoint"
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")
_ITER = re.compile(r"^iter_(\d+)\.pth$")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not an OVSS checkpoint (the message names it)."""


# --------------------------------------------------------------------------- digest
def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
    elif isinstance(obj, list | tuple):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"S{type(obj).__name__}:{obj!r};".encode())


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a state dict: keys, plain values and every tensor's dtype, shape and bytes.

    The ``sha256`` key itself is left out, so a saved file's digest can be recomputed after loading.
    """
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


# --------------------------------------------------------------------------- numpy RNG as plain types
def numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state as a tensor and plain values (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global state)
    return {
        "bit_generator": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_numpy_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`numpy_rng_state`'s output."""
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        (state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


# --------------------------------------------------------------------------- writing
def save_atomic(state: dict[str, Any], path: str | Path, *, fmt: str = CHECKPOINT_FORMAT) -> Path:
    """Write ``state`` plus ``format`` and ``sha256`` to ``path`` atomically; returns ``path``.

    The data go to ``.<name>.tmp<pid>`` in the same folder, are flushed to disk (``fsync``) and then
    renamed over ``path``; a crash leaves at most a stale temporary file
    (:func:`remove_stale_temp_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**{k: v for k, v in state.items() if k != "sha256"}, "format": fmt}
    payload["sha256"] = state_digest(payload)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_pointer(ckpt_dir: Path, name: str) -> None:
    """Atomically point ``<ckpt_dir>/last_checkpoint`` at ``name``."""
    tmp = ckpt_dir / f".{POINTER}.tmp{os.getpid()}"
    tmp.write_text(name)
    os.replace(tmp, ckpt_dir / POINTER)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(ckpt_dir: str | Path) -> list[Path]:
    """Delete temporary files that a killed writer left in ``ckpt_dir``; returns those removed.

    A temporary file is stale when the process id in its name is not running (or is this process:
    nothing of ours is being written while this runs).
    """
    removed = []
    d = Path(ckpt_dir)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        m = _TEMP.match(p.name)
        if m and p.is_file():
            pid = int(m["pid"])
            if pid == os.getpid() or not _alive(pid):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


# --------------------------------------------------------------------------- reading
def load_checkpoint(
    path: str | Path, *, map_location: Any = "cpu", expect: str | None = CHECKPOINT_FORMAT
) -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_atomic` (``weights_only=True``).

    Args:
        path: the file.
        map_location: where tensors go (``torch.load``'s argument).
        expect: the required ``format`` (``None``: either format).

    Raises:
        CheckpointError: the file is missing or unreadable, truncated or corrupt (its checksum does
            not match), holds pickled code or objects (refused, never run), or is not of the
            expected format. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip errors, EOF, unpickling refusals: all mean "not a usable checkpoint"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely ({type(exc).__name__}: {reason[:300]}); it is "
            "truncated, corrupt, or holds pickled objects that a weights-only load refuses"
        ) from exc
    if not isinstance(state, dict) or "sha256" not in state or "format" not in state:
        raise CheckpointError(
            f"{path} is not an OVSS checkpoint (no 'format'/'sha256' entries); "
            "for a bare state dict use ovss.checkpoint.load_model_weights"
        )
    if expect is not None and state["format"] != expect:
        raise CheckpointError(f"{path} holds format {state['format']!r}, expected {expect!r}")
    if state_digest(state) != state["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its SHA-256 checksum does not match its content"
        )
    return state


def load_model_weights(path: str | Path, *, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """The model state dict of an exported model, a training checkpoint or a bare state dict.

    OVSS files are verified (:func:`load_checkpoint`); a bare ``state_dict`` file (no checksum) is
    read with ``weights_only=True`` too.

    Raises:
        CheckpointError: unreadable, corrupt or unsafe file, or no model weights in it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely ({type(exc).__name__}: {reason[:300]})"
        ) from exc
    if isinstance(state, dict) and "sha256" in state:
        state = load_checkpoint(path, map_location=map_location, expect=None)
    if isinstance(state, dict) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no model state dict")
    return dict(state)


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint named by ``<output_dir>/checkpoints/last_checkpoint`` if that file exists."""
    pointer = Path(output_dir) / "checkpoints" / POINTER
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if path.is_file() else None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoint files of a run, newest first: ``model_final.pth``, then ``iter_*`` by iteration."""
    d = Path(output_dir) / "checkpoints"
    if not d.is_dir():
        return []
    periodic = sorted((p for p in d.iterdir() if _ITER.match(p.name)), reverse=True)
    final = [d / "model_final.pth"] if (d / "model_final.pth").is_file() else []
    return final + periodic


def find_resume_checkpoint(
    output_dir: str | Path, *, map_location: Any = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """The newest intact checkpoint of a run and its verified state, or ``None`` if it has none.

    Tries the file ``last_checkpoint`` names, then every other checkpoint newest first; each one
    skipped (missing, truncated, corrupt) is reported with a ``UserWarning``.

    Raises:
        CheckpointError: checkpoints exist but none is intact (the message lists them).
    """
    d = Path(output_dir) / "checkpoints"
    candidates: list[Path] = []
    pointer = d / POINTER
    if pointer.is_file():
        named = d / pointer.read_text().strip()
        candidates.append(named)
    candidates += [p for p in list_checkpoints(output_dir) if p not in candidates]
    if not candidates:
        return None
    failures = []
    for path in candidates:
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            failures.append(str(exc))
            warnings.warn(f"skipping {exc}; trying an older checkpoint", UserWarning, stacklevel=2)
    raise CheckpointError(f"no intact checkpoint in {d} to resume from:\n  " + "\n  ".join(failures))

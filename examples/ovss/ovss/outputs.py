"""Where ``predict.py`` writes: every output path planned and checked before any work, written atomically.

For an input image ``<folder>/<stem>.<ext>`` the outputs are ``<name>.png`` (the overlay with a legend),
``<name>_mask.png`` (class ids) and, on request, ``<name>_scores.npz``, where ``<name>`` is

1. the stem (``photo``), when no other output of the run would get the same file name;
2. else the file name (``photo.jpg``), for every input whose outputs collide (two inputs ``x.jpg`` and
   ``x.png``; or an input ``x_mask.png`` whose overlay ``x_mask.png`` is input ``x``'s mask);
3. else the path relative to the inputs' common folder, separators replaced by ``__``
   (``cam1__0001.jpg`` and ``cam2__0001.jpg``), which is unique.

File names are compared ignoring case (macOS and Windows folders do), so the plan is collision-free on
every file system. `plan_outputs` then refuses, before any image is segmented:

- an output folder that is one of the input folders (the outputs would be taken as inputs next time),
  or a path below an existing file;
- an output that would replace an input image;
- an output that would replace an existing file, unless ``overwrite`` (outputs of an earlier run);
- an output path that is an existing folder.

`write_atomic` writes each file into a temporary file of the same folder and renames it into place, so a
crash never leaves a half-written output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OutputPathError", "PredictionOutputs", "plan_outputs", "write_atomic"]


class OutputPathError(ValueError):
    """The outputs cannot be written without overwriting or losing a file; the message says which and
    what to do."""


@dataclass(frozen=True)
class PredictionOutputs:
    """The output files of one input image (``scores`` is ``None`` without ``--save-logits``)."""

    image: Path
    overlay: Path
    mask: Path
    scores: Path | None

    def paths(self) -> list[Path]:
        """The planned files."""
        return [p for p in (self.overlay, self.mask, self.scores) if p is not None]


def _files(name: str, save_logits: bool) -> list[str]:
    return [f"{name}.png", f"{name}_mask.png", *([f"{name}_scores.npz"] if save_logits else [])]


def _names(images: Sequence[Path], save_logits: bool) -> list[str]:
    resolved = [p.resolve() for p in images]  # absolute: relative and absolute inputs mix
    root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    candidates = [(p.stem, p.name, "__".join(r.relative_to(root).parts)) for p, r in zip(images, resolved)]
    level = [0] * len(images)
    while True:
        owners: dict[str, set[int]] = {}
        for i, cands in enumerate(candidates):
            for f in _files(cands[level[i]], save_logits):
                owners.setdefault(f.casefold(), set()).add(i)
        clash = sorted({i for who in owners.values() if len(who) > 1 for i in who})
        if not clash:
            return [c[level[i]] for i, c in enumerate(candidates)]
        stuck = [i for i in clash if level[i] == 2]
        if stuck:
            shown = ", ".join(str(images[i]) for i in stuck[:6])
            raise OutputPathError(
                f"the inputs {shown} would write files of the same name even when named by their path "
                "(names differing only in case?); segment them into separate --output folders"
            )
        for i in clash:
            level[i] += 1


def _check_folder(out_dir: Path) -> None:
    for p in (out_dir, *out_dir.parents):
        if p.exists() and not p.is_dir():
            raise OutputPathError(
                f"--output {out_dir}: {p} is an existing file, not a folder; choose a folder path "
                "(it is created if missing)"
            )
        if p.is_dir():
            break


def plan_outputs(
    images: Sequence[str | Path], out_dir: str | Path, *, save_logits: bool = False, overwrite: bool = False
) -> list[PredictionOutputs]:
    """The output files of every input image, checked (module docstring); nothing is written.

    Args:
        images: the input image files (a file listed twice is planned once).
        out_dir: the output folder (need not exist).
        save_logits: plan ``<name>_scores.npz`` too.
        overwrite: allow replacing existing files that are not inputs (an earlier run's outputs).

    Raises:
        OutputPathError: the output folder is an input folder or lies below a file; an output would
            replace an input, an existing file (without ``overwrite``) or a folder.

    Example:
        >>> for o in plan_outputs(["a/x.jpg", "b/x.jpg", "a/y.png"], "out"):
        ...     print(o.overlay.name)
        a__x.jpg.png
        b__x.jpg.png
        y.png
    """
    paths: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, images):
        if p.resolve() not in seen:
            seen.add(p.resolve())
            paths.append(p)
    out = Path(out_dir)
    _check_folder(out)
    resolved_inputs = {p.resolve() for p in paths}
    out_resolved = out.resolve()
    input_folders = {p.parent for p in resolved_inputs}
    if out_resolved in input_folders:
        raise OutputPathError(
            f"--output {out_dir} is the folder of the input images: the outputs would mix with your "
            "images (and be taken as inputs by the next run); choose another folder, e.g. "
            f"{out / 'segmented'}"
        )
    plan = [
        PredictionOutputs(
            image=p,
            overlay=out / f"{name}.png",
            mask=out / f"{name}_mask.png",
            scores=out / f"{name}_scores.npz" if save_logits else None,
        )
        for p, name in zip(paths, _names(paths, save_logits))
    ]
    inputs_hit, existing, folders = [], [], []
    for o in plan:
        for target in o.paths():
            if target.resolve() in resolved_inputs:
                inputs_hit.append(target)
            elif target.is_dir():
                folders.append(target)
            elif target.exists():
                existing.append(target)
    if inputs_hit:
        raise OutputPathError(
            f"the outputs would replace input images: {[str(p) for p in inputs_hit[:6]]}; "
            "choose an --output folder that holds no inputs"
        )
    if folders:
        raise OutputPathError(
            f"output paths are existing folders: {[str(p) for p in folders[:6]]}; choose another --output"
        )
    if existing and not overwrite:
        more = f" and {len(existing) - 6} more" if len(existing) > 6 else ""
        raise OutputPathError(
            f"{len(existing)} output file(s) already exist: {[str(p) for p in existing[:6]]}{more}; nothing "
            "was written. Choose an empty --output folder, or pass --overwrite to replace them"
        )
    return plan


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path`` (atomic).

    The temporary file keeps ``path``'s suffix (writers that pick the format by suffix see the right
    one) and is removed if ``write`` fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

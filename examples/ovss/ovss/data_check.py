"""One up-front scan of a run's data: every problem of every file, listed before training starts.

`check_data` opens each dataset of the configuration (the training split and the evaluation datasets)
and reads every sample exactly as training and evaluation will (`ovss.data.SegmentationDataset.load`:
the image through `ovss.images.read_image`, the label map, their sizes, the label values against the
class list and the ignore value), so whatever would stop a run an hour in is found here, all at once:

- a dataset that cannot be opened (missing folder, no label files, a bad class list);
- an image that is missing or does not decode, a label map that does not decode or is not
  single-channel;
- a label map of another size than its image (with the EXIF explanation when the image is rotated);
- label values outside ``0..T-1`` that are not the ignore value;
- for your own data (``folder:<name>``), also images without a label map and files in the label folder
  that are not label maps (a ``.jpg`` mask next to ``.png`` ones is never read: JPEG would alter the ids).

Notes that do not stop a run: images shown rotated or mirrored by their EXIF orientation (their masks
are matched to the image as displayed), and label maps with no labelled pixel.

``train.py`` runs it over your own datasets before every run (``--no-data-check`` skips it) and over
every dataset with ``--check-data``, which only checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DataProblem", "DataReport", "check_data", "check_dataset"]


@dataclass(frozen=True)
class DataProblem:
    """One finding: the dataset, the file it concerns and what is wrong (or worth knowing)."""

    dataset: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"[{self.dataset}] {self.file}: {self.message}"


@dataclass
class DataReport:
    """What `check_data` found: ``problems`` stop a run, ``notes`` do not; ``samples`` per dataset."""

    problems: list[DataProblem] = field(default_factory=list)
    notes: list[DataProblem] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def format(self, *, max_lines: int = 200) -> str:
        """A human-readable report: a summary line, then every problem and note (at most ``max_lines``)."""
        checked = ", ".join(f"{n} ({k} samples)" for n, k in self.samples.items()) or "no dataset"
        head = (
            f"data check: {len(self.problems)} problem(s), {len(self.notes)} note(s) in {checked}"
            if self.problems or self.notes
            else f"data check: no problems in {checked}"
        )
        lines = [head]
        rows = [f"  problem {p}" for p in self.problems] + [f"  note    {p}" for p in self.notes]
        lines += rows[:max_lines]
        if len(rows) > max_lines:
            lines.append(f"  ... and {len(rows) - max_lines} more")
        return "\n".join(lines)


def _strip(message: str, dataset: str) -> str:
    prefix = f"dataset {dataset!r}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def check_dataset(ds: Any, report: DataReport, *, own: bool = False, complete: bool = True) -> None:
    """Read every sample of an opened `ovss.data.SegmentationDataset` as training does, adding what is
    wrong to ``report`` (module docstring); ``own``: the extra checks of a user folder dataset;
    ``complete``: the dataset holds every label file (no ``limit``), so stray files can be listed."""
    from .data import DatasetLayoutError
    from .images import IMAGE_SUFFIXES, describe_orientation, exif_orientation

    name = ds.spec.name
    report.samples[name] = len(ds)
    for i in range(len(ds)):
        label_file = ds.label_files[i]
        try:
            _, label = ds.load(i)
        except DatasetLayoutError as exc:
            report.problems.append(DataProblem(name, str(label_file), _strip(str(exc), name)))
            continue
        if not (label != ds.ignore_index).any():
            report.notes.append(
                DataProblem(name, str(label_file), "no labelled pixel (all ignore): it teaches nothing")
            )
        orientation = exif_orientation(ds.image_files[i])
        if orientation != 1:
            report.notes.append(
                DataProblem(
                    name,
                    str(ds.image_files[i]),
                    f"EXIF orientation {orientation} ({describe_orientation(orientation)}): the image is used "
                    "as displayed, and its label map is matched to the displayed image",
                )
            )
    if not own:
        return
    spec = ds.spec
    image_dir, label_dir = ds.root / spec.image_dir, ds.root / spec.label_dir
    stems = {p.stem for p in ds.label_files}
    if complete and image_dir.is_dir():
        for p in sorted(image_dir.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
                if p.suffix != spec.image_ext:
                    report.problems.append(
                        DataProblem(
                            name,
                            str(p),
                            f"not read: the images of this dataset end in {spec.image_ext!r} "
                            f"(data.folders.{name.split(':', 1)[-1]}.image_ext); rename it or move it out",
                        )
                    )
                elif p.stem not in stems:
                    report.problems.append(
                        DataProblem(
                            name,
                            str(p),
                            f"image without a label map (expected {label_dir / (p.stem + spec.label_ext)}); "
                            "add its mask or move the image out of the folder",
                        )
                    )
    if complete and label_dir.is_dir():
        for p in sorted(label_dir.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != spec.label_ext:
                report.problems.append(
                    DataProblem(
                        name,
                        str(p),
                        f"not a {spec.label_ext} label map, so it is never read"
                        + (
                            " (JPEG masks alter the class ids: save masks as PNG)"
                            if p.suffix.lower() in (".jpg", ".jpeg")
                            else ""
                        )
                        + f"; convert it to {spec.label_ext} (data.folders.*.label_ext) or move it out",
                    )
                )


def check_data(cfg: Any, datasets: Sequence[str] | None = None, *, own_only: bool = False) -> DataReport:
    """Scan the datasets of a run configuration (module docstring); nothing is written.

    Args:
        cfg: a `ovss.config.RunConfig`.
        datasets: the dataset names to check (default: ``data.train`` and ``eval.datasets``).
        own_only: only user folder datasets (``folder:<name>``), as ``train.py`` does before a run.

    Returns:
        A `DataReport`; ``report.ok`` is false when a run would fail on the data.
    """
    from .data import FOLDER_PREFIX, open_dataset

    names = list(datasets) if datasets is not None else [cfg.data.train, *cfg.eval.datasets]
    names = list(dict.fromkeys(names))
    report = DataReport()
    for name in names:
        own = name.startswith(FOLDER_PREFIX)
        if own_only and not own:
            continue
        if (
            not own
            and cfg.data.synthetic is not None
            and not (Path(cfg.data.root) / ".synthetic_done").is_file()
        ):
            report.notes.append(
                DataProblem(name, str(cfg.data.root), "synthetic data: generated when training starts")
            )
            continue
        limit = cfg.data.limit if name == cfg.data.train else None
        try:
            ds = open_dataset(cfg, name, limit=limit)
        except (FileNotFoundError, ValueError) as exc:
            report.problems.append(DataProblem(name, str(cfg.data.root), _strip(str(exc), name)))
            continue
        check_dataset(ds, report, own=own, complete=limit is None)
    return report

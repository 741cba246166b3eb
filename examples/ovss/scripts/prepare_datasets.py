"""Convert the official OVSS downloads into CAT-Seg's layouts (see ``ovss.prepare`` for each conversion).

Usage::

    python examples/ovss/scripts/prepare_datasets.py --root $DETECTRON2_DATASETS coco_stuff ade150 ade847 \
        pascal_context voc

``--root`` defaults to ``$DETECTRON2_DATASETS`` or ``./datasets``. Unpack the archives first
(``docs/ovss/training.md`` lists them and the expected folders).

Exit status: 0 on success, 2 for a bad command line, 4 for a missing or malformed download (the message
names the file and the conversion; the conversions before it are kept).
"""

from __future__ import annotations

import argparse
import os
import sys

import require_ovss  # noqa: F401  (first: exits with the install command if ovss is missing)

from ovss import prepare

STEPS = {
    "coco_stuff": prepare.prepare_coco_stuff,
    "ade150": prepare.prepare_ade20k_150,
    "ade847": prepare.prepare_ade20k_847,
    "pascal_context": prepare.prepare_pascal_context,
    "voc": prepare.prepare_voc,
}


def main(argv: list[str] | None = None) -> int:
    """Run the requested conversions; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", choices=sorted(STEPS), help="which conversions to run")
    parser.add_argument(
        "--root", default=os.environ.get("DETECTRON2_DATASETS", "datasets"), help="datasets root"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for name in args.datasets:
        try:
            n = STEPS[name](args.root, progress=not args.no_progress)
        except (FileNotFoundError, ValueError) as exc:
            print(
                f"error: {name}: {exc} (unpack the official download under --root {args.root})",
                file=sys.stderr,
            )
            return 4
        print(f"{name}: wrote {n} label maps under {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

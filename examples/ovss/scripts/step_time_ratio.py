"""Step-time ratio InfoCLIP / no distillation of the real ViT-B/16 CAT-Seg configuration (any device).

At batch 1 InfoCLIP's Gram matrices are taken over the 576 tokens (``gram_over='tokens'``): the
paper's batch Gram needs at least two images. One training step = forward (student, and for InfoCLIP the frozen teacher and the losses), backward,
full-model gradient clip and an AdamW step, at batch ``--batch`` on 384² inputs with the 171 COCO-Stuff
classes. The CLIP weights are random (the cost does not depend on them); nothing is downloaded. The two
models are timed in alternation (``--reps`` rounds after ``--warmup``) so that load changes on a shared
machine hit both alike; the medians and their ratio are printed as JSON.

    python examples/ovss/scripts/step_time_ratio.py --device cpu --batch 1 --reps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import require_ovss  # noqa: F401  (first: exits with the install command if ovss is missing)
import torch
from ovss.data import load_classes

from ovss import OVSSModel, param_groups, preset


def build(distill: str, device: torch.device, num_classes: int, gram_over: str):
    """Model, optimizer and class names of one configuration."""
    torch.manual_seed(0)
    config = preset("vitb_384", distill=distill, pretrained=None)
    if distill == "infoclip":
        config.distill.options["gram_over"] = gram_over
    model = OVSSModel(config).to(device)
    opt = torch.optim.AdamW(param_groups(model), lr=2e-4, weight_decay=1e-4)
    return model, opt, load_classes("coco")[:num_classes]


def step(model, opt, images, labels, names, amp: bool) -> None:
    """One optimisation step."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model(images, names, labels).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 0.01)
    opt.step()


def main(argv: list[str] | None = None) -> dict:
    """Time both configurations; returns (and prints) the JSON report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--classes", type=int, default=171)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    p.add_argument(
        "--gram-over",
        default=None,
        choices=["batch", "tokens"],
        help="InfoCLIP's Gram matrices (default: 'batch', or 'tokens' at batch 1 where a batch Gram is 1x1)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = device.type == "cuda"
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(args.batch, 3, 384, 384, generator=g) * 255).to(device)
    labels = torch.randint(0, args.classes, (args.batch, 384, 384), generator=g).to(device)
    gram_over = args.gram_over or ("tokens" if args.batch == 1 else "batch")
    runs = {name: build(name, device, args.classes, gram_over) for name in ("none", "infoclip")}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.warmup + args.reps):
        for name, (model, opt, names) in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step(model, opt, images, labels, names, amp)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "device": str(device),
        "batch": args.batch,
        "classes": args.classes,
        "infoclip_gram_over": gram_over,
        "threads": torch.get_num_threads(),
        "step_seconds": times,
        "median_seconds": med,
        "ratio_infoclip_over_none": med["infoclip"] / med["none"],
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

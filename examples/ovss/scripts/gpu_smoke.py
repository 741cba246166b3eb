"""GPU smoke test of the real ViT-B/16 CAT-Seg + InfoCLIP architecture (finishes in a few minutes on an H200).

For ``distill`` in (none, infoclip): builds the model (random CLIP weights unless ``--pretrained``
names a local open_clip checkpoint; nothing is downloaded), then runs ``--iters`` bf16-autocast
training steps on synthetic 384² batches (random images, random 171-class label maps) with AdamW,
the cosine schedule's optimizer groups and the 0.01 full-model gradient clip, and reports it/s,
peak GPU memory, the final losses and the InfoCLIP step-time overhead ratio; also one sliding-window
evaluation pass on a synthetic 640² image. Writes ``gpu_smoke.json`` into ``--out`` (``$OUT`` if set).

    python examples/ovss/scripts/gpu_smoke.py --iters 300 --batch 4
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import require_ovss  # noqa: F401  (first: exits with the install command if ovss is missing)
import torch
from ovss.data import load_classes
from ovss.evaluation import model_logits_fn, sliding_window_probabilities
from ovss.trainer import cosine_factor

from ovss import OVSSModel, param_groups, preset


def run(distill: str, args, device) -> dict:
    """Train ``args.iters`` steps of one configuration; returns its measurements."""
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats(device)
    model = OVSSModel(preset("vitb_384", distill=distill, pretrained=args.pretrained)).to(device)
    opt = torch.optim.AdamW(param_groups(model), lr=2e-4, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: cosine_factor(it, 80000))
    names = load_classes("coco")
    g = torch.Generator(device=device).manual_seed(0)
    params = [p for grp in opt.param_groups for p in grp["params"]]
    losses = {}
    t_start = None
    for it in range(args.warmup + args.iters):
        if it == args.warmup:
            torch.cuda.synchronize(device)
            t_start = time.perf_counter()
        images = torch.rand(args.batch, 3, 384, 384, device=device, generator=g) * 255
        labels = torch.randint(0, len(names), (args.batch, 384, 384), device=device, generator=g)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(images, names, labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.01)
        opt.step()
        sched.step()
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"{distill}: non-finite loss at step {it}: {out.losses}")
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t_start
    losses = {k: float(v) for k, v in out.losses.items()}
    model.eval()
    image = torch.rand(3, 480, 640, device=device) * 255
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    probs = sliding_window_probabilities(model_logits_fn(model, names[:150], amp=True), image)
    torch.cuda.synchronize(device)
    result = {
        "distill": distill,
        "iters": args.iters,
        "batch": args.batch,
        "it_per_s": args.iters / seconds,
        "seconds_per_iter": seconds / args.iters,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "final_losses": losses,
        "sliding_window_eval_seconds": time.perf_counter() - t0,
        "sliding_window_output": list(probs.shape),
    }
    del model, opt
    torch.cuda.empty_cache()
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    """Run both configurations and write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--pretrained", default=None, help="local open_clip checkpoint (default: random init)")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_smoke.py needs a CUDA device")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    results = {name: run(name, args, device) for name in ("none", "infoclip")}
    report = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "results": results,
        "infoclip_overhead_ratio": results["none"]["it_per_s"] / results["infoclip"]["it_per_s"],
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_smoke.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
    return report


if __name__ == "__main__":
    main()

"""The effect of bf16 autocast (``train.amp: bf16``) against CAT-Seg's fp32, on outputs and step time.

Usage::

    python examples/ovss/scripts/bf16_effect.py [--device cpu|cuda] [--preset vitb_384] [--steps N] [--batch B]
        [--out FILE.json]

Builds the preset's segmentor (``tiny``: the test model) with random weights (nothing downloaded), segments one 427×640 image with
CAT-Seg's protocol (pre-resize, sliding window, pooling 1×1) in fp32 and under bf16 autocast, and reports
the largest probability difference and the arg-max agreement; it also times a training step of
``--batch`` (default 4) at 384² in both precisions, alternating them (median of ``--steps`` after warm-up),
on any device (a CPU timing says nothing about a GPU's bf16 units: run it with ``--device cuda`` there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import require_ovss  # noqa: F401  (first: exits with the install command if ovss is missing)
import torch
from ovss.config import EvalConfig, preset
from ovss.data import load_classes
from ovss.evaluation import eval_pooling, predict_probabilities
from ovss.model import OVSSModel
from ovss.optim import build_optimizer
from ovss.tiny_model import tiny_model_config


def _step_times(model: OVSSModel, device: torch.device, batch: int, steps: int, classes: int) -> dict:
    """Median seconds of a training step (batch at 384², the first ``classes`` of COCO-Stuff's 171 names) in
    fp32 and under bf16 autocast.

    The two precisions alternate step by step after one warm-up step each (CUDA: five), so that a shared
    machine's load falls on both alike.
    """
    model.train()
    opt = build_optimizer(model)
    gen = torch.Generator().manual_seed(1)
    images = (torch.rand(batch, 3, 384, 384, generator=gen) * 255).to(device)
    targets = torch.randint(0, classes, (batch, 384, 384), generator=gen).to(device)
    coco = load_classes("coco")[:classes]
    warm = 5 if device.type == "cuda" else 1
    times: dict[bool, list[float]] = {False: [], True: []}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warm + steps):
        for amp in (False, True):
            sync()
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = model(images, coco, targets).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
            if i >= warm:
                times[amp].append(time.perf_counter() - t0)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    return {
        "step_batch": batch,
        "step_classes": classes,
        "step_count": steps,
        "step_seconds_fp32": fp32,
        "step_seconds_bf16": bf16,
        "step_time_ratio_bf16_over_fp32": bf16 / fp32,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="vitb_384", choices=["vitb_384", "vitl_336", "tiny"])
    parser.add_argument("--classes", type=int, default=150, help="first N ADE-150 class names")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per precision (0: none)")
    parser.add_argument("--batch", type=int, default=4, help="training-step batch (CAT-Seg: 4 per GPU)")
    parser.add_argument("--train-classes", type=int, default=171, help="class names of the training step")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    mcfg = (
        tiny_model_config("none")
        if args.preset == "tiny"
        else preset(args.preset, distill="none", pretrained=None)
    )
    model = OVSSModel(mcfg).to(device).eval()
    names = load_classes("ade150")[: args.classes]
    image = torch.randint(
        0, 256, (3, 427, 640), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    protocol = EvalConfig().protocol()
    probs = {}
    for amp in (False, True):
        with eval_pooling(model, (1, 1)):
            model.clear_text_cache()

            # (model_logits_fn turns bf16 on for CUDA only; call the model under autocast on any device)
            def fn(x: torch.Tensor, _amp: bool = amp) -> torch.Tensor:
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=_amp):
                    return model(x.to(device), names).logits

            probs[amp] = predict_probabilities(fn, image, (427, 640), **protocol).float().cpu()
    diff = (probs[True] - probs[False]).abs()
    result = {
        "preset": args.preset,
        "device": str(device),
        "weights": "random (seed 0)",
        "classes": len(names),
        "max_abs_probability_difference": float(diff.max()),
        "mean_abs_probability_difference": float(diff.mean()),
        "argmax_agreement": float((probs[True].argmax(0) == probs[False].argmax(0)).float().mean()),
    }
    if args.steps > 0:
        result.update(_step_times(model, device, args.batch, args.steps, args.train_classes))
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

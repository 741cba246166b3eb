"""The effect of bf16 autocast (``train.amp: bf16``) against CAT-Seg's fp32, on outputs and (on a GPU) step time.

Usage::

    python examples/ovss/scripts/bf16_effect.py [--device cpu|cuda] [--preset vitb_384] [--out FILE.json]

Builds the preset's segmentor (``tiny``: the test model) with random weights (nothing downloaded), segments one 427×640 image with
CAT-Seg's protocol (pre-resize, sliding window, pooling 1×1) in fp32 and under bf16 autocast, and reports
the largest probability difference and the arg-max agreement; on CUDA it also times a training step of
batch 4 at 384² in both precisions (median of ``--steps`` after warm-up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

try:
    import ovss  # noqa: F401  (the example package: pip install -e examples/ovss)
except ModuleNotFoundError as exc:
    raise SystemExit(
        'the ovss example package is not installed: run `pip install -e ".[ovss]" -e examples/ovss` '
        "from the repository root"
    ) from exc

import torch
from ovss.config import EvalConfig, preset
from ovss.data import load_classes
from ovss.evaluation import eval_pooling, predict_probabilities
from ovss.model import OVSSModel
from ovss.optim import build_optimizer
from ovss.testing import tiny_model_config


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="vitb_384", choices=["vitb_384", "vitl_336", "tiny"])
    parser.add_argument("--classes", type=int, default=150, help="first N ADE-150 class names")
    parser.add_argument("--steps", type=int, default=20)
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
    if device.type == "cuda":
        model.train()
        opt = build_optimizer(model)
        images = torch.rand(4, 3, 384, 384, device=device) * 255
        targets = torch.randint(0, 171, (4, 384, 384), device=device)
        coco = load_classes("coco")
        for amp in (False, True):
            times = []
            for i in range(args.steps + 5):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    loss = model(images, coco, targets).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                torch.cuda.synchronize()
                if i >= 5:
                    times.append(time.perf_counter() - t0)
            result[f"step_seconds_{'bf16' if amp else 'fp32'}"] = statistics.median(times)
        result["step_time_ratio_bf16_over_fp32"] = result["step_seconds_bf16"] / result["step_seconds_fp32"]
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

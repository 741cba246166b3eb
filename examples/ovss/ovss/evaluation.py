r"""Evaluation of an open-vocabulary segmentor: CAT-Seg's inference protocols and detectron2's mIoU.

**Test pre-resize** (CAT-Seg's test mapper, detectron2's ``ResizeShortestEdge(640, 2560)``): the
uint8 image is first resized bilinearly by PIL so that its shorter side is 640 px (the longer one
at most 2560 px), `pre_resize`; the prediction is finally resized to the original label's size.

**Sliding window** (CAT-Seg's ``inference_sliding_window``): the image is resized bilinearly to
``640×640``; ``384×384`` windows at stride ``int(384 · (1 - 0.333)) = 256`` (a 2×2 grid) and one
global view (the whole image resized to 384²) go through the model in one batch; each output is
resized to 384² and passed through a sigmoid; window probabilities are summed into the 640² canvas
and divided by the number of windows covering each pixel; the global probabilities are resized to
640² and the result is ``(windows + global) / 2``; finally it is resized bilinearly to the label's
size and the prediction is the arg-max class.

**Whole image** (CAT-Seg's ``forward`` in eval mode): the image is padded at the bottom and right to a
multiple of 32 with CLIP's pixel mean (zero after normalisation), the model resizes it to its CLIP
resolution, the logits go through the sigmoid *before* any upsampling, and the probability map (of
the padded canvas, as CAT-Seg's ``sem_seg_postprocess`` crops it at the logits' resolution) is
resized bilinearly to the label size (`whole_image_probabilities`).

**Class-aggregation pooling**: CAT-Seg evaluates with ``POOLING_SIZES [1, 1]`` (its ``eval.sh``)
although it trains with ``[2, 2]``; `evaluate_dataset` takes the window as ``pooling_size``.

**mIoU** (detectron2's ``SemSegEvaluator``): from the confusion matrix $C$ (rows = ground
truth, columns = prediction, ignored pixels dropped),

$$
\mathrm{IoU}_c = \frac{C_{cc}}{\sum_j C_{cj} + \sum_i C_{ic} - C_{cc}},\qquad
\mathrm{mIoU} = \frac{\sum_{c:\,\mathrm{gt}_c > 0} \mathrm{IoU}_c}{|\{c : \mathrm{gt}_c + \mathrm{pred}_c > 0\}|},
$$

so a class absent from the ground truth but predicted counts as 0, a class absent from both is left
out. VOC-20b maps every prediction ``>= 20`` to background (class 20) before counting.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .config import CLIP_PIXEL_MEAN

if TYPE_CHECKING:
    from .data import SegmentationDataset

__all__ = [
    "PAPER_TABLE1",
    "ConfusionMatrix",
    "evaluate_dataset",
    "markdown_table",
    "miou_from_confusion",
    "model_dtype",
    "pre_resize",
    "predict_probabilities",
    "sliding_window_probabilities",
    "whole_image_probabilities",
    "window_origins",
]

#: Paper Table 1 (mIoU, %): columns A-847, PC-459, A-150, PC-59, VOC-20, VOC-20b.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "CAT-Seg ViT-B/16": {
        "A-847": 12.0,
        "PC-459": 19.0,
        "A-150": 31.8,
        "PC-59": 57.5,
        "VOC-20": 94.6,
        "VOC-20b": 77.3,
    },
    "InfoCLIP ViT-B/16": {
        "A-847": 12.6,
        "PC-459": 19.5,
        "A-150": 32.1,
        "PC-59": 58.1,
        "VOC-20": 95.5,
        "VOC-20b": 78.1,
    },
    "CAT-Seg ViT-L/14": {
        "A-847": 16.0,
        "PC-459": 23.8,
        "A-150": 37.9,
        "PC-59": 63.3,
        "VOC-20": 97.0,
        "VOC-20b": 82.5,
    },
    "InfoCLIP ViT-L/14": {
        "A-847": 16.6,
        "PC-459": 24.6,
        "A-150": 38.5,
        "PC-59": 63.5,
        "VOC-20": 97.5,
        "VOC-20b": 83.1,
    },
}


class ConfusionMatrix:
    """An accumulating ``(K, K)`` confusion matrix (rows: ground truth, columns: prediction).

    Args:
        num_classes: ``K``.
        ignore_index: ground-truth value that is skipped.
        background_from: if set, predictions ``>= background_from`` count as class ``background_from``.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 255]]))
        >>> cm.matrix.tolist()
        [[1, 1], [0, 1]]
    """

    def __init__(
        self, num_classes: int, *, ignore_index: int = 255, background_from: int | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.background_from = background_from
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth class maps of equal shape."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape; got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        pred = pred.long().flatten().cpu()
        target = target.long().flatten().cpu()
        if self.background_from is not None:
            pred = pred.clamp(max=self.background_from)
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        k = self.num_classes
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= k):
            raise ValueError(
                f"target holds classes outside [0, {k}) that are not ignore_index={self.ignore_index}"
            )
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= k):
            raise ValueError(f"pred holds classes outside [0, {k}); got max {int(pred.max())}")
        self.matrix += torch.bincount(target * k + pred, minlength=k * k).view(k, k)

    def compute(self) -> dict[str, Any]:
        """`miou_from_confusion` of the accumulated matrix."""
        return miou_from_confusion(self.matrix)


def miou_from_confusion(matrix: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """mIoU, per-class IoU, frequency-weighted IoU and pixel accuracy of a confusion matrix (percent).

    Args:
        matrix: ``(K, K)`` counts, rows = ground truth, columns = prediction.

    Returns:
        ``{"mIoU", "fwIoU", "pAcc", "mACC", "IoU": [K floats or None]}``; a class absent from both
        ground truth and prediction has IoU ``None`` (left out of the mean, as detectron2).

    Example:
        >>> round(miou_from_confusion(np.array([[2, 0], [1, 1]]))["mIoU"], 4)
        58.3333
    """
    c = np.asarray(matrix, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"matrix must be square (K, K); got shape {c.shape}")
    tp = np.diag(c)
    pos_gt = c.sum(1)
    pos_pred = c.sum(0)
    union = pos_gt + pos_pred - tp
    acc_valid = pos_gt > 0
    iou_valid = (pos_gt + pos_pred) > 0
    iou = np.full(len(tp), np.nan)
    iou[acc_valid] = tp[acc_valid] / union[acc_valid]
    iou[iou_valid & ~acc_valid] = 0.0
    acc = np.full(len(tp), np.nan)
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    total = pos_gt.sum()
    n_valid = int(iou_valid.sum())
    miou = float(np.sum(iou[acc_valid]) / n_valid * 100) if n_valid else float("nan")
    fw = float(np.sum(iou[acc_valid] * pos_gt[acc_valid]) / total * 100) if total else float("nan")
    return {
        "mIoU": miou,
        "fwIoU": fw,
        "pAcc": float(tp.sum() / total * 100) if total else float("nan"),
        "mACC": float(np.nanmean(acc) * 100) if acc_valid.any() else float("nan"),
        "IoU": [None if math.isnan(v) else float(v * 100) for v in iou],
    }


def window_origins(size: int, kernel: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis: ``0, stride, ...`` while they fit, plus a last window
    flush with the far edge when the strided ones leave it uncovered.

    With CAT-Seg's sizes (640, 384, 256) the windows tile the canvas exactly and this equals
    ``nn.Unfold``'s offsets; for other sizes ``nn.Unfold`` would leave the last rows and columns
    uncovered (a 0/0 there in CAT-Seg's division), which the extra window avoids.

    Example:
        >>> window_origins(640, 384, 256)
        [0, 256]
        >>> window_origins(107, 64, 42)
        [0, 42, 43]
    """
    if kernel > size:
        raise ValueError(f"kernel {kernel} is larger than the canvas {size}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1; got {stride}")
    origins = list(range(0, size - kernel + 1, stride))
    if origins[-1] + kernel < size:
        origins.append(size - kernel)
    return origins


LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def sliding_window_probabilities(
    logits_fn: LogitsFn,
    image: torch.Tensor,
    *,
    kernel: int = 384,
    overlap: float = 0.333,
    out_res: int | tuple[int, int] = 640,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """CAT-Seg's sliding-window class probabilities of one image, on the ``out_res`` canvas.

    The one implementation of the protocol (module docstring); `ovss.model.OVSSModel.predict_sliding_window`
    calls it per image.

    Args:
        logits_fn: maps images ``(N, 3, kernel, kernel)`` (0-255) to logits ``(N, T, h, w)``.
        image: ``(3, H, W)`` image, values 0-255.
        kernel: window size (384).
        overlap: window overlap fraction in ``[0, 1)``; the stride is ``int(kernel * (1 - overlap))``
            (256).
        out_res: canvas size the image is first resized to (640, or ``(height, width)``).
        dtype: the floating type of every step (float32; float64 for a float64 model).

    Returns:
        ``(T, *out_res)`` probabilities ``(mean over covering windows + global) / 2``.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W); got {tuple(image.shape)}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1); got {overlap}")
    oh, ow = (int(out_res), int(out_res)) if isinstance(out_res, int) else (int(out_res[0]), int(out_res[1]))
    if kernel > min(oh, ow):
        raise ValueError(f"kernel={kernel} must not exceed out_res={(oh, ow)}")
    stride = max(int(kernel * (1 - overlap)), 1)
    canvas = F.interpolate(image[None].to(dtype), size=(oh, ow), mode="bilinear", align_corners=False)[0]
    origins = [(y, x) for y in window_origins(oh, kernel, stride) for x in window_origins(ow, kernel, stride)]
    crops = [canvas[:, y : y + kernel, x : x + kernel] for y, x in origins]
    global_view = F.interpolate(
        image[None].to(dtype), size=(kernel, kernel), mode="bilinear", align_corners=False
    )[0]
    batch = torch.stack([*crops, global_view])
    logits = logits_fn(batch).to(dtype)
    probs = F.interpolate(logits, size=(kernel, kernel), mode="bilinear", align_corners=False).sigmoid()
    t = probs.shape[1]
    total = probs.new_zeros(t, oh, ow)
    count = probs.new_zeros(1, oh, ow)
    for (y, x), p in zip(origins, probs[:-1]):
        total[:, y : y + kernel, x : x + kernel] += p
        count[:, y : y + kernel, x : x + kernel] += 1
    windows = total / count  # every pixel is covered (window_origins)
    global_probs = F.interpolate(probs[-1:], size=(oh, ow), mode="bilinear", align_corners=False)[0]
    return (windows + global_probs) / 2


def pre_resize(image: torch.Tensor, min_size: int | None = 640, max_size: int = 2560) -> torch.Tensor:
    """CAT-Seg's test pre-resize of a ``(3, H, W)`` uint8 image: shorter side ``min_size``, longer side
    at most ``max_size`` (detectron2's ``ResizeShortestEdge`` rule, `ovss.transforms.shortest_edge_size`),
    bilinear by PIL on uint8. ``min_size=None`` returns the image unchanged.

    Raises:
        TypeError: ``image`` is not uint8 (CAT-Seg resizes the decoded 8-bit image).

    Example:
        >>> pre_resize(torch.zeros(3, 427, 640, dtype=torch.uint8)).shape
        torch.Size([3, 640, 959])
    """
    if min_size is None:
        return image
    if image.dtype != torch.uint8:
        raise TypeError(
            f"the test pre-resize works on uint8 images (as CAT-Seg's); got {image.dtype}: pass the decoded "
            "image, or turn the pre-resize off with min_size=None (eval.test_min_size=null)"
        )
    from .transforms import resize_image, shortest_edge_size

    size = shortest_edge_size(image.shape[1], image.shape[2], int(min_size), int(max_size))
    arr = resize_image(np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy()), size)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def whole_image_probabilities(
    logits_fn: LogitsFn,
    image: torch.Tensor,
    output_size: tuple[int, int],
    *,
    size_divisibility: int = 32,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """CAT-Seg's whole-image inference: class probabilities ``(T, *output_size)`` of one image.

    The ``(3, H, W)`` image (0-255) is padded at the bottom and right to multiples of
    ``size_divisibility`` with CLIP's pixel mean, segmented in one pass (the model resizes it to its
    CLIP resolution), the sigmoid is applied to the logits, and the map is cropped to the first
    ``H × W`` cells (a no-op when the logits are smaller than the image, as always in CAT-Seg) and
    resized bilinearly to ``output_size``. Every step runs in ``dtype`` (float32; float64 for a float64
    model).
    """
    if size_divisibility < 1:
        raise ValueError(f"size_divisibility must be >= 1; got {size_divisibility}")
    h, w = image.shape[-2:]
    ph, pw = -h % size_divisibility, -w % size_divisibility
    x = image[None].to(dtype)
    if ph or pw:
        mean = torch.tensor(CLIP_PIXEL_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = F.pad(x - mean, (0, pw, 0, ph)) + mean
    probs = logits_fn(x).to(dtype).sigmoid()[:, :, :h, :w]
    return F.interpolate(probs, size=output_size, mode="bilinear", align_corners=False)[0]


def predict_probabilities(
    logits_fn: LogitsFn,
    image: torch.Tensor,
    output_size: tuple[int, int],
    *,
    mode: str = "sliding",
    kernel: int = 384,
    out_res: int = 640,
    min_size: int | None = 640,
    max_size: int = 2560,
    size_divisibility: int = 32,
    overlap: float = 0.333,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Class probabilities ``(T, *output_size)`` of one ``(3, H, W)`` image by CAT-Seg's test protocol.

    The image is pre-resized (`pre_resize` with ``min_size``, ``max_size``; uint8 needed unless
    ``min_size=None``), then ``mode="sliding"``: `sliding_window_probabilities` and a bilinear resize
    to ``output_size``; ``mode="whole"``: `whole_image_probabilities` (padding to
    ``size_divisibility``). The defaults are CAT-Seg's; ``dtype`` is the floating type of every step
    after the uint8 pre-resize (`model_dtype` of the model: float64 for a float64 model).
    """
    if mode not in ("sliding", "whole"):
        raise ValueError(f"mode must be 'sliding' or 'whole'; got {mode!r}")
    image = pre_resize(image, min_size, max_size)
    if mode == "sliding":
        probs = sliding_window_probabilities(
            logits_fn, image, kernel=kernel, overlap=overlap, out_res=out_res, dtype=dtype
        )
        return F.interpolate(probs[None], size=output_size, mode="bilinear", align_corners=False)[0]
    return whole_image_probabilities(
        logits_fn, image, output_size, size_divisibility=size_divisibility, dtype=dtype
    )


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating type the protocol works in for ``model``: its parameters' type, at least float32
    (float64 for a ``model.double()``; float32 for float32, bfloat16 and float16 models)."""
    return torch.promote_types(next(model.parameters()).dtype, torch.float32)


def model_logits_fn(model: torch.nn.Module, class_names: Sequence[str], *, amp: bool = False) -> LogitsFn:
    """A ``logits_fn`` over an `ovss.model.OVSSModel` (bf16 autocast on CUDA if ``amp``; CAT-Seg: fp32)."""
    device = next(model.parameters()).device

    def fn(images: torch.Tensor) -> torch.Tensor:
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"),
        ):
            return model(images.to(device), list(class_names)).logits

    return fn


@contextmanager
def eval_pooling(model: torch.nn.Module, size: tuple[int, int] | None) -> Iterator[None]:
    """Inside the block, ``model``'s class aggregation pools with ``size`` (CAT-Seg evaluates with
    ``(1, 1)``); ``None``, or a model without an ``aggregator``, is left unchanged."""
    agg = getattr(model, "aggregator", None)
    if size is None or agg is None:
        yield
        return
    with agg.use_pooling(size):
        yield


def evaluate_dataset(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    *,
    mode: str = "sliding",
    kernel: int = 384,
    out_res: int = 640,
    amp: bool = False,
    progress: bool = False,
    limit: int | None = None,
    min_size: int | None = 640,
    max_size: int = 2560,
    size_divisibility: int = 32,
    pooling_size: tuple[int, int] | None = (1, 1),
) -> dict[str, Any]:
    """mIoU of ``model`` on a `ovss.data.SegmentationDataset` (module docstring protocols).

    Args:
        model: the segmentor (put in eval mode here).
        dataset: yields ``{"image", "label"}``; its ``spec`` gives the classes, the number of
            evaluated classes and the background rule.
        mode: ``"sliding"`` or ``"whole"``.
        kernel: window size (CAT-Seg: 384 for both ViT-B/16 and ViT-L/14; the model resizes each window
            to its CLIP resolution).
        out_res: sliding canvas (CAT-Seg: 640).
        amp: bf16 autocast on CUDA (CAT-Seg: off).
        progress: report progress (a bar on a terminal, plain lines otherwise: `ovss.run_log.Progress`).
        limit: evaluate only the first ``limit`` images.
        min_size: test pre-resize of the shorter side (CAT-Seg: 640; ``None``: off).
        max_size: cap of the longer side in the pre-resize (CAT-Seg: 2560).
        size_divisibility: whole-image padding multiple (CAT-Seg: 32).
        pooling_size: class-aggregation pooling while evaluating (CAT-Seg: ``(1, 1)``; ``None``: the
            training pooling).

    Returns:
        `miou_from_confusion`'s dict plus ``dataset``, ``mode``, ``num_images``, ``class_names``,
        ``seconds``.
    """
    spec = dataset.spec
    class_names = dataset.class_names
    was_training = model.training
    model.eval()
    fn = model_logits_fn(model, class_names, amp=amp)
    dtype = model_dtype(model)
    cm = ConfusionMatrix(
        dataset.num_eval_classes, ignore_index=dataset.ignore_index, background_from=dataset.background_from
    )
    n = len(dataset) if limit is None else min(limit, len(dataset))
    from .run_log import track

    it = track(range(n), n, desc=f"eval {spec.name}", enabled=progress)
    start = time.perf_counter()
    with eval_pooling(model, pooling_size):
        for i in it:
            sample = dataset[i]
            label = sample["label"]
            probs = predict_probabilities(
                fn,
                sample["image"],
                tuple(label.shape),
                mode=mode,
                kernel=kernel,
                out_res=out_res,
                min_size=min_size,
                max_size=max_size,
                size_divisibility=size_divisibility,
                dtype=dtype,
            )
            cm.update(probs.argmax(0).cpu(), label)
    model.train(was_training)
    result = cm.compute()
    result.update(
        dataset=spec.name,
        mode=mode,
        num_images=n,
        class_names=dataset.eval_class_names,
        seconds=time.perf_counter() - start,
    )
    return result


def markdown_table(results: dict[str, dict[str, Any]], *, row_name: str = "this run") -> str:
    """A markdown table of ``results`` (by dataset name) next to the paper's Table 1 rows.

    The columns are the six benchmarks, then one column per other evaluated dataset (the demo's
    ``coco_stuff_val``, for example), so the run's row always shows its own numbers; the paper rows
    have no value there.

    Example:
        >>> print(markdown_table({"coco_stuff_val": {"mIoU": 91.25}}, row_name="demo").splitlines()[-1])
        | demo | – | – | – | – | – | – | 91.2 |
    """
    from .data import BENCHMARKS, DATASETS

    extra = [n for n in results if n not in BENCHMARKS]
    names = [*BENCHMARKS, *extra]
    cols = [(DATASETS[n].paper_key if n in DATASETS else None) or n for n in names]
    lines = ["| Method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in PAPER_TABLE1.items():
        cells = [f"{row[DATASETS[n].paper_key]:.1f}" if n in BENCHMARKS else "–" for n in names]
        lines.append(f"| {name} (paper) | " + " | ".join(cells) + " |")
    ours = []
    for n in names:
        r = results.get(n)
        ours.append(f"{r['mIoU']:.1f}" if r is not None and not math.isnan(r["mIoU"]) else "–")
    lines.append(f"| {row_name} | " + " | ".join(ours) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    results: dict[str, dict[str, Any]], out_dir: str | Path, *, row_name: str = "this run"
) -> Path:
    """Write ``results.json`` and ``results.md`` (the table) into ``out_dir``; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown_table(results, row_name=row_name))
    return path

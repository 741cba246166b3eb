"""OVSS evaluation: confusion matrix and mIoU by hand, sliding-window geometry and averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("open_clip")

from ovss.evaluation import (
    PAPER_TABLE1,
    ConfusionMatrix,
    markdown_table,
    miou_from_confusion,
    predict_probabilities,
    sliding_window_probabilities,
    window_origins,
)


def test_confusion_matrix_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 2]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # rows gt, cols pred; the ignored pixel (pred 2) is dropped
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]


def test_miou_by_hand():
    c = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 1]])
    r = miou_from_confusion(c)
    iou = [1 / (2 + 2 - 1), 2 / (3 + 3 - 2), 1 / (2 + 2 - 1)]
    assert r["IoU"] == pytest.approx([100 * v for v in iou])
    assert r["mIoU"] == pytest.approx(100 * sum(iou) / 3)
    assert r["pAcc"] == pytest.approx(100 * 4 / 7)
    assert r["fwIoU"] == pytest.approx(100 * (2 * iou[0] + 3 * iou[1] + 2 * iou[2]) / 7)


def test_miou_absent_classes_follow_detectron2():
    # class 2 absent from gt and prediction: left out; class 1 predicted but absent from gt: IoU 0, counted
    c = np.array([[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    r = miou_from_confusion(c)
    assert r["IoU"][2] is None and r["IoU"][1] == 0.0
    assert r["mIoU"] == pytest.approx(100 * (3 / 4 + 0.0) / 2)


def test_background_mapping_voc20b():
    cm = ConfusionMatrix(21, background_from=20)
    pred = torch.tensor([0, 25, 58, 20, 3])  # predictions of extra PC-59 prompts count as background
    target = torch.tensor([0, 20, 20, 20, 4])
    cm.update(pred, target)
    assert cm.matrix[20, 20] == 3 and cm.matrix[0, 0] == 1 and cm.matrix[4, 3] == 1


def test_confusion_rejects_bad_labels():
    with pytest.raises(ValueError, match="target holds classes"):
        ConfusionMatrix(2).update(torch.tensor([0]), torch.tensor([5]))
    with pytest.raises(ValueError, match="pred holds classes"):
        ConfusionMatrix(2).update(torch.tensor([2]), torch.tensor([1]))


def test_window_geometry_matches_cat_seg():
    stride = int(384 * (1 - 0.333))
    assert stride == 256
    assert window_origins(640, 384, stride) == [0, 256]
    # the same offsets nn.Unfold uses
    unfold = torch.nn.Unfold(kernel_size=384, stride=256)
    assert unfold(torch.zeros(1, 1, 640, 640)).shape[-1] == 4


class _RecordingModel:
    """Fake model: records its inputs and returns logits whose value encodes the view index."""

    def __init__(self, values: list[float], out_size: int = 96) -> None:
        self.values = values
        self.out_size = out_size
        self.inputs: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.inputs.append(images.clone())
        n = images.shape[0]
        v = torch.tensor(self.values[:n], dtype=torch.float32).view(n, 1, 1, 1)
        return v.expand(n, 1, self.out_size, self.out_size).clone()


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_sliding_window_averaging_with_known_logits():
    probs = [0.1, 0.2, 0.3, 0.4, 0.9]  # windows (0,0), (0,256), (256,0), (256,256), then global
    model = _RecordingModel([_logit(p) for p in probs])
    image = torch.rand(3, 50, 70) * 255
    out = sliding_window_probabilities(model, image)
    assert out.shape == (1, 640, 640)
    # the model saw one batch: 4 windows + 1 global view, all 384x384
    (batch,) = model.inputs
    assert batch.shape == (5, 3, 384, 384)
    canvas = F.interpolate(image[None], size=(640, 640), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(batch[1], canvas[:, 0:384, 256:640])
    assert torch.allclose(batch[2], canvas[:, 256:640, 0:384])
    glob = F.interpolate(image[None], size=(384, 384), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(batch[4], glob)

    def expected(y: int, x: int) -> float:
        cover = [
            i
            for i, (oy, ox) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)])
            if oy <= y < oy + 384 and ox <= x < ox + 384
        ]
        return (sum(probs[i] for i in cover) / len(cover) + probs[4]) / 2

    for y, x in [(10, 10), (10, 300), (300, 10), (300, 300), (600, 600), (10, 600), (200, 500)]:
        assert float(out[0, y, x]) == pytest.approx(expected(y, x), abs=1e-5)


def test_predict_probabilities_modes():
    model = _RecordingModel([_logit(0.7)] * 5, out_size=8)
    image = torch.rand(3, 20, 30) * 255
    whole = predict_probabilities(model, image, (20, 30), mode="whole", min_size=None)
    assert whole.shape == (1, 20, 30) and torch.allclose(whole, torch.full_like(whole, 0.7), atol=1e-6)
    assert model.inputs[-1].shape == (1, 3, 32, 32)  # padded to multiples of 32 (CAT-Seg's whole mode)
    sliding = predict_probabilities(
        model, image, (20, 30), mode="sliding", kernel=32, out_res=53, min_size=None
    )
    assert sliding.shape == (1, 20, 30) and torch.allclose(sliding, torch.full_like(sliding, 0.7), atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        predict_probabilities(model, image, (20, 30), mode="tiles")


def test_markdown_table_has_paper_rows():
    res = {"ade847": {"mIoU": 1.0}, "voc20b": {"mIoU": 2.5}}
    md = markdown_table(res, row_name="mine")
    assert "| InfoCLIP ViT-B/16 (paper) | 12.6 | 19.5 | 32.1 | 58.1 | 95.5 | 78.1 |" in md
    assert "| mine | 1.0 | – | – | – | – | 2.5 |" in md
    assert PAPER_TABLE1["CAT-Seg ViT-L/14"]["VOC-20b"] == 82.5
    # a dataset outside the benchmarks (the demo's) gets its own column: the run's row shows its value
    md = markdown_table({"coco_stuff_val": {"mIoU": 83.04}}, row_name="demo")
    assert md.splitlines()[0].endswith("| VOC-20b | coco_stuff_val |")
    assert "| demo | – | – | – | – | – | – | 83.0 |" in md
    assert "| InfoCLIP ViT-B/16 (paper) | 12.6 | 19.5 | 32.1 | 58.1 | 95.5 | 78.1 | – |" in md


@pytest.mark.parametrize(
    "name",
    [
        "ovss.data",
        "ovss.transforms",
        "ovss.evaluation",
        "ovss.trainer",
        "ovss.prepare",
        "ovss.config",
        "ovss.run_log",
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"

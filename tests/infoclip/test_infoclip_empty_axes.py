"""Inputs with an empty axis are refused by the axis they lack, before any value is read (never as a
"non-finite" mean of zero templates, a zero trace, a NaN loss or a raw reshape error)."""

from __future__ import annotations

import pytest
import torch

from infoclip import LPAM, InfoCLIPLoss, compression_loss, distillation_loss, make_distiller

D = 8


def _r(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


# (label, loss options, teacher_visual, teacher_text, student_visual, student_text, the refused argument, axis)
INFOCLIP_CASES = [
    (
        "T=0 shared",
        {"text_templates": True},
        _r(4, 9, D),
        _r(5, 0, D),
        _r(4, 9, D),
        _r(5, 0, D),
        "teacher_text",
        "template (T)",
    ),
    (
        "T=0 per-sample",
        {"text_templates": True},
        _r(4, 9, D),
        _r(4, 5, 0, D),
        _r(4, 9, D),
        _r(4, 5, 0, D),
        "teacher_text",
        "template (T)",
    ),
    (
        "T=0 student only",
        {"text_templates": True},
        _r(4, 9, D),
        _r(5, 2, D),
        _r(4, 9, D),
        _r(5, 0, D),
        "student_text",
        "template (T)",
    ),
    (
        "N_C=0 with templates",
        {"text_templates": True},
        _r(4, 9, D),
        _r(0, 2, D),
        _r(4, 9, D),
        _r(0, 2, D),
        "teacher_text",
        "class (N_C)",
    ),
    (
        "B=0 with templates",
        {"text_templates": True},
        _r(0, 9, D),
        _r(0, 5, 2, D),
        _r(0, 9, D),
        _r(0, 5, 2, D),
        "teacher_text",
        "batch (B)",
    ),
    ("B=0", {}, _r(0, 9, D), _r(5, D), _r(0, 9, D), _r(5, D), "teacher_visual", "batch (B)"),
    (
        "B=0 tokens",
        {"gram_over": "tokens"},
        _r(0, 9, D),
        _r(5, D),
        _r(0, 9, D),
        _r(5, D),
        "teacher_visual",
        "batch (B)",
    ),
    (
        "B=0 per-sample text",
        {},
        _r(4, 9, D),
        _r(0, 5, D),
        _r(4, 9, D),
        _r(0, 5, D),
        "teacher_text",
        "batch (B)",
    ),
    ("HW=0", {}, _r(4, 0, D), _r(5, D), _r(4, 0, D), _r(5, D), "teacher_visual", "token (HW)"),
    (
        "H=0 (B, d, H, W)",
        {},
        _r(4, D, 0, 3),
        _r(5, D),
        _r(4, D, 0, 3),
        _r(5, D),
        "teacher_visual",
        "token (HW)",
    ),
    ("N_C=0", {}, _r(4, 9, D), _r(0, D), _r(4, 9, D), _r(0, D), "teacher_text", "class (N_C)"),
    ("d=0 text", {}, _r(4, 9, D), _r(5, 0), _r(4, 9, D), _r(5, 0), "teacher_text", "embedding (d)"),
    (
        "dime B=0",
        {"estimator": "dime"},
        _r(0, 9, D),
        _r(5, D),
        _r(0, 9, D),
        _r(5, D),
        "teacher_visual",
        "batch (B)",
    ),
]


@pytest.mark.parametrize(
    ("options", "tv", "tt", "sv", "st", "name", "axis"),
    [c[1:] for c in INFOCLIP_CASES],
    ids=[c[0] for c in INFOCLIP_CASES],
)
def test_infoclip_loss_names_the_empty_axis(options, tv, tt, sv, st, name, axis) -> None:
    loss = InfoCLIPLoss(D, **options)
    with pytest.raises(
        ValueError, match=rf"^{name} has an empty {axis.replace('(', '[(]').replace(')', '[)]')} axis"
    ) as info:
        loss(tv, tt, sv, st)
    assert "non-finite" not in str(info.value)
    assert "at least one entry is needed" in str(info.value)


def test_zero_templates_message_says_what_to_do() -> None:
    loss = InfoCLIPLoss(D, text_templates=True)
    with pytest.raises(
        ValueError, match=r"average over zero prompt templates is undefined.*text_templates=False"
    ):
        loss(_r(4, 9, D), _r(5, 0, D), _r(4, 9, D), _r(5, 0, D))


def test_d_zero_everywhere() -> None:
    loss = InfoCLIPLoss(1)
    with pytest.raises(ValueError, match=r"^teacher_visual has an empty embedding \(d\) axis"):
        loss(_r(4, 9, 0), _r(5, 0), _r(4, 9, 0), _r(5, 0))


@pytest.mark.parametrize("gram_over", ["batch", "tokens"])
def test_functional_losses(gram_over: str) -> None:
    with pytest.raises(ValueError, match=r"^teacher_alignment has an empty batch \(B\) axis"):
        distillation_loss(_r(0, 9, 5), _r(0, 9, 5), gram_over=gram_over)
    with pytest.raises(ValueError, match=r"^teacher_alignment has an empty token \(HW\) axis"):
        distillation_loss(_r(4, 0, 5), _r(4, 0, 5), gram_over=gram_over)
    with pytest.raises(ValueError, match=r"^student_alignment has an empty class \(N_C\) axis"):
        distillation_loss(_r(4, 9, 5), _r(4, 9, 0), gram_over=gram_over)
    with pytest.raises(ValueError, match=r"^teacher_visual has an empty batch \(B\) axis"):
        compression_loss(_r(0, 9, D), _r(5, D), _r(0, 9, 5), gram_over=gram_over)
    with pytest.raises(ValueError, match=r"^teacher_alignment has an empty class \(N_C\) axis"):
        compression_loss(_r(4, 9, D), _r(5, D), _r(4, 9, 0), gram_over=gram_over)


def test_lpam() -> None:
    with pytest.raises(ValueError, match=r"^visual has an empty batch \(B\) axis"):
        LPAM(D)(_r(0, 9, D), _r(5, D))
    with pytest.raises(ValueError, match=r"^text has an empty class \(N_C\) axis"):
        LPAM(D)(_r(2, 9, D), _r(0, D))


@pytest.mark.parametrize("name", ["none", "kl", "maft", "maftplus"])
def test_baselines(name: str) -> None:
    """An empty batch used to give a NaN loss (KL, MAFT, MAFT+) or a silent 0 (none)."""
    distiller = make_distiller(name, D)
    with pytest.raises(ValueError, match=r"^teacher_visual has an empty batch \(B\) axis"):
        distiller(_r(0, 9, D), _r(5, D), _r(0, 9, D), _r(5, D))
    with pytest.raises(ValueError, match=r"^teacher_text has an empty class \(N_C\) axis"):
        distiller(_r(2, 9, D), _r(0, D), _r(2, 9, D), _r(0, D))

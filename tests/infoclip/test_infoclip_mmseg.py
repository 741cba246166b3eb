"""mmsegmentation integration: a real model built from a config dict, trained one step on CPU.

Skipped when mmseg (with a compiled mmcv) is not importable, unless RENYI_INFO_REQUIRE_MMSEG=1 (CI sets
it): then every test here fails with the import error instead.
"""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infoclip import LPAM, compression_loss, distillation_loss

REQUIRE_MMSEG = os.environ.get("RENYI_INFO_REQUIRE_MMSEG", "") == "1"

EMBED_DIM = 16
NUM_CLASSES = 4
IMAGE_SIZE = 32
BATCH = 3


@pytest.fixture(scope="module")
def mm():
    """The integration module, with a toy CLIP-like backbone and a pixel-text head registered."""
    try:
        from mmseg.models.decode_heads.decode_head import BaseDecodeHead
        from mmseg.registry import MODELS

        import infoclip.integrations.mmseg as integration
    except ImportError as exc:
        if REQUIRE_MMSEG:
            pytest.fail(f"RENYI_INFO_REQUIRE_MMSEG=1 but mmseg is not importable: {exc}", pytrace=False)
        pytest.skip(f"mmsegmentation not importable: {exc}")
    from mmengine.model import BaseModule
    from mmengine.registry import DefaultScope

    # As `default_scope = "mmseg"` in an mmseg runtime config: nested builds (the data preprocessor) look
    # in mmseg's registries.
    if DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance("test_infoclip_mmseg", scope_name="mmseg")

    class ToyCLIPBackbone(BaseModule):
        """Dense visual features (B, d, H/4, W/4) and class embeddings (N_C, d) from a 'text tower'."""

        def __init__(self, embed_dim: int, num_classes: int, as_dict: bool = False, init_cfg=None) -> None:
            super().__init__(init_cfg)
            self.patch_embed = nn.Conv2d(3, embed_dim, 4, stride=4)
            self.norm = nn.BatchNorm2d(embed_dim)  # a buffer-holding layer: eval mode matters for the teacher
            self.proj = nn.Conv2d(embed_dim, embed_dim, 1)
            self.class_tokens = nn.Parameter(torch.randn(num_classes, embed_dim))
            self.text_proj = nn.Linear(embed_dim, embed_dim)
            self.as_dict = as_dict

        def forward(self, x):
            visual = self.proj(F.gelu(self.norm(self.patch_embed(x))))
            text = self.text_proj(self.class_tokens)
            if self.as_dict:
                return {"dense": visual, "classes": text}
            return (visual, text)

    class ToyPixelTextHead(BaseDecodeHead):
        """Open-vocabulary style head: logits = scaled cosine of every pixel with every class embedding."""

        def __init__(self, **kwargs) -> None:
            super().__init__(in_channels=EMBED_DIM, channels=EMBED_DIM, **kwargs)
            self.refine = nn.Conv2d(EMBED_DIM, EMBED_DIM, 3, padding=1)
            self.logit_scale = nn.Parameter(torch.tensor(10.0))

        def forward(self, inputs):
            visual = self.refine(inputs["dense"])
            text = inputs["classes"]
            return self.logit_scale * torch.einsum(
                "bdhw,cd->bchw", F.normalize(visual, dim=1), F.normalize(text, dim=-1)
            )

    class ToyCATSegPortBackbone(BaseModule):
        """The output structure of mmsegmentation's CAT-Seg port (``CLIPOVCATSeg.forward``): a dict with
        ``appearance_feat`` (list of maps), ``clip_text_feat`` / ``clip_text_feat_test`` ``(N_C, T, d)``
        (one unit embedding per template, a frozen buffer) and ``clip_img_feat`` ``(B, d, h, w)``."""

        def __init__(self, embed_dim: int, num_classes: int, templates: int, init_cfg=None) -> None:
            super().__init__(init_cfg)
            self.patch_embed = nn.Conv2d(3, embed_dim, 4, stride=4)
            self.feature_extractor = nn.Conv2d(3, 8, 2, stride=2)
            text = F.normalize(torch.randn(num_classes, templates, embed_dim), dim=-1)
            self.register_buffer("text_features", text, False)

        def forward(self, x):
            return {
                "appearance_feat": [self.feature_extractor(x)],
                "clip_text_feat": self.text_features,
                "clip_text_feat_test": self.text_features,
                "clip_img_feat": self.patch_embed(x),
            }

    class ToyCATSegPortHead(BaseDecodeHead):
        """Reads the port's dict: cosine of clip_img_feat with the template-averaged clip_text_feat."""

        def __init__(self, **kwargs) -> None:
            super().__init__(in_channels=EMBED_DIM, channels=EMBED_DIM, **kwargs)
            self.refine = nn.Conv2d(EMBED_DIM, EMBED_DIM, 3, padding=1)

        def forward(self, inputs):
            text = F.normalize(inputs["clip_text_feat"].mean(1), dim=-1)
            visual = F.normalize(self.refine(inputs["clip_img_feat"]), dim=1)
            return 10.0 * torch.einsum("bdhw,cd->bchw", visual, text)

    MODELS.register_module(name="_ToyCATSegPortBackbone", module=ToyCATSegPortBackbone, force=True)
    MODELS.register_module(name="_ToyCATSegPortHead", module=ToyCATSegPortHead, force=True)
    MODELS.register_module(name="_ToyCLIPBackbone", module=ToyCLIPBackbone, force=True)
    MODELS.register_module(name="_ToyPixelTextHead", module=ToyPixelTextHead, force=True)
    return integration


def preprocessor_cfg():
    return dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=(IMAGE_SIZE, IMAGE_SIZE),
    )


def fcn_config(lambda_compress=1.0, lambda_distill=1.0):
    """Tuple backbone output (visual, text), stock FCNHead on index 0, default feature adapter."""
    return dict(
        type="InfoCLIPSegmentor",
        data_preprocessor=preprocessor_cfg(),
        backbone=dict(type="_ToyCLIPBackbone", embed_dim=EMBED_DIM, num_classes=NUM_CLASSES),
        decode_head=dict(
            type="FCNHead",
            in_channels=EMBED_DIM,
            in_index=0,
            channels=8,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=NUM_CLASSES,
            norm_cfg=dict(type="BN", requires_grad=True),
            align_corners=False,
            loss_decode=dict(
                type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True
            ),
        ),
        infoclip=dict(
            type="InfoCLIPSegLoss",
            embed_dim=EMBED_DIM,
            lambda_compress=lambda_compress,
            lambda_distill=lambda_distill,
        ),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )


def pixel_text_config():
    """Dict backbone output, a head that reads both entries, adapter by keys."""
    return dict(
        type="InfoCLIPSegmentor",
        data_preprocessor=preprocessor_cfg(),
        backbone=dict(type="_ToyCLIPBackbone", embed_dim=EMBED_DIM, num_classes=NUM_CLASSES, as_dict=True),
        decode_head=dict(
            type="_ToyPixelTextHead",
            num_classes=NUM_CLASSES,
            dropout_ratio=0.0,
            loss_decode=dict(type="CrossEntropyLoss", avg_non_ignore=True),
        ),
        infoclip=dict(embed_dim=EMBED_DIM, loss_name="loss_info"),  # type defaults to InfoCLIPSegLoss
        feature_adapter=dict(visual="dense", text="classes"),
        test_cfg=dict(mode="whole"),
    )


def make_batch(seed: int = 0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(BATCH):
        inputs.append(torch.randint(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE), generator=g, dtype=torch.uint8))
        sample = SegDataSample()
        label = torch.randint(0, NUM_CLASSES, (1, IMAGE_SIZE, IMAGE_SIZE), generator=g)
        sample.gt_sem_seg = PixelData(data=label)
        shape = (IMAGE_SIZE, IMAGE_SIZE)
        sample.set_metainfo(
            dict(img_shape=shape, ori_shape=shape, pad_shape=shape, padding_size=[0, 0, 0, 0])
        )
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build(mm, cfg):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    # Through mmengine's Config, as a config file would be: ConfigDict values everywhere.
    model = MODELS.build(Config(dict(model=cfg)).model)
    model.init_weights()
    return model


def trainable(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


# --------------------------------------------------------------------------------------------------


def test_build_registers_and_freezes_teacher(mm):
    model = build(mm, fcn_config())
    assert isinstance(model, mm.InfoCLIPSegmentor)
    assert isinstance(model.infoclip_loss, mm.InfoCLIPSegLoss)
    assert isinstance(model.infoclip_loss.lpam, LPAM)
    assert model.infoclip_loss.loss_name == "loss_infoclip"
    # the teacher is a copy of the (initialised) student backbone, frozen, in eval mode even in train()
    student, teacher = model.backbone.state_dict(), model.teacher.state_dict()
    assert student.keys() == teacher.keys()
    for k in student:
        torch.testing.assert_close(teacher[k], student[k], rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.backbone.training and not model.teacher.training
    # LPAM is registered in the model (optimizer, checkpoints, DDP see it)
    names = [n for n, _ in model.named_parameters()]
    assert "infoclip_loss.infoclip.lpam.key.weight" in names
    assert any(n.startswith("teacher.") for n in names)


def test_loss_dict_values_and_gradient_routing(mm):
    lam_c, lam_d = 0.5, 2.0
    model = build(mm, fcn_config(lam_c, lam_d))
    model.train()
    with torch.no_grad():  # perturb the student so that teacher != student
        for p in model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = model.data_preprocessor(make_batch(), True)
    losses = model.loss(**data)
    assert {"decode.loss_ce", "loss_infoclip_compress", "loss_infoclip_distill"} <= set(losses)

    # values: recomputed independently from the two backbones, the functional losses and the same LPAM
    inputs = data["inputs"]
    with torch.no_grad():
        sv, st = model.backbone(inputs)
        tv, tt = model.teacher(inputs)
        lpam = model.infoclip_loss.lpam
        r_t, r_s = lpam(tv, tt), lpam(sv, st)
        expected_c = lam_c * compression_loss(tv, tt, r_t)
        expected_d = lam_d * distillation_loss(r_t, r_s)
    torch.testing.assert_close(losses["loss_infoclip_compress"].detach(), expected_c)
    torch.testing.assert_close(losses["loss_infoclip_distill"].detach(), expected_d)

    # mmengine's total is the sum of every "loss" key: decode CE + both InfoCLIP terms
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(
        total.detach(),
        (
            losses["decode.loss_ce"] + losses["loss_infoclip_compress"] + losses["loss_infoclip_distill"]
        ).detach(),
    )
    assert {"loss_infoclip_compress", "loss_infoclip_distill"} <= set(log_vars)
    total.backward()

    for name, p in model.infoclip_loss.lpam.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, f"LPAM {name} got no gradient"
    assert all(p.grad is None for p in model.teacher.parameters()), "the frozen teacher got a gradient"
    # the student's text tower is used only by InfoCLIP (FCNHead reads index 0): its gradient is L_d's
    assert torch.count_nonzero(model.backbone.class_tokens.grad) > 0
    assert torch.count_nonzero(model.backbone.patch_embed.weight.grad) > 0


def test_train_step_updates_student_and_lpam_not_teacher(mm):
    from mmengine.optim import OptimWrapper

    model = build(mm, fcn_config())
    model.train()
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = trainable(model)
    teacher_buffers = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    log_vars = model.train_step(make_batch(), optim_wrapper)
    assert {"loss", "decode.loss_ce", "loss_infoclip_compress", "loss_infoclip_distill"} <= set(log_vars)
    assert all(torch.isfinite(v) for v in log_vars.values())
    after = trainable(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    lpam_names = {n for n in before if ".lpam." in n}
    assert lpam_names and lpam_names <= changed
    assert "backbone.class_tokens" in changed
    assert not any(n.startswith("teacher.") for n in changed)
    # teacher's BatchNorm statistics are untouched too (eval mode)
    for k, v in model.teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_buffers[k], rtol=0, atol=0)


def test_pixel_text_head_dict_output_and_predict(mm):
    from mmengine.optim import OptimWrapper

    model = build(mm, pixel_text_config())
    model.train()
    data = model.data_preprocessor(make_batch(1), True)
    losses = model.loss(**data)
    assert {"decode.loss_ce", "loss_info_compress", "loss_info_distill"} <= set(losses)
    total, _ = model.parse_losses(losses)
    total.backward()
    assert torch.count_nonzero(model.infoclip_loss.lpam.query.weight.grad) > 0
    assert all(p.grad is None for p in model.teacher.parameters())

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    model.zero_grad()
    log_vars = model.train_step(make_batch(2), optim_wrapper)
    assert "loss_info_distill" in log_vars

    # inference is plain EncoderDecoder: neither the teacher nor LPAM runs
    calls = []
    model.teacher.register_forward_hook(lambda *a: calls.append("teacher"))
    model.infoclip_loss.register_forward_hook(lambda *a: calls.append("infoclip"))
    model.eval()
    with torch.no_grad():
        results = model.test_step(make_batch(3))
    assert len(results) == BATCH
    assert results[0].pred_sem_seg.data.shape == (1, IMAGE_SIZE, IMAGE_SIZE)
    assert calls == []


def test_callable_adapter_and_sync_teacher(mm):
    cfg = pixel_text_config()
    cfg["feature_adapter"] = lambda out: (out["dense"].flatten(2).transpose(1, 2), out["classes"])
    model = build(mm, cfg)
    model.train()
    losses = model.loss(**model.data_preprocessor(make_batch(), True))
    assert torch.isfinite(losses["loss_info_compress"]) and torch.isfinite(losses["loss_info_distill"])

    with torch.no_grad():
        model.backbone.proj.weight.add_(1.0)
    assert not torch.equal(model.teacher.proj.weight, model.backbone.proj.weight)
    model.sync_teacher()
    torch.testing.assert_close(model.teacher.proj.weight, model.backbone.proj.weight, rtol=0, atol=0)
    assert not model.teacher.proj.weight.requires_grad


def test_separate_teacher_config_is_not_synced(mm):
    cfg = fcn_config()
    cfg["teacher_backbone"] = dict(type="_ToyCLIPBackbone", embed_dim=EMBED_DIM, num_classes=NUM_CLASSES)
    torch.manual_seed(1)
    model = build(mm, cfg)
    assert not model.teacher_is_copy
    assert not torch.equal(model.teacher.proj.weight, model.backbone.proj.weight)
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_config_errors(mm):
    from mmseg.registry import MODELS

    with pytest.raises(ValueError, match="loss_name"):
        mm.InfoCLIPSegLoss(EMBED_DIM, loss_name="infoclip")
    with pytest.raises(ValueError, match="exactly the keys"):
        mm.build_feature_adapter(dict(visual=0))
    with pytest.raises(TypeError, match="feature_adapter"):
        mm.build_feature_adapter(3)
    with pytest.raises(TypeError, match="int index"):
        mm.build_feature_adapter(dict(visual=0.5, text=1))

    cfg = fcn_config()
    cfg["feature_adapter"] = dict(visual=0, text=5)
    model = MODELS.build(copy.deepcopy(cfg))
    with pytest.raises(ValueError, match="could not read the text features at 5"):
        model.loss(**model.data_preprocessor(make_batch(), True))

    cfg["feature_adapter"] = lambda out: out[0]
    model = MODELS.build(copy.deepcopy(cfg))
    with pytest.raises(TypeError, match="pair of tensors"):
        model.loss(**model.data_preprocessor(make_batch(), True))

    cfg = fcn_config()
    cfg["infoclip"]["embed_dim"] = EMBED_DIM + 1  # LPAM width != the backbone's d
    model = MODELS.build(cfg)
    with pytest.raises(ValueError, match="embed_dim"):
        model.loss(**model.data_preprocessor(make_batch(), True))


def test_seg_loss_module_matches_infoclip_loss(mm):
    from infoclip import InfoCLIPLoss

    torch.manual_seed(0)
    tv, sv = torch.randn(3, EMBED_DIM, 4, 4), torch.randn(3, EMBED_DIM, 4, 4)
    tt, st = torch.randn(5, EMBED_DIM), torch.randn(5, EMBED_DIM)
    seg = mm.InfoCLIPSegLoss(EMBED_DIM, lambda_compress=0.3, lambda_distill=0.7)
    plain = InfoCLIPLoss(EMBED_DIM, lambda_compress=0.3, lambda_distill=0.7)
    plain.load_state_dict(seg.infoclip.state_dict())
    got = seg(tv, tt, sv, st)
    ref = plain(tv, tt, sv, st)
    torch.testing.assert_close(got["loss_infoclip_compress"], 0.3 * ref.compression)
    torch.testing.assert_close(got["loss_infoclip_distill"], 0.7 * ref.distillation)
    torch.testing.assert_close(sum(got.values()), ref.total)


def test_seg_loss_module_takes_every_infoclip_option(mm):
    """The wrapper forwards InfoCLIPLoss's options as they are (DiME's estimator included)."""
    from infoclip import InfoCLIPLoss

    torch.manual_seed(0)
    tv, sv = torch.randn(3, EMBED_DIM, 4, 4), torch.randn(3, EMBED_DIM, 4, 4)
    tt, st = torch.randn(5, EMBED_DIM), torch.randn(5, EMBED_DIM)
    options = dict(estimator="dime", permutations=4, seed=3, gram_over="tokens", base=math.e)
    seg = mm.InfoCLIPSegLoss(EMBED_DIM, loss_name="loss_ic", **options)
    plain = InfoCLIPLoss(EMBED_DIM, **options)
    plain.load_state_dict(seg.infoclip.state_dict())
    assert (seg.infoclip.estimator, seg.infoclip.permutations, seg.infoclip.seed) == ("dime", 4, 3)
    got, ref = seg(tv, tt, sv, st), plain(tv, tt, sv, st)
    # the same seeded pairings and the same arithmetic: equal to the last bit
    assert torch.equal(got["loss_ic_distill"], ref.terms["loss_distill"])
    assert torch.equal(got["loss_ic_compress"], ref.terms["loss_compress"])
    with pytest.raises(TypeError, match="lambda_compres"):
        mm.InfoCLIPSegLoss(EMBED_DIM, lambda_compres=1.0)


def test_catseg_port_text_layout_through_the_segmentor(mm):
    """A stand-in with the output structure of mmseg's CAT-Seg port: text (N_C, T, d), read by key."""
    from infoclip import InfoCLIPLoss

    templates = 3
    cfg = dict(
        type="InfoCLIPSegmentor",
        data_preprocessor=preprocessor_cfg(),
        backbone=dict(
            type="_ToyCATSegPortBackbone", embed_dim=EMBED_DIM, num_classes=NUM_CLASSES, templates=templates
        ),
        decode_head=dict(
            type="_ToyCATSegPortHead",
            num_classes=NUM_CLASSES,
            dropout_ratio=0.0,
            loss_decode=dict(type="CrossEntropyLoss", avg_non_ignore=True),
        ),
        infoclip=dict(type="InfoCLIPSegLoss", embed_dim=EMBED_DIM, text_templates=True),
        feature_adapter=dict(visual="clip_img_feat", text="clip_text_feat"),
        test_cfg=dict(mode="whole"),
    )
    model = build(mm, cfg)
    model.train()
    data = model.data_preprocessor(make_batch(), True)
    losses = model.loss(data["inputs"], data["data_samples"])
    assert {"loss_infoclip_compress", "loss_infoclip_distill"} <= set(losses)
    # the same terms from InfoCLIPLoss on the template-averaged, re-normalised text
    out = model.backbone(data["inputs"])
    t_out = model.teacher(data["inputs"])
    plain = InfoCLIPLoss(EMBED_DIM)
    plain.load_state_dict(model.infoclip_loss.infoclip.state_dict())

    def mean_text(t):
        m = t.sum(1) / templates
        return m / m.norm(dim=-1, keepdim=True)

    ref = plain(
        t_out["clip_img_feat"],
        mean_text(t_out["clip_text_feat"]),
        out["clip_img_feat"],
        mean_text(out["clip_text_feat"]),
    )
    # identical float32 operations up to the order of the template sum
    torch.testing.assert_close(
        losses["loss_infoclip_compress"], ref.terms["loss_compress"], rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        losses["loss_infoclip_distill"], ref.terms["loss_distill"], rtol=1e-5, atol=1e-6
    )
    assert all(torch.isfinite(v).all() for v in losses.values())


def test_guide_mmseg_section_runs_as_written(mm, capsys):
    """The ```py blocks of the guide's mmsegmentation section (config + train step) run as written."""
    from pathlib import Path

    guide = Path(__file__).resolve().parents[2] / "docs" / "guides" / "infoclip.md"
    text = guide.read_text(encoding="utf-8")
    section = text.split("\n## mmsegmentation\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```py\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 3
    namespace: dict = {"__name__": "__guide_mmseg__"}
    for block in blocks:
        exec(compile(block, str(guide), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "learning rates: 2e-06, 2e-04" in printed
    assert "'loss_infoclip_compress'" in printed and "'loss_infoclip_distill'" in printed
    assert "nan" not in printed.lower()
    segmentor = namespace["segmentor"]
    assert isinstance(segmentor, mm.InfoCLIPSegmentor)
    groups = namespace["optimizer"].param_groups
    lpam_ids = {id(p) for p in segmentor.infoclip_loss.lpam.parameters()}
    backbone_ids = {id(p) for p in segmentor.backbone.parameters()}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        if ids & lpam_ids:
            assert group["lr"] == pytest.approx(2e-4)
        if ids & backbone_ids:
            assert group["lr"] == pytest.approx(2e-6)


def test_docstring_examples(mm):
    import doctest

    result = doctest.testmod(mm, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -- no mmseg needed -------------------------------------------------------------------------------


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_infoclip_never_imports_mmseg():
    proc = _run(
        """
        import sys, infoclip, infoclip.integrations
        bad = [m for m in sys.modules if m.split('.')[0] in ('mmseg', 'mmcv', 'mmengine')]
        assert not bad, bad
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_missing_mmseg_gives_install_hint():
    proc = _run(
        """
        import sys
        sys.modules['mmseg'] = None  # as if not installed
        try:
            import infoclip.integrations.mmseg
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit('no ImportError')
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "renyi-info[mmseg]"' in proc.stdout
    assert "MMCV_WITH_OPS=1" in proc.stdout

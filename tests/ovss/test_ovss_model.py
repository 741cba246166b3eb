"""The OVSS segmentor (examples/ovss/ovss/model.py): shapes, Q/V fine-tuning, teacher, InfoCLIP wiring."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("open_clip")
pytest.importorskip("timm")

from ovss.clip import create_clip, merge_qkv_state_dict
from ovss.config import ModelConfig, OptimConfig, preset
from ovss.model import OVSSModel
from ovss.optim import build_optimizer, param_groups
from ovss.tiny_model import TINY_CLIP, tiny_model_config

CLASSES = ["cat", "dog, puppy", "car", "tree", "sky"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _build(distill: str = "infoclip", seed: int = 0, **kw) -> tuple[OVSSModel, dict[str, torch.Tensor]]:
    """A tiny model and the packed state dict of the CLIP it started from."""
    cfg = tiny_model_config(distill, **kw)
    torch.manual_seed(seed)
    clip, tok = create_clip(TINY_CLIP, None)
    start = {k: v.clone() for k, v in clip.state_dict().items()}
    return OVSSModel(cfg, clip=clip, tokenizer=tok), start


def _batch(b: int = 2, size: int = 40, classes: int = len(CLASSES), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, size, size, generator=g) * 255
    targets = torch.randint(0, classes, (b, size, size), generator=g)
    targets[:, :4] = 255
    return images, targets


def test_train_and_eval_shapes_and_losses():
    model, _ = _build("infoclip")
    images, targets = _batch()
    model.train()
    out = model(images, CLASSES, targets)
    assert out.logits.shape == (2, 5, 32, 32)  # 8x8 grid -> 4x upsampled
    assert set(out.losses) == {"loss_sem_seg", "loss_compress", "loss_distill"}
    dist = out.distillation
    assert dist is not None and dist.compression is not None and dist.distillation is not None
    torch.testing.assert_close(out.loss, out.losses["loss_sem_seg"] + dist.total)
    torch.testing.assert_close(dist.total, out.losses["loss_compress"] + out.losses["loss_distill"])
    assert torch.isfinite(out.loss)
    model.eval()
    with torch.no_grad():
        logits = model(images, CLASSES).logits
        probs = model.predict(images, CLASSES, min_size=None)  # float images: no uint8 pre-resize
    assert logits.shape == (2, 5, 32, 32)
    assert probs.shape == (2, 5, 40, 40) and probs.min() >= 0 and probs.max() <= 1


def test_large_vocabulary_path():
    model, _ = _build("none", pad_len=4)
    model.eval()
    images, _ = _batch(1)
    names = [f"class {i}" for i in range(7)]  # 7 > pad_len=4: the top-4 classes are segmented
    with torch.no_grad():
        logits = model(images, names).logits
    assert logits.shape == (1, 7, 32, 32)
    dropped = (logits == -100.0).flatten(2).all(-1)
    assert int(dropped.sum()) == 3


def test_prompt_ensemble_gives_one_cost_channel_per_template():
    templates = ("a photo of a {}.", "a drawing of a {}.", "the {}.")
    model, _ = _build("none", templates=templates)
    assert model.aggregator.conv1.in_channels == 3
    text = model.class_embeddings(CLASSES)
    assert text.shape == (5, 3, 16)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(5, 3))
    images, targets = _batch()
    model(images, CLASSES, targets).loss.backward()


def test_qv_only_finetuning_with_weight_decay_leaves_everything_else_bit_identical():
    model, start = _build("none")
    opt = build_optimizer(model, OptimConfig(base_lr=1e-2, clip_multiplier=1.0, weight_decay=0.5))
    assert all(g["weight_decay"] in (0.5, 0.0) for g in opt.param_groups)
    assert any(g["name"] == "clip" and g["weight_decay"] == 0.5 for g in opt.param_groups)
    images, targets = _batch()
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model(images, CLASSES, targets).loss.backward()
        opt.step()
    end = merge_qkv_state_dict(model.clip.clip.state_dict())
    assert end.keys() == start.keys()
    n_vis = len(model.clip.clip.visual.transformer.resblocks)
    for key, before in start.items():
        after = end[key]
        if not key.endswith("in_proj_weight"):
            assert torch.equal(after, before), f"{key} changed"  # biases, out_proj, MLP, LN, embeddings...
            continue
        d = before.shape[1]
        q_b, k_b, v_b = before.split(d)
        q_a, k_a, v_a = after.split(d)
        assert torch.equal(k_a, k_b), f"K rows of {key} changed"
        assert not torch.equal(v_a, v_b), f"V rows of {key} did not change"
        # The dense last image block uses only its value path: its query gets no gradient (as in CAT-Seg).
        if key == f"visual.transformer.resblocks.{n_vis - 1}.attn.in_proj_weight":
            assert torch.equal(q_a, q_b)
        else:
            assert not torch.equal(q_a, q_b), f"Q rows of {key} did not change"


def test_teacher_is_frozen_gets_no_gradient_and_does_not_change():
    model, start = _build("infoclip")
    teacher = model.teacher
    assert teacher is not None and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.clip.state_dict().items()}
    for k, v in start.items():
        assert torch.equal(before[k], v)  # the teacher is the pretrained CLIP, keys packed
    opt = build_optimizer(model)
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not any(id(p) in teacher_ids for g in opt.param_groups for p in g["params"])
    images, targets = _batch()
    model.train()
    assert not model.teacher.training
    for _ in range(2):
        opt.zero_grad()
        model(images, CLASSES, targets).loss.backward()
        opt.step()
    assert all(p.grad is None for p in teacher.parameters())
    for k, v in teacher.clip.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_lpam_gets_gradients_and_is_in_the_decoder_lr_group():
    model, _ = _build("infoclip")
    images, targets = _batch()
    model.train()
    model(images, CLASSES, targets).loss.backward()
    lpam = model.distiller.lpam
    for name, p in lpam.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    groups = param_groups(model)
    by_name = {g["name"]: g for g in groups}
    assert by_name["distiller"]["lr"] == 2e-4 and by_name["distiller"]["weight_decay"] == 1e-4
    assert by_name["distiller.no_decay"]["weight_decay"] == 0.0  # LPAM's LayerNorms
    assert by_name["clip"]["lr"] == pytest.approx(2e-6)
    assert by_name["decoder"]["lr"] == 2e-4
    assert by_name["decoder.no_decay"]["weight_decay"] == 0.0
    lpam_ids = {id(p) for p in lpam.parameters()}
    grouped = {id(p) for g in groups for p in g["params"]}
    assert lpam_ids <= grouped
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert grouped == trainable


def test_distill_none_builds_no_teacher_at_all():
    model, _ = _build("none")
    assert model.teacher is None and model.distiller is None
    assert not any(".teacher." in f".{n}" or n.startswith("teacher.") for n, _ in model.named_parameters())
    images, targets = _batch()
    out = model(images, CLASSES, targets)
    assert set(out.losses) == {"loss_sem_seg"} and out.distillation is None
    torch.testing.assert_close(out.loss, out.losses["loss_sem_seg"])
    with pytest.raises(RuntimeError, match="no teacher"):
        model.teacher_class_embeddings(CLASSES)


@pytest.mark.parametrize(("name", "term"), [("kl", "loss_kl"), ("maft", "loss_maft"), ("maftplus", None)])
def test_baseline_distillers_train(name, term):
    model, _ = _build(name)
    images, targets = _batch()
    out = model(images, CLASSES, targets)
    assert out.distillation is not None and torch.isfinite(out.loss)
    if term is not None:
        assert term in out.losses
    out.loss.backward()


def test_distillers_get_the_extra_inputs_they_declare(monkeypatch):
    """The model computes global image embeddings only for a distiller that lists them (MAFT)."""
    from infoclip import DISTILLERS, MAFTDistiller, register_distiller

    images, targets = _batch()
    seen = {}
    for name in ("maft", "kl", "infoclip"):
        model, _ = _build(name)
        forward = type(model.distiller).forward

        def spy(self, *args, _name=name, _forward=forward, **extras):
            seen[_name] = sorted(extras)
            return _forward(self, *args, **extras)

        monkeypatch.setattr(type(model.distiller), "forward", spy)
        model(images, CLASSES, targets)
        monkeypatch.undo()
    assert seen == {
        "maft": ["student_image_embedding", "teacher_image_embedding"],
        "kl": [],
        "infoclip": [],
    }
    assert set(MAFTDistiller.extra_inputs) == {"teacher_image_embedding", "student_image_embedding"}

    class NeedsLogits(MAFTDistiller):
        name = "maft_needs_logits"
        extra_inputs = ("teacher_logits",)

    model, _ = _build("maft")
    register_distiller(NeedsLogits)
    try:
        cfg = tiny_model_config("maft_needs_logits")
        with pytest.raises(ValueError, match="teacher_logits"):
            OVSSModel(cfg, clip=create_clip(TINY_CLIP, None)[0], tokenizer=model.clip.tokenizer)
    finally:
        DISTILLERS.pop("maft_needs_logits")


def test_state_dict_excludes_teacher_and_round_trips():
    model, _ = _build("infoclip", seed=0)
    sd = model.state_dict()
    assert sd and not any(k.startswith("teacher.") for k in sd)
    other, _ = _build("infoclip", seed=1)
    other.eval()
    stale = other.class_embeddings(CLASSES)  # cached in eval mode
    result = other.load_state_dict(sd, strict=True)
    fresh = other.class_embeddings(CLASSES)
    assert not torch.equal(fresh, stale)
    model.eval()
    torch.testing.assert_close(fresh, model.class_embeddings(CLASSES))
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in sd.items():
        assert torch.equal(other.state_dict()[k], v), k


def test_eval_text_cache_is_used_and_cleared_by_train():
    model, _ = _build("none")
    model.eval()
    first = model.class_embeddings(CLASSES)
    assert model.class_embeddings(CLASSES) is first
    model.train()
    assert not model._text_cache
    assert model.class_embeddings(CLASSES).requires_grad


def test_model_rejects_inconsistent_configs_and_inputs():
    cfg = tiny_model_config("none")
    clip, tok = create_clip(TINY_CLIP, None)
    bad = ModelConfig(
        clip=cfg.clip, decoder=_replace(cfg.decoder, feature_resolution=(4, 4)), distill=cfg.distill
    )
    with pytest.raises(ValueError, match="feature_resolution"):
        OVSSModel(bad, clip=copy.deepcopy(clip), tokenizer=tok)
    bad = ModelConfig(clip=cfg.clip, decoder=_replace(cfg.decoder, text_guidance_dim=32), distill=cfg.distill)
    with pytest.raises(ValueError, match="embed_dim"):
        OVSSModel(bad, clip=copy.deepcopy(clip), tokenizer=tok)
    model = OVSSModel(cfg, clip=clip, tokenizer=tok)
    with pytest.raises(ValueError, match="RGB"):
        model(torch.zeros(1, 1, 32, 32), CLASSES)
    with pytest.raises(ValueError, match="non-empty"):
        model(torch.zeros(1, 3, 32, 32), [])


def _replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


@pytest.mark.slow
def test_full_vitb16_model_decoder_parameter_count():
    model = OVSSModel(preset("vitb_384", distill="none", pretrained=None))
    counts = model.num_decoder_parameters()
    assert counts["aggregator"] == 2_308_961  # CAT-Seg's Aggregator at ViT-B/16
    # CAT-Seg's guidance upsampling: ConvTranspose2d(768, 256, 2, 2) and ConvTranspose2d(768, 128, 4, 4).
    assert counts["guidance_upsampling"] == (768 * 256 * 4 + 256) + (768 * 128 * 16 + 128)
    assert model.clip.embed_dim == 512 and model.clip.patch_size == 16
    trainable_clip = sum(p.numel() for p in model.clip.parameters() if p.requires_grad)
    # Q and V of 12 image blocks (768 wide) and 12 text blocks (512 wide).
    assert trainable_clip == 12 * 2 * 768 * 768 + 12 * 2 * 512 * 512


def test_bfloat16_teacher_trains_a_float32_student():
    cfg = tiny_model_config("infoclip")
    cfg = ModelConfig(
        clip=cfg.clip, decoder=cfg.decoder, distill=_replace(cfg.distill, teacher_dtype="bfloat16")
    )
    torch.manual_seed(0)
    clip, tok = create_clip(TINY_CLIP, None)
    model = OVSSModel(cfg, clip=clip, tokenizer=tok)
    assert model.teacher.dtype == torch.bfloat16 and model.clip.dtype == torch.float32
    images, targets = _batch()
    out = model(images, CLASSES, targets)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.distiller.lpam.key.weight.grad is not None


def test_sliding_window_inference_matches_an_explicit_loop():
    model, _ = _build("none")
    model.eval()
    images, _ = _batch(1, size=50)
    kernel, out_res, stride = 32, (48, 48), 16  # overlap 0.5: 2x2 windows at offsets 0 and 16
    got = model.predict_sliding_window(
        images, CLASSES, kernel=kernel, overlap=0.5, out_res=out_res, min_size=None, pooling_size=None
    )
    assert got.shape == (1, 5, 50, 50)

    def probs(view):
        logits = model(view, CLASSES).logits
        return torch.nn.functional.interpolate(logits, size=(kernel, kernel), mode="bilinear").sigmoid()

    with torch.no_grad():
        full = torch.nn.functional.interpolate(images, size=out_res, mode="bilinear")
        acc = torch.zeros(1, 5, *out_res)
        cnt = torch.zeros(1, 1, *out_res)
        for top in (0, stride):
            for left in (0, stride):
                acc[..., top : top + kernel, left : left + kernel] += probs(
                    full[..., top : top + kernel, left : left + kernel]
                )
                cnt[..., top : top + kernel, left : left + kernel] += 1
        whole = probs(torch.nn.functional.interpolate(images, size=(kernel, kernel), mode="bilinear"))
        whole = torch.nn.functional.interpolate(whole, size=out_res, mode="bilinear")
        expected = torch.nn.functional.interpolate((acc / cnt + whole) / 2, size=(50, 50), mode="bilinear")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="kernel"):
        model.predict_sliding_window(images, CLASSES, kernel=64, out_res=out_res, min_size=None)


def test_alignment_maps_come_from_the_registry():
    from ovss.plots import alignment_and_cosine_maps, dense_embeddings

    model, _ = _build("infoclip")
    model.eval()
    image = torch.rand(3, 32, 32) * 255
    r, cos = alignment_and_cosine_maps(model, image, CLASSES)
    dense, text = dense_embeddings(model, image[None], CLASSES)
    h, w = dense.shape[-2:]
    expected = model.distiller.lpam(dense, text)[0].T.reshape(len(CLASSES), h, w)
    torch.testing.assert_close(r, expected, rtol=0, atol=0)  # the same computation, so bit-identical
    assert cos.shape == (len(CLASSES), h, w) and float(cos.abs().max()) <= 1.0 + 1e-6
    for name in ("none", "kl"):
        other, _ = _build(name)
        with pytest.raises(ValueError, match=f"distill.name='{name}' does not"):
            alignment_and_cosine_maps(other.eval(), image, CLASSES)

"""Weights as users hold them (issue 12, B): OpenAI's TorchScript CLIP, open_clip / HF files, CAT-Seg's
detectron2 model_final.pth; each written here in exactly that format from a tiny random model."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

pytest.importorskip("open_clip")
pytest.importorskip("timm")

import open_clip
from ovss.clip import create_clip
from ovss.config import RunConfig
from ovss.inference import load_model_for_inference
from ovss.model import OVSSModel
from ovss.tiny_model import TINY_CLIP, register_tiny_clip, tiny_model_config
from ovss.weights import catseg_to_ovss, is_torchscript_archive, openai_state_dict

from ovss import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")


class _Holder(nn.Module):
    """A scriptable module tree that only holds tensors under given names (as OpenAI's archive does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _save_openai_archive(state: dict[str, torch.Tensor], path) -> None:
    """``torch.jit.save`` of a module whose ``state_dict`` is ``state`` (in fp16, as OpenAI ships it) plus
    OpenAI's integer extras."""
    root = _Holder()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        mod = root
        for p in parents:
            if not hasattr(mod, p):
                mod.add_module(p, _Holder())
            mod = getattr(mod, p)
        v = value.half() if value.is_floating_point() else value
        mod.register_parameter(leaf, nn.Parameter(v.clone(), requires_grad=False))
    for name, val in (("input_resolution", 16), ("context_length", 16), ("vocab_size", 49408)):
        root.register_buffer(name, torch.tensor(val))
    with warnings.catch_warnings():  # torch.jit is deprecated for new code; OpenAI's files are TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(root), str(path))


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    register_tiny_clip()
    torch.manual_seed(0)
    # fp16-representable values, so the archive's fp16 copy converts back exactly
    return {
        k: v.half().float()
        for k, v in open_clip.create_model(TINY_CLIP, pretrained=None).state_dict().items()
    }


def test_openai_torchscript_archive_loads(tmp_path, tiny_state):
    path = tmp_path / "ViT-tiny.pt"
    _save_openai_archive(tiny_state, path)
    assert is_torchscript_archive(path)
    state = openai_state_dict(path)
    assert set(state) == set(tiny_state)  # the extras are dropped
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    model, _ = create_clip(TINY_CLIP, str(path))
    got = model.state_dict()
    for k, v in tiny_state.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)


def test_openai_archive_of_another_architecture_is_refused(tmp_path, tiny_state):
    bad = dict(tiny_state)
    bad["visual.proj"] = torch.zeros(5, 5)
    path = tmp_path / "other.pt"
    _save_openai_archive(bad, path)
    with pytest.raises(ValueError, match="does not fit the architecture"):
        create_clip(TINY_CLIP, str(path))


def test_open_clip_and_hf_files_load(tmp_path, tiny_state):
    torch.save(tiny_state, tmp_path / "open_clip_pytorch_model.bin")
    safetensors = pytest.importorskip("safetensors.torch")
    safetensors.save_file(
        {k: v.contiguous() for k, v in tiny_state.items()}, tmp_path / "open_clip_model.safetensors"
    )
    for name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors"):
        assert not is_torchscript_archive(tmp_path / name)
        model, _ = create_clip(TINY_CLIP, str(tmp_path / name))
        torch.testing.assert_close(
            model.state_dict()["visual.proj"], tiny_state["visual.proj"], rtol=0, atol=0
        )


# CAT-Seg's module paths, written from its code (CATSeg.sem_seg_head = CATSegHead, whose predictor holds
# clip_model and transformer = Aggregator; upsample1/2 on CATSeg itself), against ours.
_CATSEG_NAMES = [
    ("clip.clip.visual.transformer.resblocks.0.attn.q_proj_weight",
     "sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.q_proj_weight"),
    ("clip.clip.token_embedding.weight", "sem_seg_head.predictor.clip_model.token_embedding.weight"),
    ("aggregator.layers.0.swin_block.block_1.attn.q.weight",
     "sem_seg_head.predictor.transformer.layers.0.swin_block.block_1.attn.q.weight"),
    ("aggregator.head.weight", "sem_seg_head.predictor.transformer.head.weight"),
    ("upsample1.weight", "upsample1.weight"),
]  # fmt: skip


def _to_catseg(key: str) -> str:
    if key.startswith("clip.clip."):
        return "sem_seg_head.predictor.clip_model." + key[len("clip.clip.") :]
    if key.startswith("aggregator."):
        return "sem_seg_head.predictor.transformer." + key[len("aggregator.") :]
    assert key.startswith(("upsample1.", "upsample2.")), key
    return key


def test_catseg_names_by_hand():
    for ours, theirs in _CATSEG_NAMES:
        assert _to_catseg(ours) == theirs
        assert list(catseg_to_ovss({theirs: torch.zeros(1)})) == [ours]
    with pytest.raises(ValueError, match="not CAT-Seg's"):
        catseg_to_ovss({"sem_seg_head.predictor.text_features": torch.zeros(1)})


def test_catseg_detectron2_checkpoint_loads_through_the_converter(tmp_path):
    cfg = RunConfig.from_dict({"model": tiny_model_config("none").to_dict()})
    torch.manual_seed(3)
    model = OVSSModel(cfg.model)
    ours = model.state_dict()
    catseg = {_to_catseg(k): v.clone() for k, v in ours.items()}
    assert set(catseg) >= {theirs for _, theirs in _CATSEG_NAMES}
    # detectron2's Checkpointer.save: {"model": ..., plus the trainer's state}
    torch.save(
        {"model": catseg, "iteration": 79999, "scheduler": {"last_epoch": 79999}},
        tmp_path / "model_final.pth",
    )
    loaded = load_model_for_inference(cfg, tmp_path / "model_final.pth")
    got = loaded.state_dict()
    assert set(got) == set(ours)
    for k, v in ours.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    broken = dict(catseg)
    broken["sem_seg_head.pixel_decoder.x"] = torch.zeros(1)
    torch.save({"model": broken}, tmp_path / "broken.pth")
    with pytest.raises(ckpt.CheckpointError, match="CAT-Seg checkpoint"):
        load_model_for_inference(cfg, tmp_path / "broken.pth")

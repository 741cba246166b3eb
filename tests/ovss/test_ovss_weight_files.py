"""Weight files: CAT-Seg's own checkpoints (with the shifted-window attn_mask buffers it saves) load;
every damaged or mismatched file is a CheckpointError with exit status 3 (predict.py, evaluate.py); an
inconsistent model section is refused by load_config (exit status 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("timm")
pytest.importorskip("yaml")

import torch
import yaml
from ovss.config import RunConfig, load_config
from ovss.evaluation import eval_pooling, model_logits_fn, predict_probabilities
from ovss.inference import load_model_for_inference
from ovss.model import OVSSModel
from ovss.tiny_model import tiny_model_config

from example_scripts import ovss_script
from ovss import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")

EVAL = {"kernel": 32, "out_res": 48, "test_min_size": 48, "test_max_size": 200}


# ----------------------------------------------------------------------------- CAT-Seg's file, by its names
def _catseg_shift_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """The attention mask CAT-Seg's SwinTransformerBlock registers (and saves) for a shifted block,
    written here from its description: label the 3x3 regions that the cyclic shift brings together,
    cut the label map into windows, and give -100 to every pair of tokens of one window whose labels
    differ (0 otherwise). Shape (windows, window², window²)."""
    labels = np.zeros((h, w))
    bounds = lambda n: [(0, n - window), (n - window, n - shift), (n - shift, n)]  # noqa: E731
    k = 0
    for y0, y1 in bounds(h):
        for x0, x1 in bounds(w):
            labels[y0:y1, x0:x1] = k
            k += 1
    wins = [
        labels[y : y + window, x : x + window].reshape(-1)
        for y in range(0, h, window)
        for x in range(0, w, window)
    ]
    out = np.stack([np.where(v[None, :] != v[:, None], -100.0, 0.0) for v in wins])
    return torch.from_numpy(out).float()


def _catseg_key(ours: str) -> str:
    """CAT-Seg's module path of one of our parameters (CATSeg.sem_seg_head.predictor.{clip_model,
    transformer}; upsample1/2 on CATSeg itself)."""
    for src, dst in (("clip.clip.", "sem_seg_head.predictor.clip_model."),
                     ("aggregator.", "sem_seg_head.predictor.transformer.")):  # fmt: skip
        if ours.startswith(src):
            return dst + ours[len(src) :]
    assert ours.startswith(("upsample1.", "upsample2.")), ours
    return ours


def _catseg_checkpoint(cfg: RunConfig, path: Path, *, seed: int = 3) -> tuple[dict, OVSSModel]:
    """A detectron2 ``model_final.pth`` as CAT-Seg saves it: its parameter names, and one persistent
    ``attn_mask`` buffer per shifted block (block_2 of every aggregation layer; block_1 registers None,
    which is not saved)."""
    torch.manual_seed(seed)
    model = OVSSModel(cfg.model)
    state = {_catseg_key(k): p.detach().clone() for k, p in model.named_parameters()}
    d = cfg.model.decoder
    h, w = d.feature_resolution
    for i in range(d.num_layers):
        key = f"sem_seg_head.predictor.transformer.layers.{i}.swin_block.block_2.attn_mask"
        state[key] = _catseg_shift_mask(h, w, d.window_size, d.window_size // 2)
    torch.save({"model": state, "iteration": 79999, "scheduler": {"last_epoch": 79999}}, path)
    return state, model


@pytest.fixture
def run_cfg(tmp_path):
    data = {"model": tiny_model_config("none").to_dict(), "eval": {"datasets": ["coco_stuff_val"], **EVAL}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "run.yaml", RunConfig.from_dict(data)


def test_catseg_checkpoint_with_its_attn_mask_buffers_loads(tmp_path, run_cfg):
    _, cfg = run_cfg
    state, reference = _catseg_checkpoint(cfg, tmp_path / "model_final.pth")
    masks = [k for k in state if k.endswith("attn_mask")]
    assert masks == [
        f"sem_seg_head.predictor.transformer.layers.{i}.swin_block.block_2.attn_mask"
        for i in range(cfg.model.decoder.num_layers)
    ]
    assert state[masks[0]].shape == (4, 16, 16)  # an 8x8 grid in 4x4 windows
    loaded = load_model_for_inference(
        cfg, tmp_path / "model_final.pth"
    )  # the attn_mask buffers are not unexpected keys
    got = dict(loaded.named_parameters())
    for k, p in reference.named_parameters():
        torch.testing.assert_close(got[k], p, rtol=0, atol=0)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 40, 60), dtype=np.uint8))
    names = ["cat", "dog", "sky"]
    reference.eval()
    outs = []
    for m in (loaded, reference):
        with eval_pooling(m, (1, 1)):
            outs.append(
                predict_probabilities(model_logits_fn(m, names), image, (40, 60), **cfg.eval.protocol())
            )
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)  # the same weights, the same operations


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("one_entry", "differs from the mask the configured decoder computes in 1 of"),
        ("shape", "has shape (1, 16, 16) in the file but (4, 16, 16)"),
        ("extra_layer", "has no shifted window there"),
    ],
)
def test_a_wrong_attn_mask_is_refused(tmp_path, run_cfg, capsys, damage, words):
    cfg_path, cfg = run_cfg
    state, _ = _catseg_checkpoint(cfg, tmp_path / "ok.pth")
    key = "sem_seg_head.predictor.transformer.layers.1.swin_block.block_2.attn_mask"
    if damage == "one_entry":
        mask = state[key].clone()
        flip = (mask == 0).nonzero()[0]
        mask[tuple(flip)] = -100.0
        state[key] = mask
    elif damage == "shape":
        state[key] = state[key][:1].clone()
    else:
        state["sem_seg_head.predictor.transformer.layers.7.swin_block.block_2.attn_mask"] = state[key].clone()
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(ckpt.CheckpointError, match="attention mask") as exc:
        load_model_for_inference(cfg, tmp_path / "bad.pth")
    assert words in str(exc.value) and "attn_mask" in str(exc.value)
    _tiny_png(tmp_path / "in" / "a.png")
    argv = ["--config", str(cfg_path), "--weights", str(tmp_path / "bad.pth"), "--classes", "a,b",
            "--output", str(tmp_path / "out"), "--device", "cpu", str(tmp_path / "in")]  # fmt: skip
    with pytest.raises(SystemExit) as code:
        ovss_script("predict").main(argv)
    assert code.value.code == 3 and words in capsys.readouterr().err


def _tiny_png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(path)


def _saved_weights(cfg: RunConfig, path: Path) -> dict:
    torch.manual_seed(0)
    state = OVSSModel(cfg.model).state_dict()
    ckpt.save_atomic({"model": state}, path, fmt=ckpt.WEIGHTS_FORMAT)
    return state


def test_shape_mismatch_names_the_first_tensor_and_both_shapes(tmp_path, run_cfg, capsys):
    cfg_path, cfg = run_cfg
    state = _saved_weights(cfg, tmp_path / "model.pth")
    first = next(k for k in state if k.startswith("aggregator."))
    bad = dict(state)
    bad[first] = torch.zeros(*state[first].shape[:-1], state[first].shape[-1] + 1)
    bad["aggregator.head.weight"] = torch.zeros(3, 3)
    torch.save(bad, tmp_path / "bare.pth")  # a bare state dict
    shapes = f"{first} has shape {tuple(bad[first].shape)} in the file but {tuple(state[first].shape)}"
    with pytest.raises(ckpt.CheckpointError) as exc:
        load_model_for_inference(cfg, tmp_path / "bare.pth")
    assert shapes in str(exc.value) and "2 tensor(s) differ in shape" in str(exc.value)
    catseg = {_catseg_key(k): v for k, v in bad.items()}  # the CAT-Seg converter's path
    torch.save({"model": catseg}, tmp_path / "catseg.pth")
    _tiny_png(tmp_path / "in" / "a.png")
    for weights in ("bare.pth", "catseg.pth"):
        argv = ["--config", str(cfg_path), "--weights", str(tmp_path / weights), "--classes", "a,b",
                "--output", str(tmp_path / "out"), "--device", "cpu", str(tmp_path / "in")]  # fmt: skip
        with pytest.raises(SystemExit) as code:
            ovss_script("predict").main(argv)
        assert (
            code.value.code == 3 and shapes in capsys.readouterr().err
        )  # a CheckpointError, not a RuntimeError traceback
        with pytest.raises(SystemExit) as code:
            ovss_script("evaluate").main(["--config", str(cfg_path), "--checkpoint", str(tmp_path / weights),
                                      "--device", "cpu", "--out", str(tmp_path / "ev")])  # fmt: skip
        assert code.value.code == 3 and shapes in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "ev").exists()


def test_damaged_weight_files_exit_3(tmp_path, run_cfg, capsys):
    cfg_path, cfg = run_cfg
    _saved_weights(cfg, tmp_path / "model.pth")
    data = (tmp_path / "model.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    torch.save({"model": {"sem_seg_head.pixel_decoder.w": torch.zeros(1)}}, tmp_path / "foreign.pth")
    state = _saved_weights(cfg, tmp_path / "again.pth")
    state["aggregator.head.bias"] = torch.full_like(state["aggregator.head.bias"], float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    _tiny_png(tmp_path / "in" / "a.png")
    for name, words in (("cut.pth", "cannot be read safely"), ("foreign.pth", "CAT-Seg checkpoint"),
                        ("missing.pth", "does not exist"), ("nan.pth", "aggregator.head.bias holds")):  # fmt: skip
        argv = ["--config", str(cfg_path), "--weights", str(tmp_path / name), "--classes", "a,b",
                "--output", str(tmp_path / "out"), "--device", "cpu", str(tmp_path / "in")]  # fmt: skip
        with pytest.raises(SystemExit) as code:
            ovss_script("predict").main(argv)
        assert code.value.code == 3 and words in capsys.readouterr().err, name


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.decoder.feature_resolution=[6,6]", "feature_resolution"),
        ("model.clip.image_size=30", "image_size=30"),
        ("model.decoder.text_guidance_dim=24", "embedding width 16"),
        ("model.clip.guidance_layers=[0]", "two distinct blocks"),
        ("model.clip.guidance_layers=[0,2]", "0..1"),
        ("model.decoder.window_size=3", "window"),
        ("model.clip.model_name=RN50", "not a class-token ViT"),
        ("model.clip.model_name=nope", "not an open_clip architecture"),
    ],
)
def test_an_inconsistent_model_section_is_refused_by_load_config(tmp_path, run_cfg, capsys, override, words):
    cfg_path, cfg = run_cfg
    with pytest.raises(ValueError, match="model") as exc:
        load_config(cfg_path, [override])
    assert words in str(exc.value)  # refused by load_config, not by the model's constructor
    _saved_weights(cfg, tmp_path / "model.pth")
    _tiny_png(tmp_path / "in" / "a.png")
    scripts = {
        "predict": ["--config", str(cfg_path), "--weights", str(tmp_path / "model.pth"), "--classes", "a,b",
                    "--output", str(tmp_path / "out"), str(tmp_path / "in"), override],
        "evaluate": ["--config", str(cfg_path), "--checkpoint", str(tmp_path / "model.pth"), override],
        "train": ["--config", str(cfg_path), override],
    }  # fmt: skip
    for name, argv in scripts.items():
        with pytest.raises(SystemExit) as code:
            ovss_script(name).main(argv)
        assert code.value.code == 2 and words in capsys.readouterr().err, name

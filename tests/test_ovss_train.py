"""OVSS trainer: configs, schedule, data order, exact resumption, and the CPU demo end to end (shortened)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("open_clip")
pytest.importorskip("yaml")
pytest.importorskip("tensorboard")

from ovss.trainer import ResumableBatchSampler, Trainer, apply_overrides, cosine_factor, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "ovss"
DEMO = EXAMPLES / "configs" / "demo.yaml"


def _small(tmp_path: Path, out: str, *extra: str) -> dict:
    return load_config(
        DEMO,
        [
            f"output_dir={tmp_path / out}",
            f"data.root={tmp_path / 'data'}",
            "data.synthetic={train: 6, val: 2, seed: 1, eval_datasets: [coco_stuff_val]}",
            "train.batch_size=2",
            "train.max_iter=4",
            "train.checkpoint_period=2",
            "train.log_period=1",
            "train.progress=false",
            "train.plots=false",
            "eval.datasets=[]",
            *extra,
        ],
    )


def test_config_files_load():
    for path in sorted((EXAMPLES / "configs").glob("*.yaml")):
        if path.name in ("vitb_384.yaml", "vitl_336.yaml"):
            continue  # model-only presets (no trainer sections): covered by test_ovss_model
        cfg = load_config(path)
        assert cfg["model"]["distill"]["name"] in ("none", "infoclip", "kl", "maft", "maftplus"), path
    cfg = load_config(EXAMPLES / "configs" / "train_vitb_384.yaml", ["model.distill.name=none"])
    assert (
        cfg["model"]["clip"]["model_name"] == "ViT-B-16-quickgelu"
        and cfg["model"]["distill"]["name"] == "none"
    )
    assert cfg["train"]["max_iter"] == 80000 and cfg["train"]["grad_clip"] == 0.01


def test_config_errors():
    with pytest.raises(ValueError, match="unknown key"):
        load_config(DEMO, ["train.max_iters=3"])
    with pytest.raises(ValueError, match=r"key\.sub=value"):
        apply_overrides({}, ["oops"])
    with pytest.raises(ValueError, match="unknown dataset"):
        load_config(DEMO, ["eval.datasets=[ade9000]"])


def test_cosine_schedule():
    assert cosine_factor(0, 10) == 1.0 and cosine_factor(10, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine_factor(5, 10) == pytest.approx(0.5)
    assert cosine_factor(2, 10) == pytest.approx((1 + math.cos(math.pi * 0.2)) / 2)


def test_sampler_is_a_function_of_iteration_and_shards_ranks():
    full = ResumableBatchSampler(5, 4, seed=3, start_iter=0, max_iter=6)
    batches = list(full)
    resumed = list(ResumableBatchSampler(5, 4, seed=3, start_iter=4, max_iter=6))
    assert resumed == batches[4:]
    # every epoch (5 consecutive stream positions) is a permutation
    flat = [k for b in batches for k in b]
    assert sorted(i for i, _ in flat[:5]) == list(range(5)) and sorted(i for i, _ in flat[5:10]) == list(
        range(5)
    )
    r0 = list(ResumableBatchSampler(5, 4, seed=3, start_iter=0, max_iter=6, rank=0, world=2))
    r1 = list(ResumableBatchSampler(5, 4, seed=3, start_iter=0, max_iter=6, rank=1, world=2))
    for it, b in enumerate(batches):
        assert r0[it] == b[0::2] and r1[it] == b[1::2]
    with pytest.raises(ValueError, match="divisible"):
        ResumableBatchSampler(5, 3, seed=0, start_iter=0, max_iter=1, world=2)


class _Interrupted(Exception):
    pass


class _StopAfter(Trainer):
    stop_at = 2

    def train_step(self, batch):
        if self.iteration == self.stop_at:
            raise _Interrupted
        return super().train_step(batch)


@pytest.mark.usefixtures("one_thread")
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    full = Trainer(_small(tmp_path, "full"))
    full.train()
    assert full.iteration == 4

    broken = _StopAfter(_small(tmp_path, "resumed"))
    with pytest.raises(_Interrupted):
        broken.train()
    ckpts = sorted((tmp_path / "resumed" / "checkpoints").glob("iter_*.pth"))
    assert [p.name for p in ckpts] == ["iter_0000002.pth"]
    assert (tmp_path / "resumed" / "checkpoints" / "last_checkpoint").read_text() == "iter_0000002.pth"

    resumed = Trainer(_small(tmp_path, "resumed"))
    assert resumed.resume() and resumed.iteration == 2
    resumed.train()
    assert resumed.iteration == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and not any(k.startswith("teacher.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for k in sa:
        torch.testing.assert_close(sa[k]["exp_avg"], sb[k]["exp_avg"], rtol=0, atol=1e-6)
    assert full.scheduler.state_dict()["last_epoch"] == resumed.scheduler.state_dict()["last_epoch"] == 4
    losses_full = [h["loss"] for h in full.history]
    losses_resumed = [h["loss"] for h in resumed.history]
    assert losses_resumed == pytest.approx(losses_full, abs=1e-6)


@pytest.mark.slow
def test_demo_end_to_end_shortened(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "demo"
    cmd = [
        sys.executable, str(EXAMPLES / "train.py"), "--config", str(DEMO),
        f"output_dir={out}", f"data.root={tmp_path / 'data'}",
        "data.synthetic={train: 4, val: 2, seed: 0, eval_datasets: [coco_stuff_val]}",
        "train.max_iter=3", "train.batch_size=2", "train.checkpoint_period=2", "train.log_period=1",
        "train.progress=false",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"outputs written to {out.resolve()}" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 100.0 and metrics["iterations"] == 3
    assert (out / "checkpoints" / "model_final.pth").is_file()
    results = json.loads((out / "results.json").read_text())
    assert len(results["coco_stuff_val"]["IoU"]) == 6
    assert "InfoCLIP ViT-B/16 (paper)" in (out / "results.md").read_text()
    for name in ("training_curves.png", "predictions.png", "lpam_alignment.png", "tsne.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
    assert (out / "tensorboard").is_dir() and (out / "metrics.jsonl").read_text().count("\n") >= 3


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    """DDP over gloo: two ranks split the global batch, InfoCLIP gathers, rank 0 writes the outputs."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(EXAMPLES / "train.py"), "--config", str(DEMO),
        f"output_dir={out}", f"data.root={tmp_path / 'data'}",
        "data.synthetic={train: 4, val: 2, seed: 0, eval_datasets: [coco_stuff_val]}",
        "train.max_iter=2", "train.batch_size=2", "train.checkpoint_period=0", "train.log_period=1",
        "train.progress=false", "train.plots=false", "eval.datasets=[coco_stuff_val]",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and 0.0 <= metrics["mIoU"] <= 100.0
    state = torch.load(out / "checkpoints" / "model_final.pth", weights_only=False)
    assert state["iteration"] == 2 and state["config"]["train"]["batch_size"] == 2

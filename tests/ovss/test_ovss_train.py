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

from ovss.checkpoint import CheckpointError, load_checkpoint
from ovss.run_log import Progress, read_metrics
from ovss.trainer import ResumableBatchSampler, Trainer, cosine_factor, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ovss"
DEMO = EXAMPLES / "configs" / "demo.yaml"


def _small(tmp_path: Path, out: str, *extra: str):
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
    # one run, one log: the replayed iterations (3, 4 after the crash at 2) appear once, same run id
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert {r["run"] for r in rows} == {resumed.run_id} and resumed.run_id != full.run_id
    assert [r["loss"] for r in rows] == pytest.approx(losses_full, abs=1e-6)
    # the exported model is weights-only and equals the trained one
    exported = torch.load(tmp_path / "resumed" / "model.pth", weights_only=True)
    for k, v in exported["model"].items():
        assert torch.equal(v, b[k]), k
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "model_final.pth", weights_only=True)
    assert final["iteration"] == 4 and isinstance(final["rng"]["numpy"]["keys"], torch.Tensor)


@pytest.mark.usefixtures("one_thread")
def test_after_step_hooks_run_on_their_periods(tmp_path):
    """Logging every log_period and at the last iteration, evaluation every eval_period before the last
    (its rows in metrics.jsonl), no periodic checkpoint with checkpoint_period=0, only the final one."""
    cfg = _small(
        tmp_path,
        "hooks",
        "train.log_period=3",
        "train.checkpoint_period=0",
        "train.eval_period=2",
        "eval.datasets=[coco_stuff_val]",
        "eval.limit=1",
    )
    trainer = Trainer(cfg)
    metrics = trainer.train()
    out = tmp_path / "hooks"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r.get("eval")) for r in rows] == [(2, "coco_stuff_val"), (3, None), (4, None)]
    assert [h["iteration"] for h in trainer.history] == [3, 4]
    assert not list((out / "checkpoints").glob("iter_*.pth"))
    assert (out / "checkpoints" / "model_final.pth").is_file()
    assert set(metrics["per_dataset_mIoU"]) == {"coco_stuff_val"} and metrics["iterations"] == 4


class _StopAt(Trainer):
    """Crashes at ``stop_at`` after the log has recorded iterations beyond the last checkpoint."""

    stop_at = 3

    def train_step(self, batch):
        if self.iteration == self.stop_at:
            raise _Interrupted
        return super().train_step(batch)


@pytest.mark.usefixtures("one_thread")
def test_resumed_log_is_rewound_and_a_second_run_is_refused(tmp_path):
    with pytest.raises(_Interrupted):
        _StopAt(_small(tmp_path, "run")).train()  # logged 1..3, checkpoint at 2
    log = tmp_path / "run" / "metrics.jsonl"
    assert [json.loads(x)["iteration"] for x in log.read_text().splitlines()] == [1, 2, 3]
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(_small(tmp_path, "run")).train()  # a new run into the same folder
    t = Trainer(_small(tmp_path, "run"))
    assert t.resume() and t.iteration == 2
    t.train()
    rows = read_metrics(log)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert [json.loads(x)["iteration"] for x in log.read_text().splitlines()] == [1, 2, 3, 4]


def test_progress_is_a_bar_on_a_terminal_and_throttled_lines_in_a_file():
    import io

    class _Tty(io.StringIO):
        def isatty(self):
            return True

    plain = io.StringIO()
    p = Progress(1000, desc="train", stream=plain, interval=3600)
    for _ in range(1000):
        p.update(loss=0.25)
    p.close()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in plain.getvalue()  # the first update and the last one
    assert lines[-1].startswith("train: 1000/1000 (100%), loss 0.25, elapsed")
    tty = _Tty()
    with Progress(10, desc="train", stream=tty) as bar:
        bar.update(10)
    assert "\r" in tty.getvalue() and "10/10" in tty.getvalue()
    silent = io.StringIO()
    with Progress(10, stream=silent, enabled=False) as off:
        off.update(10)
    assert silent.getvalue() == ""


def _cli(*args: str):
    import sys

    sys.path.insert(0, str(EXAMPLES))
    import importlib

    train = importlib.import_module("train")
    return train.main(list(args))


def _cli_exit(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        _cli(*args)
    return info.value.code, capsys.readouterr().err


def _small_args(tmp_path: Path, out: str) -> list[str]:
    return [
        "--config", str(DEMO), f"output_dir={tmp_path / out}", f"data.root={tmp_path / 'data'}",
        "data.synthetic={train: 6, val: 2, seed: 1, eval_datasets: [coco_stuff_val]}",
        "train.batch_size=2", "train.max_iter=2", "train.checkpoint_period=1", "train.log_period=1",
        "train.progress=false", "train.plots=false", "eval.datasets=[]",
    ]  # fmt: skip


@pytest.mark.usefixtures("one_thread")
def test_command_line_resume_semantics(tmp_path, capsys):
    args = _small_args(tmp_path, "run")
    code, err = _cli_exit(capsys, *args, "--resume", str(tmp_path / "nope.pth"))
    assert code == 3 and "nope.pth" in err
    code, err = _cli_exit(capsys, *args, "--resume")
    assert code == 3 and "no checkpoint" in err and "--resume-or-start" in err
    code, err = _cli_exit(capsys, *args, "train.max_iter=0")
    assert code == 2 and "train.max_iter=0" in err
    # an override right after --resume is an override, not the path
    code, err = _cli_exit(capsys, *args[:-1], "--resume", "eval.datasets=[]")
    assert code == 3 and "no checkpoint" in err
    assert _cli(*args, "--resume-or-start")["iterations"] == 2  # nothing to resume: starts
    code, err = _cli_exit(capsys, *args)
    assert code == 4 and "--resume" in err and "--start-over" in err
    assert _cli(*args, "train.max_iter=3", "--resume")["iterations"] == 3
    bad = tmp_path / "run" / "checkpoints" / "model_final.pth"
    bad.write_bytes(bad.read_bytes()[:-100])
    code, err = _cli_exit(capsys, *args, "--resume", str(bad))
    assert code == 3 and "model_final.pth" in err
    assert _cli(*args, "--start-over")["iterations"] == 2
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]["iteration"] == 2


def test_unreadable_checkpoint_error_names_the_file(tmp_path):
    t = Trainer(_small(tmp_path, "x"))
    (tmp_path / "garbage.pth").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        t.resume(tmp_path / "garbage.pth")


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
    state = load_checkpoint(out / "checkpoints" / "model_final.pth")
    assert state["iteration"] == 2 and state["config"]["train"]["batch_size"] == 2


def test_read_metrics_takes_one_run_without_duplicates(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [
        {"run": "a", "iteration": 1, "loss": 9.0},
        {"run": "a", "iteration": 2, "loss": 8.0},
        {"run": "b", "iteration": 1, "loss": 1.0},
        {"run": "b", "iteration": 2, "loss": 0.5},
        {"run": "b", "iteration": 2, "loss": 0.4},  # a replayed iteration of an old log: the last one wins
        {"run": "b", "iteration": 2, "eval": "coco_stuff_val", "mIoU": 50.0},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"run": "b", "iter')  # cut by a crash
    got = read_metrics(log)
    assert [(r["iteration"], r.get("loss"), r.get("mIoU")) for r in got] == [
        (1, 1.0, None),
        (2, 0.4, None),
        (2, None, 50.0),
    ]
    assert [r["loss"] for r in read_metrics(log, run="a")] == [9.0, 8.0]


@pytest.mark.usefixtures("one_thread")
def test_evaluate_and_visualize_refuse_a_checkpoint_carrying_code(tmp_path):
    import importlib
    import sys

    sys.path.insert(0, str(EXAMPLES))
    evaluate, visualize = importlib.import_module("evaluate"), importlib.import_module("visualize")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "x": Payload()}, evil)
    common = ["--config", str(DEMO), f"data.root={tmp_path / 'data'}", f"output_dir={tmp_path / 'out'}"]
    with pytest.raises(SystemExit) as info:
        evaluate.main([*common, "--checkpoint", str(evil), "--datasets", "coco_stuff_val"])
    assert info.value.code == 3
    with pytest.raises(SystemExit) as info:
        visualize.main([*common, "--checkpoint", str(evil), "--what", "predictions"])
    assert info.value.code == 3
    assert not marker.exists()

"""The OVSS proxy benchmark (benchmarks/ovss_proxy): its world generator, and a smoke run with resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.ovss_proxy.config import (  # noqa: E402
    CALIBRATION_SEEDS,
    REPORT_SEEDS,
    VARIANTS,
    ProxyConfig,
    WorldConfig,
    config_hash,
)
from benchmarks.ovss_proxy.pretrain import (  # noqa: E402
    dense_alignment_loss,
    patch_targets,
    pretrain_image,
    pretrain_sample,
    pretraining_key,
)
from benchmarks.ovss_proxy.world import SPLITS, load_split, render_scene, write_world  # noqa: E402

SMALL = dataclasses.replace(WorldConfig(), num_train=3, num_val=2, image_size=24)


def test_splits_partition_the_vocabulary_and_every_new_word_is_seen():
    w = WorldConfig()
    groups = [set(w.seen), set(w.unseen), set(w.held_out)]
    assert sum(len(g) for g in groups) == len(w.vocabulary) == len(set().union(*groups))
    assert all(g for g in groups)
    seen_words = {word for name in w.seen for word in name.split(" ")}
    for name in (*w.unseen, *w.held_out):
        assert set(name.split(" ")) <= seen_words, name
    # a new class is a new *combination*: it is never a seen class
    assert not set(w.unseen) & set(w.seen)


def test_report_and_calibration_seeds_are_disjoint():
    assert not set(REPORT_SEEDS) & set(CALIBRATION_SEEDS)
    assert len(REPORT_SEEDS) >= 3


def test_render_scene_is_a_function_of_the_seed():
    w = WorldConfig()
    a = render_scene(w.seen, w, np.random.default_rng(5))
    b = render_scene(w.seen, w, np.random.default_rng(5))
    c = render_scene(w.seen, w, np.random.default_rng(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    image, label = a
    assert image.shape == (w.image_size, w.image_size, 3) and image.dtype == np.uint8
    ids = set(np.unique(label).tolist()) - {255}
    lo, hi = w.regions
    assert lo <= len(ids) <= hi
    assert ids <= {w.vocabulary.index(n) for n in w.seen}


def test_write_world_layout_determinism_and_groups(tmp_path):
    root = write_world(tmp_path / "a", SMALL, seed=3)
    again = write_world(tmp_path / "b", SMALL, seed=3)
    other = write_world(tmp_path / "c", SMALL, seed=4)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert any((root / f).read_bytes() != (other / f).read_bytes() for f in files if f.suffix == ".png")
    assert json.loads((root / "ovss-proxy" / "classes.json").read_text()) == list(SMALL.vocabulary)
    for split, group in SPLITS.items():
        assert len(list((root / "ovss-proxy" / "images" / split).glob("*.png"))) == (
            SMALL.num_train if split == "train" else SMALL.num_val
        )
        ds = load_split(root, split, SMALL)
        names = SMALL.seen if group == "seen" else SMALL.unseen
        assert ds.class_names == list(names) and ds.num_eval_classes == len(names)
        for i in range(len(ds)):
            s = ds[i]
            assert s["image"].shape == (3, SMALL.image_size, SMALL.image_size)
            labels = set(s["label"].unique().tolist())
            # every labelled pixel is a class of this split's group (renumbered 0..K-1), borders are 255
            assert labels - {255} and labels <= set(range(len(names))) | {255}
    # the cached world is reused, and a foreign folder is refused rather than mixed in
    assert write_world(tmp_path / "a", SMALL, seed=3) == root
    (root / "manifest.json").write_text("{}")
    with pytest.raises(RuntimeError, match="different or unfinished world"):
        write_world(tmp_path / "a", SMALL, seed=3)


def test_config_hash_tracks_every_setting():
    base = ProxyConfig()
    assert config_hash(base.world) == config_hash(WorldConfig())
    assert config_hash(base.world) != config_hash(dataclasses.replace(base.world, num_train=1))
    assert config_hash(base.finetune) != config_hash(dataclasses.replace(base.finetune, clip_multiplier=0.5))


def test_config_hash_and_pretraining_key_track_the_dense_term():
    base = ProxyConfig()
    assert base.pretrain.dense_weight > 0  # the calibrated setting pretrains the dense path
    other = dataclasses.replace(base, pretrain=dataclasses.replace(base.pretrain, dense_weight=0.0))
    assert pretraining_key(base) != pretraining_key(other)
    assert config_hash(base.pretrain) != config_hash(other.pretrain)


def test_pretrain_sample_marks_the_minor_region_it_paints():
    config = ProxyConfig()
    s = config.arch.image_size
    seen_minor = 0
    for k in range(12):
        image, minor, other = pretrain_sample("red plain", config, np.random.default_rng(k), ("blue plain",))
        assert image.shape == (s, s, 3) and image.dtype == np.uint8 and minor.shape == (s, s)
        assert pretrain_image("red plain", config, np.random.default_rng(k), ("blue plain",)).tobytes() == (
            image.tobytes()
        )
        if other is None:
            assert not minor.any()
            continue
        seen_minor += 1
        assert other == "blue plain"
        # red plain and blue plain are solid colours 200 levels apart in R and B (jitter 15, noise 6):
        # every painted pixel is bluer than red, every other pixel redder than blue
        diff = image[..., 2].astype(int) - image[..., 0].astype(int)
        assert (diff[minor] > 0).all() and (diff[~minor] < 0).all()
        ys, xs = np.nonzero(minor)  # one axis-aligned rectangle
        assert minor[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    assert seen_minor > 0


def test_patch_targets_are_class_shares_per_patch():
    minor = np.zeros((4, 4), dtype=bool)
    minor[0, 0:3] = True  # patch (0, 0) of size 2: 2 of 4 pixels minor; patch (0, 1): 1 of 4
    t = patch_targets([1, 0], [minor, minor], [2, None], classes=3, patch=2)
    assert t.shape == (2, 3, 2, 2)
    expected0 = torch.zeros(3, 2, 2, dtype=torch.float32)
    expected0[1] = torch.tensor([[0.5, 0.75], [1.0, 1.0]])
    expected0[2] = torch.tensor([[0.5, 0.25], [0.0, 0.0]])
    torch.testing.assert_close(t[0], expected0, rtol=0, atol=1e-7)  # exact quarters in float32
    # a minor class without a caption leaves its pixels without a target
    torch.testing.assert_close(t[1].sum(0), torch.tensor([[0.5, 0.75], [1.0, 1.0]]), rtol=0, atol=1e-7)


def test_dense_alignment_loss_matches_a_float64_reference():
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(2, 5, 2, 3, generator=g, dtype=torch.float64)
    text = torch.nn.functional.normalize(torch.randn(4, 5, generator=g, dtype=torch.float64), dim=-1)
    targets = torch.rand(2, 4, 2, 3, generator=g, dtype=torch.float64)
    targets[0, :, 1, 2] = 0  # a patch without a target is skipped
    got = dense_alignment_loss(dense, text, targets, 7.0)
    terms = []
    for b in range(2):
        for y in range(2):
            for x in range(3):
                q = targets[b, :, y, x]
                if q.sum() == 0:
                    continue
                f = dense[b, :, y, x] / dense[b, :, y, x].norm()
                logits = 7.0 * (text @ f)
                terms.append(-(q / q.sum() * torch.log_softmax(logits, 0)).sum())
    assert len(terms) == 11
    # float64 throughout, a handful of well-conditioned log-softmaxes: round-off only
    torch.testing.assert_close(got, torch.stack(terms).mean(), rtol=1e-12, atol=1e-12)


def _quick(out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    """``python -m benchmarks.ovss_proxy --quick`` in a subprocess, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "benchmarks.ovss_proxy", "--quick"]
    cmd += ["--output", str(out), "--cache-dir", str(cache), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _run_quick(out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = _quick(out, cache, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_quick_run_structure_values_and_resume(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = _run_quick(out, cache)
    results = json.loads((out / "ovss_proxy.json").read_text())
    assert set(results) == {"variants", "frozen_clip", "config"}
    assert set(results["variants"]) == set(VARIANTS)
    seeds = results["config"]["seeds"]
    rows = [*results["variants"].values(), results["frozen_clip"]]
    for row in rows:
        for split in ("seen", "unseen"):
            assert len(row[split]) == len(seeds)
            assert all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 100.0 for v in row[split])
    assert (out / "ovss_proxy.png").stat().st_size > 0
    assert "fine-tuning" in first.stdout
    # rerun: every run is skipped, nothing is pretrained again, and the results are unchanged
    second = _run_quick(out, cache)
    n_runs = len(seeds) * (len(VARIANTS) + 1)
    assert second.stdout.count("done before, skipped") == n_runs
    assert "fine-tuning" not in second.stdout and "pretraining" not in second.stdout
    again = json.loads((out / "ovss_proxy.json").read_text())
    assert again["variants"] == results["variants"] and again["frozen_clip"] == results["frozen_clip"]
    # an unfinished seed is left out of a partial report, and named
    (out / "ovss_proxy_runs" / f"infoclip-s{seeds[-1]}.json").unlink()
    _run_quick(out, cache, "--assemble-only")
    partial = json.loads((out / "ovss_proxy.json").read_text())
    assert partial["config"]["seeds"] == seeds[:-1] and partial["config"]["unfinished_seeds"] == seeds[-1:]
    assert partial["variants"]["none"]["unseen"] == results["variants"]["none"]["unseen"][:-1]
    # a run file written under other settings is refused, never mixed into the table
    path = out / "ovss_proxy_runs" / f"none-s{seeds[0]}.json"
    data = json.loads(path.read_text())
    data["config_hash"] = "0" * 16
    path.write_text(json.dumps(data))
    proc = _quick(out, cache)
    assert proc.returncode != 0 and "other settings" in proc.stderr

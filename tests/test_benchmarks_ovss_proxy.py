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

ROOT = Path(__file__).resolve().parents[1]
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

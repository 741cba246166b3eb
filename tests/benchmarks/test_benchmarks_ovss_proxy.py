"""The OVSS proxy benchmark (benchmarks/ovss_proxy): its world generator, and a smoke run with resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks.ovss_proxy.config import (
    CALIBRATION_SEEDS,
    CONTROLS,
    REPORT_SEEDS,
    VARIANTS,
    ProxyConfig,
    WorldConfig,
    apply_overrides,
    config_hash,
    split_vocabulary,
)
from benchmarks.ovss_proxy.finetune import (
    METRICS,
    ShuffledTeacher,
    derangement,
    relative_drift,
    term_gradient_norms,
    vocabulary_metrics,
)
from benchmarks.ovss_proxy.pretrain import (
    CLIP_FIELDS,
    dense_alignment_loss,
    patch_targets,
    pretrain_image,
    pretrain_sample,
    pretraining_key,
    read_clip_cache,
)
from benchmarks.ovss_proxy.records import CacheError, read_record, write_json_atomic
from benchmarks.ovss_proxy.runner import orderings, paired_differences, t_interval
from benchmarks.ovss_proxy.world import SPLITS, load_split, render_scene, write_world

ROOT = Path(__file__).resolve().parents[2]

SMALL = dataclasses.replace(WorldConfig(), num_train=3, num_val=2, image_size=24)


@pytest.mark.parametrize("per_colour", [1, 2])
def test_splits_partition_the_vocabulary_and_every_new_word_is_seen(per_colour):
    w = WorldConfig().with_split(per_colour)
    groups = [set(w.seen), set(w.unseen), set(w.held_out)]
    assert sum(len(g) for g in groups) == len(w.vocabulary) == len(set().union(*groups))
    assert all(g for g in groups)
    assert len(w.seen) == 6 * per_colour
    seen_words = {word for name in w.seen for word in name.split(" ")}
    for name in (*w.unseen, *w.held_out):
        assert set(name.split(" ")) <= seen_words, name
    # every colour has an unseen class that differs from a seen class of that colour only in pattern
    for colour in {n.split(" ")[0] for n in w.vocabulary}:
        assert any(n.startswith(colour + " ") for n in w.unseen)
        assert any(n.startswith(colour + " ") for n in w.seen)
    assert not set(w.unseen) & set(w.seen)
    with pytest.raises(ValueError, match="seen_per_colour"):
        split_vocabulary(3)


def test_report_and_calibration_seeds_are_disjoint():
    assert not set(REPORT_SEEDS) & set(CALIBRATION_SEEDS)
    assert len(REPORT_SEEDS) >= 8 and len(CALIBRATION_SEEDS) >= 3


def test_variants_hold_the_papers_rows_and_the_three_controls():
    assert set(VARIANTS) == {
        "none",
        "kl",
        "maft",
        "maftplus",
        "compress_only",
        "distill_only",
        "infoclip",
        *CONTROLS,
    }
    assert VARIANTS["infoclip_shuffled_teacher"].shuffle_teacher
    assert VARIANTS["infoclip_tokens"].options["gram_over"] == "tokens"
    assert VARIANTS["infoclip_dime"].options["estimator"] == "dime"
    # the paper's rows keep the paper's defaults
    assert VARIANTS["infoclip"].options == {"lambda_compress": 1.0, "lambda_distill": 1.0}


def test_the_recipe_uses_the_papers_learning_rate_ratio_and_a_last_k_score():
    ft = ProxyConfig().finetune
    assert ft.clip_multiplier == pytest.approx(0.01)  # decoder and LPAM 100x CLIP (2e-4 / 2e-6)
    assert max(ft.eval_steps) == ft.steps and 2 <= ft.last_k <= len(ft.eval_steps)
    assert ProxyConfig().world.num_val >= 64  # per evaluation split


def test_apply_overrides_sets_fields_and_rejects_unknown_ones():
    base = ProxyConfig()
    c = apply_overrides(
        base, ["finetune.base_lr=3e-3", "pretrain.dense_cell=2", "finetune.eval_steps=[5, 10]"]
    )
    assert c.finetune.base_lr == 3e-3 and c.pretrain.dense_cell == 2 and c.finetune.eval_steps == (5, 10)
    assert c.world == base.world
    assert apply_overrides(base, ["world.seen_per_colour=2"]).world.seen == split_vocabulary(2)[0]
    for bad, match in (
        ("finetune.nope=1", "no field 'nope'"),
        ("base_lr=1", "section.field=value"),
        ("finetune.base_lr=abc", "not JSON"),
    ):
        with pytest.raises(ValueError, match=match):
            apply_overrides(base, [bad])


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
    # a mixed scene: regions from the first group plus exactly one from ``also``
    for k in range(10):
        _, label = render_scene(w.unseen, w, np.random.default_rng(k), also=w.seen)
        ids = set(np.unique(label).tolist()) - {255}
        seen_ids = {w.vocabulary.index(n) for n in w.seen}
        assert len(ids & seen_ids) == 1 and len(ids - seen_ids) >= 1


def test_write_world_layout_determinism_and_groups(tmp_path):
    root = write_world(tmp_path / "a", SMALL, seed=3)
    again = write_world(tmp_path / "b", SMALL, seed=3)
    other = write_world(tmp_path / "c", SMALL, seed=4)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert any((root / f).read_bytes() != (other / f).read_bytes() for f in files if f.suffix == ".png")
    assert json.loads((root / "ovss-proxy" / "classes.json").read_text()) == list(SMALL.vocabulary)
    vocab = SMALL.vocabulary
    seen_ids = {vocab.index(n) for n in SMALL.seen}
    unseen_ids = {vocab.index(n) for n in SMALL.unseen}
    for split, group in SPLITS.items():
        assert len(list((root / "ovss-proxy" / "images" / split).glob("*.png"))) == (
            SMALL.num_train if split == "train" else SMALL.num_val
        )
        ds = load_split(root, split, SMALL)
        for i in range(len(ds)):
            s = ds[i]
            assert s["image"].shape == (3, SMALL.image_size, SMALL.image_size)
            labels = set(s["label"].unique().tolist()) - {255}
            if split == "train":
                # seen classes only, renumbered 0..K-1 (the names fine-tuning offers)
                assert ds.class_names == list(SMALL.seen)
                assert labels and labels <= set(range(len(SMALL.seen)))
            else:
                # the whole vocabulary is offered; every scene mixes seen and unseen regions
                assert ds.class_names == list(vocab)
                assert labels & seen_ids and labels & unseen_ids and labels <= seen_ids | unseen_ids
                main = seen_ids if group == "seen" else unseen_ids
                assert len(labels - main) == 1
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


def test_patch_targets_with_a_coarse_cell_share_the_cells_class_shares():
    minor = np.zeros((8, 8), dtype=bool)
    minor[0:2, 0:2] = True  # one 2x2 patch of the 4x4 grid of patches, i.e. a quarter of the top-left cell
    fine = patch_targets([0], [minor], [1], classes=2, patch=2)
    coarse = patch_targets([0], [minor], [1], classes=2, patch=2, cell=2)
    assert fine[0, 1, 0, 0] == 1.0 and fine[0, 1, 0, 1] == 0.0
    expected = torch.zeros(2, 4, 4)
    expected[0] = 1.0
    expected[0, :2, :2] = 0.75  # every patch of the top-left cell carries the cell's shares
    expected[1, :2, :2] = 0.25
    torch.testing.assert_close(coarse[0], expected, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="dense_cell"):
        patch_targets([0], [minor], [1], classes=2, patch=2, cell=3)


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


def test_vocabulary_metrics_match_a_hand_computed_matrix():
    w = WorldConfig().with_split(1)
    vocab = w.vocabulary
    v = len(vocab)
    red_plain, red_striped, red_dotted = (vocab.index(f"red {p}") for p in ("plain", "striped", "dotted"))
    blue_dotted, blue_plain = vocab.index("blue dotted"), vocab.index("blue plain")
    assert {"red plain", "blue dotted"} <= set(w.seen) and {"red striped", "red dotted", "blue plain"} <= set(
        w.unseen
    )
    m = np.zeros((v, v), dtype=np.int64)
    m[red_plain, red_plain] = 8  # seen, 8 of 10 right, 2 called red striped
    m[red_plain, red_striped] = 2
    m[red_striped, red_striped] = 6  # unseen, 6 of 10 right, 4 called its seen sibling red plain
    m[red_striped, red_plain] = 4
    m[blue_plain, blue_dotted] = 5  # unseen, all 5 called blue dotted (its seen sibling)
    m[blue_dotted, blue_dotted] = 5
    m[red_dotted, blue_dotted] = 5  # unseen, called a seen class of *another* colour: not a sibling
    got = vocabulary_metrics(m, w)
    iou_rp = 8 / (10 + 12 - 8)
    iou_rs = 6 / (10 + 8 - 6)
    iou_bd = 5 / (5 + 15 - 5)
    unseen = (iou_rs + 0.0 + 0.0) / 3 * 100  # red striped, blue plain, red dotted (present classes only)
    seen = (iou_rp + iou_bd) / 2 * 100
    expected = {
        "seen": seen,
        "unseen": unseen,
        "harmonic": 2 * seen * unseen / (seen + unseen),
        "confusion": (4 + 5) / (10 + 5 + 5) * 100,
    }
    assert got.keys() == expected.keys()
    for k in expected:  # a handful of float64 divisions: round-off only
        assert got[k] == pytest.approx(expected[k], rel=1e-12), k
    perfect = np.diag(np.r_[np.ones(v - 1, dtype=np.int64), 0]) * 7
    assert vocabulary_metrics(perfect, w) == {
        "seen": 100.0,
        "unseen": 100.0,
        "harmonic": 100.0,
        "confusion": 0.0,
    }


def test_derangement_has_no_fixed_point_and_reaches_every_derangement():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        perm = derangement(4, g)
        assert sorted(perm.tolist()) == [0, 1, 2, 3] and all(perm[i] != i for i in range(4))
        seen.add(tuple(perm.tolist()))
    assert len(seen) == 9  # the number of derangements of 4 items
    assert derangement(2, g).tolist() == [1, 0]
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, g)


class _Recorder(torch.nn.Module):
    extra_inputs = ("teacher_image_embedding", "student_image_embedding")
    embed_dim = 3

    def forward(self, tv, tt, sv, st, **extras):
        self.got = (tv, tt, sv, st, extras)
        return "out"


def test_shuffled_teacher_pairs_each_student_image_with_another_images_teacher():
    inner = _Recorder()
    wrapper = ShuffledTeacher(inner, seed=3)
    tv, sv = torch.arange(4.0).view(4, 1, 1).expand(4, 2, 3), torch.randn(4, 2, 3)
    tt_shared, te, se = torch.randn(5, 3), torch.arange(4.0).view(4, 1).expand(4, 3), torch.randn(4, 3)
    assert (
        wrapper(tv, tt_shared, sv, tt_shared, teacher_image_embedding=te, student_image_embedding=se) == "out"
    )
    got_tv, got_tt, got_sv, got_st, extras = inner.got
    order = got_tv[:, 0, 0].long()
    assert sorted(order.tolist()) == [0, 1, 2, 3] and all(order[i] != i for i in range(4))
    torch.testing.assert_close(extras["teacher_image_embedding"][:, 0], order.float())  # same permutation
    assert (
        got_sv is sv and got_st is tt_shared and got_tt is tt_shared
    )  # student side and shared text untouched
    assert extras["student_image_embedding"] is se
    per_sample_text = torch.arange(4.0).view(4, 1, 1).expand(4, 5, 3)
    wrapper(tv, per_sample_text, sv, per_sample_text)
    torch.testing.assert_close(inner.got[1][:, 0, 0], inner.got[0][:, 0, 0])  # text follows its image


def test_term_gradient_norms_and_relative_drift_match_hand_values():
    a = torch.tensor([3.0, 4.0], requires_grad=True)
    b = torch.tensor([1.0], requires_grad=True)
    losses = {"t1": (a * a).sum() / 2, "t2": 2 * (a.sum() + b.sum()), "const": torch.tensor(1.0)}
    norms = term_gradient_norms(losses, {"clip": [a], "distiller": [b], "empty": []})
    assert norms["clip"] == {"t1": pytest.approx(5.0), "t2": pytest.approx(math.sqrt(8.0))}
    assert norms["distiller"] == {"t1": 0.0, "t2": pytest.approx(2.0)}  # t1 does not reach b
    assert norms["empty"] == {}
    w0 = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    w = [torch.tensor([3.0, 1.0]), torch.tensor([4.0])]
    assert relative_drift(w, w0) == pytest.approx(1 / 5)
    assert relative_drift([], []) == 0.0


def test_t_interval_and_paired_differences():
    xs = [1.0, 2.0, 4.0, 5.0]
    mean, lo, hi = t_interval(xs)
    sd = statistics.stdev(xs)
    half = 3.182446305284263 * sd / 2  # t quantile 0.975 with 3 degrees of freedom
    assert (mean, lo, hi) == pytest.approx((3.0, 3.0 - half, 3.0 + half), rel=1e-12)
    row = {m: [10.0, 20.0] for m in METRICS}
    better = {**row, "unseen": [12.0, 19.0], "confusion": [9.0, 21.0]}
    paired = paired_differences({"variants": {"none": row, "x": better}, "frozen_clip": row})
    assert paired["x"]["unseen"]["diffs"] == [2.0, -1.0] and paired["x"]["unseen"]["wins"] == 1
    assert paired["x"]["confusion"]["wins"] == 1  # lower confusion is the win
    assert paired["frozen_clip"]["seen"]["wins"] == 0 and "none" not in paired


def test_orderings_verdicts_follow_the_sign_of_the_interval():
    base = {m: [10.0, 20.0, 30.0] for m in METRICS}
    infoclip = {
        **base,
        "unseen": [12.0, 22.5, 31.5],
        "seen": [5.0, 14.0, 26.0],
        "confusion": [11.0, 19.0, 30.5],
    }
    results = {"variants": {"none": base, "kl": base, "infoclip": infoclip}, "frozen_clip": base}
    got = {c["ordering"]: c for c in orderings(results)}
    assert got["(a) infoclip > none, unseen"]["verdict"] == "holds"  # +2, +2.5, +1.5
    assert got["(d) infoclip >= none, seen"]["verdict"] == "contradicted"  # -5, -6, -4
    conf = got["(e) infoclip < none, seen-sibling confusion"]  # signed: +(-1), +1, -0.5
    assert conf["verdict"] == "undecided" and conf["wins"] == 1
    assert conf["mean"] == pytest.approx(-(1.0 - 1.0 + 0.5) / 3)
    assert not any("maft" in k for k in got)  # rows absent from the table are skipped


def test_read_record_refuses_damaged_or_foreign_files_naming_them(tmp_path):
    path = tmp_path / "run.json"
    assert read_record(path, "k", ["a"]) is None
    write_json_atomic(path, {"config_hash": "k", "a": 1})
    assert read_record(path, "k", ["a"]) == {"config_hash": "k", "a": 1}
    full = path.read_text()
    cases = {
        "other settings": json.dumps({"config_hash": "other", "a": 1}),
        "corrupt or truncated": full[: len(full) // 2],  # a truncated file
        "not a record": json.dumps([1, 2]),
        "lacks the field": json.dumps({"config_hash": "k"}),
    }
    for match, text in cases.items():
        path.write_text(text)
        with pytest.raises(CacheError, match=match) as info:
            read_record(path, "k", ["a"])
        assert str(path) in str(info.value)
    path.write_bytes(b"\xff\xfe garbage")  # not even text
    with pytest.raises(CacheError, match="corrupt"):
        read_record(path, "k", ["a"])


def test_read_clip_cache_refuses_damaged_or_foreign_files_naming_them(tmp_path):
    path = tmp_path / "clip.pt"
    record = {"config_hash": "k", "state_dict": {"w": torch.ones(3)}, "zero_shot": {}, "seconds": 1.0}
    torch.save(record, path)
    assert read_clip_cache(path, "k")["seconds"] == 1.0
    blob = path.read_bytes()
    for match, write in (
        ("other settings", lambda: torch.save({**record, "config_hash": "x"}, path)),
        ("corrupt or truncated", lambda: path.write_bytes(blob[: len(blob) // 2])),
        ("corrupt or truncated", lambda: path.write_bytes(b"not a zip")),
        ("lacks the field", lambda: torch.save({k: v for k, v in record.items() if k != "zero_shot"}, path)),
    ):
        write()
        with pytest.raises(CacheError, match=match) as info:
            read_clip_cache(path, "k")
        assert str(path) in str(info.value)
    assert set(CLIP_FIELDS) == set(record)


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
    assert set(results) == {"variants", "frozen_clip", "seeds", "calibration_seeds", "config"}
    assert set(results["variants"]) == set(VARIANTS)
    seeds = results["seeds"]
    assert seeds == [0, 1] and results["calibration_seeds"] == list(CALIBRATION_SEEDS)
    for row in [*results["variants"].values(), results["frozen_clip"]]:
        assert set(METRICS) <= set(row)
        for m in METRICS:
            assert len(row[m]) == len(seeds)
            assert all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 100.0 for v in row[m]), m
    # the frozen reference's CLIP is the pretrained one: its CLIP-alone numbers equal the start of every run
    curves = json.loads((out / "ovss_proxy_curves.json").read_text())
    for name, data in curves["variants"].items():
        starts = [c["clip_unseen"] for c in data["clip_start"]]
        assert starts == pytest.approx(
            [c["clip_unseen"] for c in curves["variants"]["frozen_clip"]["clip_start"]]
        )
        assert all(len(c) == 3 for c in data["curve"])  # quick: evaluations at steps 2, 3, 4
        assert (
            all(d == 0.0 for d in data["drift"])
            if name == "frozen_clip"
            else all(d > 0 for d in data["drift"])
        )
    run = json.loads((out / "ovss_proxy_runs" / "infoclip-s0.json").read_text())
    assert run["unseen"] == pytest.approx(
        statistics.fmean(p["unseen"] for p in run["curve"][-2:])
    )  # last k = 2
    assert {"loss_sem_seg", "loss_distill"} <= set(run["grad_norms"][0]["clip"])
    assert run["grad_norms"][0]["distiller"]["loss_compress"] > 0  # L_c reaches LPAM, not CLIP
    assert set(curves["paired_to_none"]) == {"frozen_clip", *VARIANTS} - {"none"}
    assert (out / "ovss_proxy.png").stat().st_size > 0 and "Paired differences" in (
        out / "ovss_proxy.md"
    ).read_text()
    assert "fine-tuning" in first.stdout
    # rerun: every run is skipped, nothing is pretrained again, and the results are unchanged
    second = _run_quick(out, cache)
    n_runs = len(seeds) * (len(VARIANTS) + 1)
    assert second.stdout.count("done before, skipped") == n_runs
    assert "fine-tuning" not in second.stdout and "pretraining" not in second.stdout
    again = json.loads((out / "ovss_proxy.json").read_text())
    assert again["variants"] == results["variants"] and again["frozen_clip"] == results["frozen_clip"]
    # a killed table resumes: a missing run is redone (and only it), giving the same numbers
    (out / "ovss_proxy_runs" / f"kl-s{seeds[-1]}.json").unlink()
    third = _run_quick(out, cache)
    assert (
        third.stdout.count("done before, skipped") == n_runs - 1 and "kl seed 1: fine-tuning" in third.stdout
    )
    assert json.loads((out / "ovss_proxy.json").read_text())["variants"]["kl"] == results["variants"]["kl"]
    # an unfinished seed is left out of a partial report, and named
    (out / "ovss_proxy_runs" / f"infoclip-s{seeds[-1]}.json").unlink()
    _run_quick(out, cache, "--assemble-only")
    partial = json.loads((out / "ovss_proxy.json").read_text())
    assert partial["seeds"] == seeds[:-1] and partial["config"]["unfinished_seeds"] == seeds[-1:]
    assert partial["variants"]["none"]["unseen"] == results["variants"]["none"]["unseen"][:-1]
    # a run file from other settings, or a damaged one, is refused with an error naming it
    path = out / "ovss_proxy_runs" / f"none-s{seeds[0]}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "config_hash": "0" * 16}))
    proc = _quick(out, cache, "--assemble-only")
    assert proc.returncode != 0 and "other settings" in proc.stderr and str(path) in proc.stderr
    path.write_text(json.dumps(data)[:100])
    proc = _quick(out, cache, "--assemble-only")
    assert proc.returncode != 0 and "corrupt or truncated" in proc.stderr and str(path) in proc.stderr
    assert "JSONDecodeError" not in proc.stderr and "KeyError" not in proc.stderr

"""benchmarks/bench_layerwise.py runs at tiny sizes and its implementations agree with the hand loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")


def test_bench_layerwise_tiny_run(tmp_path: Path) -> None:
    from benchmarks import bench_layerwise

    bench_layerwise.main(["--quick", "--no-long", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "layerwise.json").read_text())
    assert (tmp_path / "layerwise.png").stat().st_size > 0
    assert {r["case"] for r in data["rows"]} >= {"issue alpha=1", "issue alpha=2", "mixed alpha=1"}
    for row in data["rows"]:
        for name, result in row["results"].items():
            assert result["equal_within_tolerance"], (row["case"], name, result["max_rel_diff_vs_hand_loop"])


def test_hand_loop_is_the_published_definition() -> None:
    from benchmarks.bench_layerwise import hand_loop

    x = torch.eye(4)[None, None]  # four orthogonal tokens: p = 1/4 each
    got = hand_loop(x, [3], (1.0, 2.0, float("inf")))  # the first three tokens only
    expected = torch.log(torch.tensor(3.0, dtype=torch.float64))
    torch.testing.assert_close(got[0, 0], expected.repeat(3))

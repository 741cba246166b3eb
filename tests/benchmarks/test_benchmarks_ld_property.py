"""The L_d property measurement (benchmarks/bench_ld_property.py): a quick run and the relations its
numbers must satisfy."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_ld_property

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run(tmp_path: Path) -> None:
    assert bench_ld_property.main(["--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "ld_property.json").read_text())
    assert data["units"] == "bits"
    for run in data["n4"]["runs"] + data["n8_clusters"]["runs"]:
        orth = run["orthogonal"]
        assert abs(orth["I"] - run["S(T)"]) < 1e-9  # the orthogonal student attains S(T)
        assert abs(orth["DiME"]) < 1e-9  # and DiME scores it 0
        for student in run.values():
            if isinstance(student, dict):  # no student exceeds min(S(T), S(S))
                assert student["I"] <= min(run["S(T)"], student["S(S)"]) + 1e-9
    for value in data["bound"]["max of I - min(S(T), S(S))"].values():
        assert value <= 1e-12

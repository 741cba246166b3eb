"""The Triton kernels of the fused alpha = 2 reduction, run on the CPU by Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before :mod:`triton` is imported, so the checks run in a child Python
process (the variable never reaches this process or the other tests). The child compares the Triton
backend with the PyTorch tile backend (itself tested against materialised Grams in ``test_fused.py``)
in value and gradient, for each kernel and L in {1, 2, 3}, batched, with ragged tiles, in float64 and
float32, and runs one float64 gradcheck.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    r"""
    import json, os
    assert os.environ.get("TRITON_INTERPRET") == "1"
    import torch
    torch.set_num_threads(1)
    from renyi_info.algorithms import triton_tiles
    from renyi_info.algorithms.fused import frobenius_sums
    from renyi_info.kernels import make_kernel

    triton_tiles.BLOCK = 16       # n = 37 -> three row blocks, the last one ragged
    triton_tiles.BLOCK_DOUT = 16  # d = 20 -> two output chunks, the last one ragged
    KER = {
        "cosine": make_kernel("cosine"),
        "linear": make_kernel("linear"),
        "polynomial": make_kernel("polynomial", degree=3, coef=0.5),
        "gaussian": make_kernel("gaussian", sigma=1.3),
        "label": make_kernel("label"),
    }
    CASES = [("cosine",), ("polynomial",), ("gaussian",), ("gaussian", "linear"), ("cosine", "label"),
             ("linear", "gaussian", "polynomial")]
    DIMS = {"cosine": 20, "linear": 3, "polynomial": 2, "gaussian": 5, "label": 1}
    out = {}
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float64, torch.float32):
        for names in CASES if dtype == torch.float64 else CASES[3:4] + CASES[5:]:
            xs = []
            for nm in names:
                if nm == "label":
                    xs.append(torch.randint(0, 4, (2, 37, 1), generator=gen).to(dtype))
                else:
                    x = 0.4 * torch.randn(2, 37, DIMS[nm], generator=gen, dtype=torch.float64)
                    xs.append(x.to(dtype).requires_grad_(True))
            specs = [KER[nm] for nm in names]
            masks = list(range(1, 1 << len(names)))
            got = frobenius_sums(xs, specs, masks, backend="triton")
            want = frobenius_sums(xs, specs, masks, backend="torch", block_rows=7, block_cols=9)
            w = torch.randn(want.shape, generator=gen, dtype=torch.float64).to(dtype)
            diff = {"value": float(((got - want).abs() / want.abs()).max())}
            leaves = [x for x in xs if x.requires_grad]
            g1 = torch.autograd.grad((got * w).sum(), leaves)
            g2 = torch.autograd.grad((want * w).sum(), leaves)
            diff["grad"] = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(g1, g2))
            out[f"{str(dtype)[6:]}:{'-'.join(names)}"] = diff
    x = (0.5 * torch.randn(17, 3, generator=gen, dtype=torch.float64)).requires_grad_(True)
    y = (0.5 * torch.randn(17, 2, generator=gen, dtype=torch.float64)).requires_grad_(True)
    specs = [KER["cosine"], KER["gaussian"]]
    out["gradcheck"] = bool(torch.autograd.gradcheck(
        lambda a, b: frobenius_sums([a, b], specs, [1, 2, 3], backend="triton"), (x, y), fast_mode=True))
    print("@@RESULT@@" + json.dumps(out))
    print(json.dumps(out, indent=1))
    """
)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> dict:
    script = tmp_path_factory.mktemp("triton") / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@"))
    return json.loads(line[len("@@RESULT@@") :])


def test_interpreter_variable_does_not_leak():
    assert os.environ.get("TRITON_INTERPRET") in (None, "", "0")


def test_values_and_gradients_match_the_torch_backend(interpreted):
    cases = {k: v for k, v in interpreted.items() if k != "gradcheck"}
    assert len(cases) == 8
    for key, diff in cases.items():
        tol = 1e-12 if key.startswith("float64") else 2e-4
        assert diff["value"] < tol, (key, diff)
        assert diff["grad"] < (1e-9 if key.startswith("float64") else 2e-3), (key, diff)


def test_gradcheck_through_the_triton_backward(interpreted):
    assert interpreted["gradcheck"] is True


def test_gpu_check_script_rehearses_on_the_cpu(tmp_path):
    """``python -m benchmarks.gpu_check --dry-run`` (tiny sizes, interpreter) runs end to end without errors."""
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert len(result["correctness"]) == 3
    for row in result["correctness"]:  # float32 Triton tiles against float64 materialised Grams
        assert row["value_rel_err"] < 1e-5 and row["grad_rel_err"] < 1e-4, row
    assert {"fused_triton", "fused_torch", "naive"} <= set(result["timings"][0])
    # the pass/fail table: every check passed, including the automatic backend (PyTorch on the CPU)
    assert result["checks"] and all(ok for _, ok, _ in result["checks"]), result["checks"]
    assert "backend='auto' runs torch without fallback" in proc.stdout and "FAIL" not in proc.stdout

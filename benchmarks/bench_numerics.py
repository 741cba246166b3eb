"""Numerical robustness of renyi_info / infoclip: one row per ordinary-looking call at a numerical edge.

Every row is a value (or the error message) of an ordinary-looking call next to its reference (float64,
mpmath or the analytic value), so that runs of this script on two versions of the code can be compared.
Also measures the cost of the automatic float64 precision (float32 input, alpha <= 1, eig route) against
the float32 opt-out, and the subnormal cliff (float32 Gaussian sigma = 0.3 vs 3 at alpha = 3), each pair in
the same run.

    python -m benchmarks.bench_numerics [--quick] [--out DIR]
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from benchmarks.results_io import make_parser, output_dir, write_json
from benchmarks.timing import time_interleaved


def _run(fn: Callable[[], object]) -> object:
    try:
        out = fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:160]}"
    if isinstance(out, torch.Tensor):
        return float(out.detach().float()) if out.device.type != "meta" else f"meta tensor {tuple(out.shape)}"
    return out


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = _run(fn)
    return out, time.perf_counter() - t0


def measure(quick: bool) -> dict[str, object]:
    import renyi_info as ri
    from infoclip import InfoCLIPLoss
    from renyi_info import matrix

    rows: dict[str, object] = {}
    g = torch.Generator().manual_seed(0)
    x64 = torch.randn(8, 4, generator=g, dtype=torch.float64)
    x32 = x64.float()
    # ---- alpha -> 1
    rows["vN entropy bits (float64)"] = _run(lambda: ri.entropy(x64, alpha=1.0))
    for k in (6, 7, 9):
        rows[f"float32 entropy alpha=1+1e-{k}"] = _run(lambda k=k: ri.entropy(x32, alpha=1 + 10.0**-k))
    rows["float64 entropy alpha=1+1e-15"] = _run(lambda: ri.entropy(x64, alpha=1 + 1e-15))
    rows["float64 divergence(x, x) alpha=1+1e-9"] = _run(lambda: ri.divergence(x64, x64, alpha=1 + 1e-9))
    torch.manual_seed(0)
    loss_in = (torch.randn(4, 9, 8), torch.randn(5, 8), torch.randn(4, 9, 8), torch.randn(5, 8))
    for a in (1.0, 1 + 1e-9):
        torch.manual_seed(1)
        m = InfoCLIPLoss(8, alpha=a)
        rows[f"InfoCLIPLoss total alpha={a!r}"] = _run(lambda m=m: m(*loss_in).total)
    # ---- large alpha
    opts = ri.LanczosOptions(generator=torch.Generator().manual_seed(0))
    for dt, xx in (("float32", x32), ("float64", x64)):
        for a in (50.0, 100.0):
            rows[f"{dt} eig entropy alpha={a}"] = _run(lambda xx=xx, a=a: ri.entropy(xx, alpha=a))
            rows[f"{dt} lanczos entropy alpha={a}"] = _run(
                lambda xx=xx, a=a: tuple(float(t) for t in ri.entropy_estimate(xx, alpha=a, lanczos=opts))
            )
    for dt, xx, a in (("float32", x32, 200.0), ("float64", x64, 1e4)):
        rows[f"{dt} power entropy alpha={a}"] = _run(
            lambda xx=xx, a=a: ri.entropy(xx, alpha=a, method="power")
        )
        rows[f"{dt} eig entropy alpha={a}"] = _run(lambda xx=xx, a=a: ri.entropy(xx, alpha=a))
    for a in (50.0, 1e6):
        rows[f"float64 divergence(x, x) alpha={a}"] = _run(lambda a=a: ri.divergence(x64, x64, alpha=a))
    y64 = torch.randn(8, 4, generator=g, dtype=torch.float64)
    rows["float64 gaussian divergence(x, y) alpha=200"] = _run(
        lambda: ri.divergence(x64, y64, alpha=200.0, kernel="gaussian", sigma=1.0)
    )
    rows["mpmath gaussian divergence(x, y) alpha=200"] = _mp_divergence(
        ri.gram(x64, "gaussian", sigma=1.0), ri.gram(y64, "gaussian", sigma=1.0), 200
    )
    # ---- ranges
    n_big = 512 if quick else 2048
    xb = torch.randn(n_big, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rows[f"float32 gaussian sigma=300 n={n_big} alpha=0.5"] = _run(
        lambda: ri.entropy(xb.float(), alpha=0.5, kernel="gaussian", sigma=300.0)
    )
    rows[f"float64 gaussian sigma=300 n={n_big} alpha=0.5"] = _run(
        lambda: ri.entropy(xb, alpha=0.5, kernel="gaussian", sigma=300.0)
    )
    rows["matrix.entropy([[1,2],[2,1]])"] = _run(
        lambda: matrix.entropy(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    )
    # ---- precision by default (relative error of float32 input against float64, and the cost)
    n_prec = 256 if quick else 1024
    xp = xb[:n_prec]
    for sigma in (3.0, 30.0, 300.0):
        for a in (0.5, 1.0):
            ref = float(ri.entropy(xp, alpha=a, kernel="gaussian", sigma=sigma))
            got, t_auto = _timed(
                lambda s=sigma, a=a: ri.entropy(xp.float(), alpha=a, kernel="gaussian", sigma=s)
            )
            fast, t_fast = _timed(
                lambda s=sigma, a=a: ri.entropy(
                    xp.float(), alpha=a, kernel="gaussian", sigma=s, compute_dtype=torch.float32
                )
            )
            rows[f"float32 rel err sigma={sigma} alpha={a} n={n_prec}"] = (
                abs(got - ref) / abs(ref) if isinstance(got, float) else got
            )
            rows[f"float32 opt-out rel err sigma={sigma} alpha={a} n={n_prec}"] = (
                abs(fast - ref) / abs(ref) if isinstance(fast, float) else fast
            )
            rows[f"time default / float32 opt-out sigma={sigma} alpha={a} n={n_prec}"] = t_auto / t_fast
    # ---- autocast
    xa = torch.randn(256, 32, generator=g)
    rows["linear entropy float32 (no autocast)"] = _run(lambda: ri.entropy(xa, kernel="linear"))
    for dt in (torch.float16, torch.bfloat16):

        def under(dt: torch.dtype = dt) -> object:
            with torch.autocast("cpu", dtype=dt):
                out = ri.entropy(xa, kernel="linear")
            return f"{float(out):.6g} ({out.dtype})"

        rows[f"linear entropy under cpu autocast {dt}"] = _run(under)
    ya = xa[:, :8] + 0.5 * torch.randn(256, 8, generator=g)
    mi_ref = float(ri.mutual_information(xa, ya, alpha=1.0))

    def mi_bf16() -> object:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return abs(float(ri.mutual_information(xa, ya, alpha=1.0)) - mi_ref) / abs(mi_ref)

    rows["MI rel err under cpu autocast bf16"] = _run(mi_bf16)
    # ---- scale
    base = float(ri.entropy(x32))
    rows["cosine entropy float32 x"] = base
    for s in (1e19, 1e30, 1e-30):
        rows[f"cosine entropy float32 x*{s:g}"] = _run(lambda s=s: ri.entropy(x32 * s))
    rows["cosine entropy float64 x"] = float(ri.entropy(x64))
    for s in (1e154, 1e300, 1e-300):
        rows[f"cosine entropy float64 x*{s:g}"] = _run(lambda s=s: ri.entropy(x64 * s))
    x20 = torch.randn(20, 4, generator=g, dtype=torch.float64)
    small = x20.clone()
    small[:10] *= 1e-13
    rows["cosine entropy float64 20 rows"] = float(ri.entropy(x20))
    rows["cosine entropy float64 20 rows, 10 scaled by 1e-13"] = _run(lambda: ri.entropy(small))
    rows["linear entropy float32 x*1e20"] = _run(lambda: ri.entropy(x32 * 1e20, kernel="linear"))
    rows["polynomial(2) entropy float32 x*1e20"] = _run(
        lambda: ri.entropy(x32 * 1e20, kernel="polynomial", degree=2)
    )
    for rule in ("silverman", "median"):
        rows[f"gaussian sigma={rule} float32 x"] = _run(
            lambda r=rule: ri.entropy(x32, kernel="gaussian", sigma=r)
        )
        rows[f"gaussian sigma={rule} float32 x*1e-30"] = _run(
            lambda r=rule: ri.entropy(x32 * 1e-30, kernel="gaussian", sigma=r)
        )
    rows["gaussian sigma=1e-23 float64"] = _run(lambda: ri.entropy(x64, kernel="gaussian", sigma=1e-23))
    rows["polynomial degree 50 float32"] = _run(lambda: ri.entropy(x32, kernel="polynomial", degree=50))
    rows["polynomial degree 50 float64"] = _run(lambda: ri.entropy(x64, kernel="polynomial", degree=50))
    # ---- devices and dtypes
    rows["entropy of a meta tensor"] = _run(lambda: ri.entropy(torch.empty(8, 4, device="meta")))
    rows["matrix.entropy of a meta tensor"] = _run(lambda: matrix.entropy(torch.empty(8, 8, device="meta")))
    torch.manual_seed(1)
    m = InfoCLIPLoss(8)
    rows["InfoCLIPLoss float32"] = _run(lambda: m(*loss_in).total)
    rows["InfoCLIPLoss float16 inputs"] = _run(lambda: m(*(t.half() for t in loss_in)).total)
    mixed = (loss_in[0].double(), loss_in[1].double(), loss_in[2], loss_in[3])
    rows["InfoCLIPLoss float64 teacher, float32 student"] = _run(lambda: m(*mixed).total)
    rows["InfoCLIPLoss C = 0"] = _run(
        lambda: m(loss_in[0], torch.randn(0, 8), loss_in[2], torch.randn(0, 8)).total
    )
    rows["InfoCLIPLoss HW = 0"] = _run(
        lambda: m(torch.randn(4, 0, 8), loss_in[1], torch.randn(4, 0, 8), loss_in[3]).total
    )
    # ---- subnormal cliff (both in this run, timed round-robin after a warm-up so they share the load)
    n_cliff = 512 if quick else 2048
    xc = torch.randn(n_cliff, 8, generator=torch.Generator().manual_seed(2))
    calls = {s: (lambda s=s: ri.entropy(xc, alpha=3.0, kernel="gaussian", sigma=s)) for s in (0.3, 3.0)}
    timing = time_interleaved({str(s): f for s, f in calls.items()}, warmup=1, repeats=1 if quick else 3)
    for s, f in calls.items():
        rows[f"float32 gaussian alpha=3 n={n_cliff}: sigma={s} value, median seconds"] = (
            _run(f),
            timing[str(s)]["median_s"],
        )
    rows["subnormal cliff time ratio sigma=0.3 / sigma=3"] = (
        timing["0.3"]["median_s"] / timing["3.0"]["median_s"]
    )
    return rows


def _mp_divergence(a: torch.Tensor, b: torch.Tensor, alpha: int) -> float:
    """Petz divergence in bits by mpmath at 60 digits (the reference of the large-alpha row)."""
    import mpmath

    mpmath.mp.dps = 60
    ma, mb = mpmath.matrix(a.tolist()), mpmath.matrix(b.tolist())
    ea, ua = mpmath.eigsy(ma)
    eb, ub = mpmath.eigsy(mb)
    pa = ua * mpmath.diag([v**alpha for v in ea]) * ua.T
    pb = ub * mpmath.diag([v ** (1 - alpha) for v in eb]) * ub.T
    q = sum((pa * pb)[i, i] for i in range(a.shape[0]))
    return float(mpmath.log(q) / (alpha - 1) / mpmath.log(2))


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--name", default="numerics", help="results file name (e.g. numerics_before)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = measure(args.quick)
    for k, v in rows.items():
        print(f"{k:70s} {v}")
    write_json(args.name, {"rows": rows}, output_dir(args))


if __name__ == "__main__":
    main()

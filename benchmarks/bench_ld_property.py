r"""What InfoCLIP's distillation loss rewards: the matrix mutual information $I_2(T;S)$ against DiME.

With batch Grams (N samples, $N \ll d$) and the cosine kernel, $I_\alpha(T;S) \le \min(S_\alpha(T), S_\alpha(S))$
with equality when the student's Gram is the identity, so a student whose rows are orthogonal maximises
$L_d$'s mutual information whatever the teacher (see "The distillation loss and orthogonal students" in
docs/theory.md). This script measures it with the library, in bits:

1. ``n4``: N = 4, d = 512, alpha = 2: a teacher with correlated rows (a shared component plus noise, as
   the alignment maps of one batch are), and the students ``teacher`` (itself), ``shuffled teacher`` (a
   derangement of its rows), ``noise`` (independent Gaussian rows) and ``orthogonal`` (orthonormal rows);
2. ``n8_clusters``: N = 8 in two clusters of 4, d = 512: ``teacher``, ``same clusters`` (the same cluster
   centres, new noise), ``shuffled teacher`` (a uniformly random permutation of its rows), ``noise``,
   ``orthogonal``; $I_2$ and DiME (exact over the 8! pairings);
3. ``tokens``: N = 256 samples of d = 8 features in 4 clusters (the token axis, N >> d, where rows cannot
   be orthogonal): $I_2$ and DiME (256 sampled pairings, seeded);
4. ``bound``: the largest $I_\alpha - \min(S_\alpha(T), S_\alpha(S))$ over random unit-diagonal PSD Grams
   (it must be <= 0 up to round-off) and the gap $|I_\alpha(T; I) - S_\alpha(T)|$ of the identity student.

Each case is repeated over seeds; the JSON holds every value, and means and standard deviations.
``python -m benchmarks.bench_ld_property [--quick] [--out DIR]`` -> ``ld_property.json``.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

import renyi_info as ri
from benchmarks.results_io import make_parser, output_dir, write_json
from renyi_info import matrix

F64 = torch.float64
D = 512


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _orthogonal(n: int, d: int, g: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(d, n, generator=g, dtype=F64)).Q.mT


def _scores(teacher: torch.Tensor, students: dict[str, torch.Tensor], alpha: float, dime_kw: dict) -> dict:
    s_t = float(ri.entropy(teacher, alpha=alpha))
    out: dict[str, Any] = {"S(T)": s_t}
    for name, s in students.items():
        out[name] = {
            "I": float(ri.mutual_information(teacher, s, alpha=alpha)),
            "S(S)": float(ri.entropy(s, alpha=alpha)),
            "DiME": float(ri.dime(teacher, s, alpha=alpha, **dime_kw)),
        }
    return out


def case_n4(seed: int) -> dict:
    g = _gen(seed)
    teacher = torch.randn(1, D, generator=g, dtype=F64) + 0.6 * torch.randn(4, D, generator=g, dtype=F64)
    students = {
        "teacher": teacher,
        "shuffled teacher": teacher[torch.tensor([1, 2, 3, 0])],
        "noise": torch.randn(4, D, generator=g, dtype=F64),
        "orthogonal": _orthogonal(4, D, g),
    }
    return _scores(teacher, students, 2.0, {})


def case_n8_clusters(seed: int) -> dict:
    g = _gen(seed)
    centres = torch.randn(2, D, generator=g, dtype=F64)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    teacher = centres[labels] + 0.5 * torch.randn(8, D, generator=g, dtype=F64)
    perm = torch.randperm(8, generator=g)
    students = {
        "teacher": teacher,
        "same clusters": centres[labels] + 0.5 * torch.randn(8, D, generator=g, dtype=F64),
        "shuffled teacher": teacher[perm],
        "noise": torch.randn(8, D, generator=g, dtype=F64),
        "orthogonal": _orthogonal(8, D, g),
    }
    out = _scores(teacher, students, 2.0, {"permutations": "exact"})
    out["shuffle"] = perm.tolist()
    return out


def case_tokens(seed: int, n: int = 256, d: int = 8) -> dict:
    g = _gen(seed)
    centres = torch.randn(4, d, generator=g, dtype=F64)
    labels = torch.arange(n) % 4
    teacher = centres[labels] + 0.5 * torch.randn(n, d, generator=g, dtype=F64)
    students = {
        "teacher": teacher,
        "same clusters": centres[labels] + 0.5 * torch.randn(n, d, generator=g, dtype=F64),
        "shuffled teacher": teacher[torch.randperm(n, generator=g)],
        "noise": torch.randn(n, d, generator=g, dtype=F64),
    }
    return _scores(teacher, students, 2.0, {"permutations": 256, "generator": _gen(1000 + seed)})


def _correlation(n: int, rank: int, g: torch.Generator) -> torch.Tensor:
    """A random unit-diagonal PSD matrix: the cosine Gram of ``rank``-dimensional Gaussian rows plus a
    random shared component (so that entries of both signs and strong correlations occur)."""
    z = torch.randn(n, rank, generator=g, dtype=F64) + torch.randn(1, rank, generator=g, dtype=F64) * float(
        torch.rand((), generator=g, dtype=F64) * 3
    )
    return ri.gram(z, "cosine", normalize=False)


def case_bound(seed: int, trials: int, alphas: Sequence[float]) -> dict:
    g = _gen(seed)
    worst = {str(a): -float("inf") for a in alphas}
    identity_gap = {str(a): 0.0 for a in alphas}
    for _ in range(trials):
        n = int(torch.randint(2, 9, (), generator=g))
        kt = _correlation(n, int(torch.randint(1, 12, (), generator=g)), g)
        ks = _correlation(n, int(torch.randint(1, 12, (), generator=g)), g)
        eye = torch.eye(n, dtype=F64)
        for a in alphas:
            s_t, s_s = matrix.entropy(kt, alpha=a), matrix.entropy(ks, alpha=a)
            i = matrix.mutual_information(kt, ks, alpha=a)
            worst[str(a)] = max(worst[str(a)], float(i - torch.minimum(s_t, s_s)))
            identity_gap[str(a)] = max(
                identity_gap[str(a)], abs(float(matrix.mutual_information(kt, eye, alpha=a) - s_t))
            )
    return {"max of I - min(S(T), S(S))": worst, "max |I(T; identity) - S(T)|": identity_gap}


def _summarise(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every numeric leaf."""

    def leaves(d: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(leaves(v, (*prefix, k)))
            elif isinstance(v, float):
                out[(*prefix, k)] = v
        return out

    flat = [leaves(r) for r in runs]
    summary: dict[str, Any] = {}
    for key in flat[0]:
        values = [f[key] for f in flat]
        node = summary
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        }
    return summary


def _run(case: Callable[[int], dict], seeds: Sequence[int]) -> dict:
    runs = [case(s) for s in seeds]
    return {"seeds": list(seeds), "runs": runs, "summary": _summarise(runs)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    seeds = range(2) if args.quick else range(10)
    alphas = [0.5, 1.0, 2.0, 3.0, float("inf")]
    payload = {
        "units": "bits",
        "kernel": "cosine",
        "n4": _run(case_n4, seeds),
        "n8_clusters": _run(case_n8_clusters, range(1) if args.quick else seeds),
        "tokens": _run(
            lambda s: case_tokens(s, n=32 if args.quick else 256), range(1) if args.quick else range(3)
        ),
        "bound": case_bound(0, 20 if args.quick else 500, alphas),
    }
    path = write_json("ld_property", payload, output_dir(args))
    print(f"wrote {path}")
    for name in ("n4", "n8_clusters", "tokens"):
        summary = payload[name]["summary"]  # type: ignore[index]
        print(name, f"S(T) = {summary['S(T)']['mean']:.3f}")
        for student, v in summary.items():
            if student != "S(T)":
                print(
                    f"  {student:18s} I = {v['I']['mean']:.3f} ± {v['I']['std']:.3f}   DiME = {v['DiME']['mean']:.3f} ± {v['DiME']['std']:.3f}"
                )
    print("bound", payload["bound"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

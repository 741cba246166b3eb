"""A two-minute tour of renyi_info on generated data.

Run:  python examples/renyi_demo.py

It prints (1) entropies of a labelled sample set against the closed form, (2) the mutual information between
features and a noisy copy as the noise grows, (3) the alpha-spectrum of one entropy, and (4) the known case where
matrix-based Rényi mutual information is negative.
"""

from __future__ import annotations

import argparse
import math

import torch

import renyi_info
from renyi_info import matrix


def classical_renyi(p: torch.Tensor, alpha: float) -> float:
    """Rényi entropy in bits of a discrete distribution p."""
    if alpha == 1.0:
        return float(-(p * p.log2()).sum())
    if math.isinf(alpha):
        return float(-p.max().log2())
    return float(torch.log2((p**alpha).sum()) / (1 - alpha))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=512, help="number of samples (default 512)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(args.seed)
    n = args.n

    print(f"renyi_info {renyi_info.__version__}: matrix-based Rényi quantities, n = {n} samples, bits\n")

    # 1. Labels as one-hot features: the cosine Gram is the label kernel, whose entropy is the classical
    #    Rényi entropy of the class proportions.
    proportions = torch.tensor([0.5, 0.25, 0.125, 0.125])
    labels = torch.multinomial(proportions, n, replacement=True, generator=gen)
    onehot = torch.nn.functional.one_hot(labels, 4).double()
    empirical = torch.bincount(labels, minlength=4).double() / n
    print("1. one-hot labels: matrix entropy vs classical Rényi entropy of the class proportions")
    print(f"   {'alpha':>6} {'matrix':>9} {'classical':>10}")
    for alpha in (0.5, 1.0, 2.0, float("inf")):
        s = renyi_info.entropy(onehot, alpha=alpha)
        print(f"   {alpha:>6} {float(s):>9.4f} {classical_renyi(empirical, alpha):>10.4f}")

    # 2. Mutual information between x and a noisy copy of it decreases as the noise grows.
    x = torch.randn(n, 16, generator=gen)
    print(
        "\n2. I_2(x; y) with y = (x + noise) / sqrt(1 + noise^2) (unit variance), Gaussian kernel, sigma = 4"
    )
    for noise in (0.0, 0.5, 1.0, 2.0, 4.0):
        y = (x + noise * torch.randn(n, 16, generator=gen)) / math.sqrt(1 + noise**2)
        mi = renyi_info.mutual_information(x, y, kernel="gaussian", sigma=4.0)
        print(f"   noise {noise:>4}: I = {float(mi):.4f} bits")

    # 3. The alpha-spectrum: S_alpha is non-increasing in alpha.
    print("\n3. S_alpha of the same x (cosine kernel) for several alpha")
    for alpha in (0.5, 1.0, 1.5, 2.0, 3.0, float("inf")):
        print(f"   alpha {alpha:>4}: {float(renyi_info.entropy(x, alpha=alpha)):.4f}")

    # 4. Rényi MI is not a Shannon quantity: for alpha > 1 it can be negative, and it is never clamped.
    a = torch.tensor([[0.22], [0.32], [2.10], [0.14]], dtype=torch.float64)
    b = torch.tensor([[2.27], [1.07], [1.12], [1.02]], dtype=torch.float64)
    ka = renyi_info.gram(a, "gaussian", sigma=0.7)
    kb = renyi_info.gram(b, "gaussian", sigma=0.7)
    print("\n4. a known counterexample to non-negativity (n = 4, Gaussian sigma = 0.7), nats")
    for alpha in (0.5, 2.0, 3.0):
        mi = matrix.mutual_information(ka, kb, alpha=alpha, base=math.e)
        print(f"   I_{alpha} = {float(mi):+.4f}")


if __name__ == "__main__":
    main()

r"""The property of InfoCLIP's distillation loss with unit-diagonal (cosine) Grams, for every order alpha:

$$
I_\alpha(T;S) \le \min(S_\alpha(T), S_\alpha(S)), \qquad I_\alpha(T; \text{identity}) = S_\alpha(T).
$$

Why it holds (so the test asserts a theorem, not an observation): for a unit-diagonal PSD $K_S$, the map
$\Phi(A) = A\circ K_S$ is positive (Schur product theorem), trace-preserving
($\operatorname{tr}(A\circ K_S) = \sum_i a_{ii}$) and unital ($I\circ K_S = I$). The spectrum of
$\Phi(A)$ is then majorised by that of $A$ (Ando 1989, doubly stochastic maps), and every Rényi entropy
is Schur-concave, so $S_\alpha(T, S) = S_\alpha(A_T\circ K_S) \ge S_\alpha(T)$, and likewise
$\ge S_\alpha(S)$; hence $I_\alpha = S(T) + S(S) - S(T,S) \le \min(S(T), S(S))$. With $K_S = I$ the joint Gram is
$\operatorname{diag}(A_T) = I/n$, whose entropy $\log n$ equals $S_\alpha(S)$, so $I_\alpha = S_\alpha(T)$.
At alpha = 2 it is elementary: $|s_{ij}|\le 1$ gives $\sum_{ij}(t_{ij}s_{ij})^2 \le \sum_{ij}t_{ij}^2$.
The unit diagonal matters: with a linear kernel the bound fails (last test).
"""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info as ri
from renyi_info import matrix

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
ALPHAS = [0.5, 1.0, 2.0, 3.0, float("inf")]


def _unit_diagonal_psd(n: int, rank: int, shared: float, g: torch.Generator) -> torch.Tensor:
    """A random correlation matrix: the cosine Gram of Gaussian rows of the given rank, with a shared
    component of the given strength (strong positive correlations, as a batch of alignment maps has)."""
    z = torch.randn(n, rank, generator=g, dtype=F64) + shared * torch.randn(1, rank, generator=g, dtype=F64)
    return ri.gram(z, "cosine", normalize=False)


def _pairs(seed: int, count: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        n = int(torch.randint(2, 9, (), generator=g))
        yield (
            _unit_diagonal_psd(
                n, int(torch.randint(1, 12, (), generator=g)), 3 * float(torch.rand((), generator=g)), g
            ),
            _unit_diagonal_psd(
                n, int(torch.randint(1, 12, (), generator=g)), 3 * float(torch.rand((), generator=g)), g
            ),
        )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_identity_student_attains_the_teachers_entropy(alpha: float) -> None:
    for kt, _ in _pairs(1, 60):
        eye = torch.eye(kt.shape[-1], dtype=F64)
        s_t = matrix.entropy(kt, alpha=alpha)
        # float64 Grams of at most 8 samples: entropies agree to a few ulps of log n
        torch.testing.assert_close(matrix.mutual_information(kt, eye, alpha=alpha), s_t, rtol=0, atol=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_no_student_exceeds_min_of_the_entropies(alpha: float) -> None:
    """Random teachers and students (ranks 1-11, n = 2-8, weak to strong shared components)."""
    margins = []
    for kt, ks in _pairs(2, 150):
        i = matrix.mutual_information(kt, ks, alpha=alpha)
        bound = torch.minimum(matrix.entropy(kt, alpha=alpha), matrix.entropy(ks, alpha=alpha))
        margins.append(float(i - bound))
    # a theorem (module docstring); 1e-12 is the round-off of float64 entropies of n <= 8 Grams
    assert max(margins) <= 1e-12, max(margins)
    assert min(margins) < -0.1  # and the inputs are not all trivial cases of equality


def test_orthogonal_rows_maximise_i2_whatever_the_teacher() -> None:
    """The setting of InfoCLIP's batch Grams (N = 4, d = 512, cosine, alpha = 2): an orthogonal student
    scores S(T), at least as much as any student, the teacher itself included."""
    g = torch.Generator().manual_seed(3)
    orthogonal = torch.linalg.qr(torch.randn(512, 4, generator=g, dtype=F64)).Q.mT
    for _ in range(20):
        teacher = torch.randn(1, 512, generator=g, dtype=F64) + 0.6 * torch.randn(
            4, 512, generator=g, dtype=F64
        )
        s_t = ri.entropy(teacher)
        # QR rows are orthogonal to ~1e-16, which moves I_2 by as little (well-conditioned sums of squares)
        torch.testing.assert_close(ri.mutual_information(teacher, orthogonal), s_t, rtol=0, atol=1e-12)
        for student in (
            teacher,
            teacher[torch.tensor([1, 2, 3, 0])],
            torch.randn(4, 512, generator=g, dtype=F64),
        ):
            assert float(ri.mutual_information(teacher, student)) <= float(s_t) + 1e-12
        assert float(ri.mutual_information(teacher, teacher)) < float(s_t) - 0.1


def test_the_bound_needs_a_unit_diagonal() -> None:
    """With a linear kernel (non-constant diagonal) the joint Gram can be *more* concentrated than a
    marginal, and I exceeds the minimum: x = y = diag(1, sqrt(1/2)) gives p = (2/3, 1/3) for each marginal
    and (4/5, 1/5) for the joint, so I_2(X;X) = 2 S_2(p) - S_2(4/5, 1/5) > S_2(p)."""
    x = torch.tensor([[1.0, 0.0], [0.0, math.sqrt(0.5)]], dtype=F64)
    s = float(ri.entropy(x, kernel="linear", base=math.e))
    i = float(ri.mutual_information(x, x, kernel="linear", base=math.e))
    assert s == pytest.approx(-math.log(4 / 9 + 1 / 9), abs=1e-14)
    assert i == pytest.approx(2 * s + math.log(16 / 25 + 1 / 25), abs=1e-14)
    assert i > s + 0.2

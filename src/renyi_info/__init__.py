"""renyi_info: matrix-based Rényi entropy and mutual information in PyTorch.

Feature-level entry points (features ``(..., n, d)``)::

    from renyi_info import entropy, joint_entropy, mutual_information, gram

Matrix-level entry points (Gram matrices ``(..., n, n)``)::

    from renyi_info import matrix
    matrix.entropy(a), matrix.joint_entropy(a, b), matrix.mutual_information(a, b)
"""

from __future__ import annotations

from . import matrix
from .information import entropy, joint_entropy, mutual_information
from .kernels import KERNELS, gram
from .types import KernelName, Method

__version__ = "0.1.0"

__all__ = [
    "KERNELS",
    "KernelName",
    "Method",
    "__version__",
    "entropy",
    "gram",
    "joint_entropy",
    "matrix",
    "mutual_information",
]

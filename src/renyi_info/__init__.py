"""renyi_info: matrix-based Rényi entropy and mutual information in PyTorch.

Feature-level entry points (features ``(..., n, d)``):

```python
from renyi_info import entropy, joint_entropy, mutual_information, gram
```

Matrix-level entry points (Gram matrices ``(..., n, n)``):

```python
from renyi_info import matrix
matrix.entropy(a), matrix.joint_entropy(a, b), matrix.mutual_information(a, b), matrix.dime(a, b)
```

Low-level, unchecked quantities of Grams with an explicit method (for libraries): ``renyi_info.gram_level``.
The layers and what may import what: see "Architecture" in the docs.
"""

from __future__ import annotations

from . import gram_level, layerwise, matrix
from .algorithms.lanczos import Estimate, LanczosOptions
from .bandwidths import BANDWIDTH_RULES, bandwidth
from .dependence import dime
from .estimates import entropy_estimate, joint_entropy_estimate, mutual_information_estimate
from .features import (
    conditional_entropy,
    conditional_mutual_information,
    divergence,
    entropy,
    joint_entropy,
    mutual_information,
    total_correlation,
)
from .information_plane import InformationPlane
from .kernels import KERNELS, gram
from .types import BandwidthRule, KernelName, Method

__version__ = "0.1.0"

__all__ = [
    "BANDWIDTH_RULES",
    "KERNELS",
    "BandwidthRule",
    "Estimate",
    "InformationPlane",
    "KernelName",
    "LanczosOptions",
    "Method",
    "__version__",
    "bandwidth",
    "conditional_entropy",
    "conditional_mutual_information",
    "dime",
    "divergence",
    "entropy",
    "entropy_estimate",
    "gram",
    "gram_level",
    "joint_entropy",
    "joint_entropy_estimate",
    "layerwise",
    "matrix",
    "mutual_information",
    "mutual_information_estimate",
    "total_correlation",
]

"""Former location of the stochastic Lanczos estimator, kept so that old imports keep working.

The algorithm is in `renyi_info.algorithms.lanczos`, the public estimate functions in
`renyi_info.estimates`; all of these names are also `renyi_info.<name>`.
"""

from __future__ import annotations

from .algorithms.lanczos import Estimate, LanczosOptions
from .estimates import entropy_estimate, joint_entropy_estimate, mutual_information_estimate

__all__ = [
    "Estimate",
    "LanczosOptions",
    "entropy_estimate",
    "joint_entropy_estimate",
    "mutual_information_estimate",
]

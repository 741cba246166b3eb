"""Type aliases of the public API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

#: How an entropy is computed (see "Choosing a method" in the docs).
Method = Literal["auto", "eig", "frobenius", "power", "lanczos"]

#: Kernel names accepted by `renyi_info.gram`.
KernelName = Literal["cosine", "linear", "polynomial", "gaussian", "label"]

#: One kernel name for every input, or one per input (feature functions with several inputs).
KernelArg = KernelName | Sequence[KernelName]

#: Rules of thumb accepted as the Gaussian ``sigma`` (see `renyi_info.bandwidth`).
BandwidthRule = Literal["silverman", "median"]

#: A Gaussian bandwidth: a number, a rule name, or ``None`` (other kernels); feature functions with several
#: inputs also take a sequence with one per input.
SigmaArg = float | BandwidthRule | None | Sequence[float | BandwidthRule | None]

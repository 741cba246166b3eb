"""Type aliases of the public API."""

from __future__ import annotations

from typing import Literal

#: How an entropy is computed (see "Choosing a method" in the docs).
Method = Literal["auto", "eig", "frobenius", "power", "lanczos"]

#: Kernel names accepted by :func:`renyi_info.gram`.
KernelName = Literal["cosine", "linear", "polynomial", "gaussian", "label"]

#: Rules of thumb accepted as the Gaussian ``sigma`` (see :func:`renyi_info.bandwidth`).
BandwidthRule = Literal["silverman", "median"]

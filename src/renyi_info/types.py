"""Type aliases of the public API."""

from __future__ import annotations

from typing import Literal

#: How an entropy is computed (see "Choosing a method" in the docs).
Method = Literal["auto", "eig", "frobenius", "power"]

#: Kernel names accepted by :func:`renyi_info.gram`.
KernelName = Literal["cosine", "linear", "polynomial", "gaussian"]

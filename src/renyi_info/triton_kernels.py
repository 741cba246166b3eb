"""Former location of `renyi_info.algorithms.triton_kernels` (needs `triton`), kept for old imports.

`import renyi_info.triton_kernels` gives the module `renyi_info.algorithms.triton_kernels` itself.
"""

from __future__ import annotations

import sys

from .algorithms import triton_kernels as _module

sys.modules[__name__] = _module

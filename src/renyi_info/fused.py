"""Former location of `renyi_info.algorithms.fused`, kept so that old imports keep working.

`import renyi_info.fused` gives the module `renyi_info.algorithms.fused` itself (same functions, same
module-level settings).
"""

from __future__ import annotations

import sys

from .algorithms import fused as _module

sys.modules[__name__] = _module

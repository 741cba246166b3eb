"""Former location of `renyi_info.algorithms.routes`, kept so that old imports keep working.

`import renyi_info.routes` gives the module `renyi_info.algorithms.routes` itself (same functions, same
module-level settings).
"""

from __future__ import annotations

import sys

from .algorithms import routes as _module

sys.modules[__name__] = _module

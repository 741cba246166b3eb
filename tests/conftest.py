"""Shared test configuration: hypothesis profiles and the import path of the test helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# ``tests/reference.py`` (the independent NumPy reference) is imported as ``reference`` whatever the
# pytest import mode or the presence of a ``tests/__init__.py``.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# Modest example counts and no deadline: the machines running CI are small and shared, and every
# property test evaluates eigendecompositions. HYPOTHESIS_PROFILE=thorough runs many more examples.
settings.register_profile(
    "default",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread, restored afterwards.

    Tiny tensors gain nothing from a thread pool, and on small, shared CI cores the hand-offs cost far
    more than the work. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Shared pytest configuration: the hypothesis profile of the property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Deterministic property tests (same examples on every run, nothing written to
# .hypothesis/), no per-example deadline: the first call into a kernel loads it
# from Numba's cache.
settings.register_profile(
    "gradpath",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("gradpath")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh ``default_rng(0)`` per test."""
    return np.random.default_rng(0)

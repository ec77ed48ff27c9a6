"""Shared pytest configuration: the hypothesis profile of the property tests."""

from __future__ import annotations

import os

# One BLAS thread: on a small shared machine a multi-threaded OpenBLAS call
# (a 500 x 500 QR in the probes) can stall for seconds waiting for a busy core.
# Set before numpy loads; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

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

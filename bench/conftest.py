"""pytest configuration of the benchmark suite.

Puts the repository's ``tests/`` directory on ``sys.path`` so the suite can
import the plain-numpy twin ``tests/naive.py``, and adds ``--bench-sizes``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench_cases import SIZES_ENV, parse_sizes

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def pytest_addoption(parser):
    parser.addoption(
        "--bench-sizes",
        default=None,
        help=(
            "comma-separated benchmark sizes to run: small (1,64,1,1000), medium "
            "(32,128,2,200), large (64,256,2,1000), or the subsets 'ci' (small,medium) "
            f"and 'all' (default). Overrides the {SIZES_ENV} environment variable."
        ),
    )


def selected_sizes(config) -> tuple[str, ...]:
    """Size names chosen by --bench-sizes, else $GRADPATH_BENCH_SIZES, else all."""
    spec = config.getoption("--bench-sizes") or os.environ.get(SIZES_ENV)
    return parse_sizes(spec)

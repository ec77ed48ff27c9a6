"""Time for a fresh Python process that hits Numba's on-disk cache to be
ready to call every kernel: ``python -c "import gradpath; gradpath.warmup()"``.

One untimed run fills the cache (and a second, with ``NUMBA_DEBUG_CACHE=1``,
checks that nothing is compiled any more); then each timed round is one fresh
subprocess, interpreter start-up included. The regression check compares the
median with the 1.5 s target (failing only above 1.5 s x 2.0, see
``bench_cases.CACHE_LOAD_NOISE_FACTOR``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench_cases import CACHE_LOAD_KEY, CACHE_LOAD_NOISE_FACTOR, CACHE_LOAD_TARGET_S

CODE = "import gradpath; gradpath.warmup()"
ROUNDS = 5


def fresh_process(env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CODE], check=True, capture_output=True,
                          text=True, env=env)


def test_cache_load(benchmark):
    fresh_process()  # fill the on-disk cache (compiles on a cold checkout)
    debug = fresh_process(dict(os.environ, NUMBA_DEBUG_CACHE="1"))
    log = debug.stdout + debug.stderr
    saved = log.count("data saved to")
    loaded = log.count("data loaded from")
    assert saved == 0, f"a fresh process still compiled {saved} function(s):\n{log}"

    benchmark.group = "cache-load"
    benchmark.extra_info.update({
        "entry": CACHE_LOAD_KEY, "impl": "cache-load", "loaded_from_cache": loaded,
        "target_s": CACHE_LOAD_TARGET_S, "noise_factor": CACHE_LOAD_NOISE_FACTOR,
    })
    benchmark.pedantic(fresh_process, rounds=ROUNDS, iterations=1)

"""Seeded random streams.

Every random draw in gradpath comes from a named stream of one integer seed,
so weights, data batches and probe vectors never share a generator and a run
is bit-identical given its seed.
"""

from __future__ import annotations

import numpy as np

from .checks import integer

STREAMS: dict[str, int] = {
    "weights": 0,
    "data": 1,
    "probe": 2,
    "eval": 3,
    "lyapunov": 4,
    "state": 5,
    "test": 6,
}


def stream(seed: int, name: str, *sub: int) -> np.random.Generator:
    """Return the generator for stream ``name`` (and optional sub-streams) of ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative integer seed of the run.
    name : str
        One of :data:`STREAMS`.
    *sub : int
        Further non-negative integers that index independent sub-streams
        (a batch number, a repetition).

    Returns
    -------
    numpy.random.Generator
    """
    if name not in STREAMS:
        raise ValueError(f"stream: unknown name {name!r}; expected one of {sorted(STREAMS)}")
    seed = integer(seed, "seed", minimum=0)
    ss = np.random.SeedSequence(seed, spawn_key=(STREAMS[name], *map(int, sub)))
    return np.random.default_rng(ss)

"""Run ids: a stable hash of a run's kind and configuration.

The typed configurations (:class:`gradpath.probe.ProbeConfig`,
:class:`gradpath.train.TrainConfig`) compute their id here once and carry it;
this module sits below them (and below :mod:`gradpath.results`, which
re-exports :func:`run_id`) so that they need not import the tables.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def run_id(kind: str, config: dict) -> str:
    """Stable 16-hex-digit id of a run: SHA-256 of its kind and canonical config JSON."""
    canon = json.dumps({"kind": kind, **_canonical(config)}, sort_keys=True,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _canonical(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if isinstance(v, bool | str) or v is None:
            out[k] = v
        elif isinstance(v, int | np.integer | float | np.floating):
            f = float(v)  # 1 and 1.0 hash alike: integral numbers are written as ints
            out[k] = int(f) if f.is_integer() else f
        elif isinstance(v, list | tuple):
            out[k] = [_canonical({"v": x})["v"] for x in v]
        else:
            raise ValueError(f"config[{k!r}]: cannot hash a {type(v).__name__}")
    return out

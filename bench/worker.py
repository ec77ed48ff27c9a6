"""Timing worker of the paired benchmark: one revision of gradpath in one process.

``bench/gate.py`` starts one worker per revision (head, and base from a git
worktree via ``PYTHONPATH``) and drives them over stdin/stdout with one JSON
object per line:

* ``{"cmd": "setup", "cases": [spec, ...]}``: build every case (see
  ``bench_cases.Case.spec``) and call it once (JIT load, first-touch
  allocation); reply ``{"ok": [key, ...], "errors": {key: message}}``;
* ``{"cmd": "time", "key": k, "calls": n}``: reply ``{"s": seconds per call}``
  over ``n`` back-to-back calls;
* ``{"cmd": "quit"}``.

A spec of ``"kind": "train"`` (``bench/peer_cases.train_specs``, for
``bench/ab_updates.py``) is instead one training update, as ``make
bench-peers`` times gradpath's (``peer_worker.gradpath_case``).

Only the public API (the model classes of ``gradpath.models.CELL_TYPES``,
``init_params``, ``loss_and_grads``, the trainer) is used, so the same
worker times any revision; a case the revision cannot run (a cell it does not have yet) comes
back in ``errors``, and the gate times it in head
alone. Its first line is ``{"gradpath": path}``: the controller checks it
imported the revision it meant to.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def build(spec: dict, gp):
    """A zero-argument callable running one case's ``loss_and_grads`` (or,
    for a ``"train"`` spec, one training update)."""
    if spec.get("kind") == "train":
        from peer_worker import gradpath_case

        return gradpath_case(spec)[0]
    B, H, D, T = spec["B"], spec["H"], spec["D"], spec["T"]
    dt = np.dtype(spec["dtype"])
    from gradpath.models import CELL_TYPES

    cls = CELL_TYPES.get(spec["cell"])
    if cls is None:
        raise NotImplementedError(f"this revision has no cell {spec['cell']!r}")
    act = spec["activation"]
    model = cls(D, H, 1) if act is None else cls(D, H, 1, activation=act)
    kwargs = {} if spec["forget_bias"] is None else {"forget_bias": spec["forget_bias"]}
    params = model.init_params(spec["init"], gain=1.0, seed=0, dtype=dt, **kwargs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(dt)
    target = rng.standard_normal((B, 1)).astype(dt)

    def call():
        return model.loss_and_grads(params, x, target, loss="mse", score="last")

    return call


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    import gradpath as gp

    reply({"gradpath": gp.__file__})
    calls: dict = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "setup":
            errors = {}
            for spec in req["cases"]:
                try:
                    fn = build(spec, gp)
                    fn()
                    calls[spec["key"]] = fn
                except Exception as exc:  # a case this revision cannot run
                    errors[spec["key"]] = f"{type(exc).__name__}: {exc}"
            reply({"ok": sorted(calls), "errors": errors})
        elif req["cmd"] == "time":
            fn, n = calls[req["key"]], int(req["calls"])
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            reply({"s": (time.perf_counter() - t0) / n})
        elif req["cmd"] == "quit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())

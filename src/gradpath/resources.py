"""Memory and runtime of a run, estimated from its shape before it starts.

The workflow uses these estimates three ways: to refuse a study whose runs
cannot fit in memory (a clear error naming the config key, before any job
starts), to size the batches it groups runs into, and to request memory and
runtime per job from a cluster scheduler (Snakemake's ``mem_mb`` and
``runtime``). The command line checks a single run the same way.

Memory is dominated by what backpropagation through time keeps: the states
of every step, ``seq_len x batch x hidden`` numbers per kept array. The
coefficients below are measured peak resident memory above a fresh
interpreter's (``ru_maxrss``, float64 and float32, T up to 20,000), in units
of ``seq_len x batch x hidden x itemsize``:

========  ======  =======
run       RNN     LSTM
========  ======  =======
train     1.1     6.9
probe     1.9     10.9
========  ======  =======

and :data:`MEMORY_MARGIN` is applied on top. Runtime comes from a count of
floating-point work (the recurrent and input products of the forward and
backward passes, plus a per-element term) at :data:`FLOPS_PER_SECOND`, one
core's sustained rate at these sizes: an order-of-magnitude estimate, which
the scheduler request multiplies by a safety factor.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .vocab import GATE_BLOCKS

#: Resident memory of a job around its runs: the interpreter, numpy, numba
#: with the cached kernels, pandas, pyarrow, BLAS buffers (a tiny run's job
#: peaked at 250-300 MB on 2-core Intel Xeons).
BASE_MB: float = 400.0
#: Peak memory per ``seq_len x batch x hidden x itemsize``, by (kind, cell).
MEMORY_UNITS: dict[tuple[str, str], float] = {
    ("train", "rnn"): 1.1, ("train", "lstm"): 6.9, ("train", "gru"): 6.9,
    ("probe", "rnn"): 1.9, ("probe", "lstm"): 10.9, ("probe", "gru"): 9.5,
}
#: Head-room on the measured coefficients (allocator slack, temporaries).
MEMORY_MARGIN: float = 1.25
#: Sustained single-core rate assumed for the runtime estimate: measured
#: 2.1e10-2.8e10 per training update (float32, H = 64-100, one thread, on a
#: loaded 2-core Intel Xeon), rounded down.
FLOPS_PER_SECOND: float = 2e10
#: Per-element work of one step (nonlinearities, gates, clipping, norms).
ELEMENT_FLOPS: float = 50.0
#: Fixed cost of a run (set-up, tables, writing Parquet), seconds.
RUN_OVERHEAD_S: float = 0.2
#: Measured time over the flop count's, where the count misses the work: the
#: gated probes' Lyapunov QR steps run per time step, on a 2N-dimensional state
#: for the LSTM (the default study's 15 LSTM probes at N = 512 took 4.3x the
#: count's time); a GRU probe at N = 512 took 0.83x an LSTM probe's factor.
TIME_FACTOR: dict[tuple[str, str], float] = {("probe", "lstm"): 4.5, ("probe", "gru"): 3.8}

_INPUTS = {"adding": 2, "copy": 10, "sine": 1}


@dataclass(frozen=True)
class Estimate:
    """Estimated peak memory (MiB, the whole job process) and runtime (s)."""

    mem_mb: float
    seconds: float


def _shape(kind: str, c: dict) -> tuple[int, int, int, int, int]:
    """(steps, batch, hidden, itemsize, input size) of a run's longest pass."""
    if kind == "probe":
        return (int(c["seq_len"]) + int(c["burn_in"]), int(c["batch"]), int(c["hidden"]), 8,
                1)
    item = 4 if c.get("dtype") == "float32" else 8
    return int(c["seq_len"]), int(c["batch"]), int(c["hidden"]), item, _INPUTS.get(
        c["task"], 2)


def estimate(kind: str, config: dict) -> Estimate:
    """Estimate a run's peak memory and runtime from its configuration.

    Parameters
    ----------
    kind : {"probe", "train"}
    config : dict
        The run's configuration, as in :class:`gradpath.grid.Run` (``cell``,
        ``seq_len``, ``batch``, ``hidden``; for a probe ``burn_in`` and
        ``lyapunov_k``; for training ``task``, ``steps``, ``eval_every``,
        ``eval_batches`` and ``dtype``).

    Returns
    -------
    Estimate
    """
    if kind not in ("probe", "train"):
        raise ValueError(f"kind: expected 'probe' or 'train', got {kind!r}")
    cell = config["cell"]
    if (kind, cell) not in MEMORY_UNITS:  # a cell of the vocabulary not measured yet
        raise ValueError(f"cell: no memory estimate for a {cell} {kind} run yet "
                         "(gradpath.resources.MEMORY_UNITS)")
    T, B, H, item, D = _shape(kind, config)
    G = GATE_BLOCKS[cell]
    mem = BASE_MB + MEMORY_MARGIN * MEMORY_UNITS[kind, cell] * T * B * H * item / 2**20
    per_pass = 6.0 * G * T * B * (H * H + H * D) + ELEMENT_FLOPS * G * T * B * H
    if kind == "probe":
        k = min(max(int(config["lyapunov_k"]), 1), H)
        # forward and adjoint passes, plus one QR step of k vectors per step
        flops = per_pass + T * (2.0 * G * H * H * k + 4.0 * 2 * H * k * k)
    else:
        steps = int(config["steps"])
        evals = steps // max(int(config["eval_every"]), 1) + 1
        # updates, forward-only evaluations, and the decay curve, lambda_1 and
        # held-out metric at initialisation
        flops = per_pass * (steps + evals * int(config["eval_batches"]) / 3.0 + 4.0)
    factor = TIME_FACTOR.get((kind, cell), 1.0)
    return Estimate(mem_mb=mem, seconds=RUN_OVERHEAD_S + factor * flops / FLOPS_PER_SECOND)


def physical_memory_mb() -> float | None:
    """This machine's physical memory in MiB (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(kind: str, config: dict, limit_mb: float | None, where: str = "",
               limit_name: str = "this machine's memory") -> Estimate:
    """Raise ValueError, naming the shape keys, if a run cannot fit in memory.

    Parameters
    ----------
    kind, config
        As for :func:`estimate`.
    limit_mb : float or None
        Memory available to one run (MiB); None skips the check.
    where : str
        Prefix of the message, e.g. the config section the run comes from.
    limit_name : str
        What ``limit_mb`` is, for the message.

    Returns
    -------
    Estimate
    """
    est = estimate(kind, config)
    if limit_mb is not None and est.mem_mb > limit_mb:
        T, B, H, item, _ = _shape(kind, config)
        length = "seq_len + burn_in" if kind == "probe" else "seq_len"
        raise ValueError(
            f"{where}a {config['cell']} {kind} run with {length}={T}, batch={B}, hidden={H} "
            f"({item * 8}-bit) needs about {_fmt_mb(est.mem_mb)} of memory, more than "
            f"{limit_name} ({_fmt_mb(limit_mb)}): lower seq_len, batch or hidden")
    return est


def _fmt_mb(mb: float) -> str:
    return f"{mb / 1024:,.1f} GiB" if mb >= 1024 else f"{math.ceil(mb)} MiB"

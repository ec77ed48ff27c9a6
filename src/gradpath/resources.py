"""Memory and runtime of a run, estimated from its shape before it starts.

The workflow uses these estimates three ways: to refuse a study whose runs
cannot fit in memory (a clear error naming the config key, before any job
starts), to size the batches it groups runs into, and to request memory and
runtime per job from a cluster scheduler (Snakemake's ``mem_mb`` and
``runtime``). The command line and the library's :func:`gradpath.train.train`
and :func:`gradpath.probe.probe` check a single run the same way.

Memory is counted, not fitted. The estimate is

    mem_mb = BASE_MB + MEMORY_MARGIN * (bytes of the largest phase) / 2**20

where a phase's bytes are the arrays the code holds at once, read off the
code that allocates them. With T steps, B sequences, H hidden units, G gate
blocks (each cell's ``gates``), A arrays of T x B x H kept for
backpropagation through time (:data:`STORED_PER_STEP`: h for the RNN; h, c,
four gates and tanh c for the LSTM; h, three gates and three recurrent
products for the GRU), D inputs, O outputs, item size s (8 or 4 bytes) and
P = G H (H + D + 1) + O (H + 1) (+ H for the GRU's b_hn) parameters:

**Training** (``gradpath.train``), with n copies of the parameters kept by
the optimiser (:data:`OPTIMIZER_STATE`: Adam's m and v, SGD's velocity,
RMSProp's mean square), all in the run's dtype, and the steps' share
S = T B (s (A H + D + O + 3) + 8 (D + 2)) (the kept states, the read-out
gradient and norms, the batch drawn in float64 then cast):

=============  ===================================================================
phase          bytes held
=============  ===================================================================
initialise     8 H^2 max(G - 1 + INIT_BLOCK_TEMPS[init], 2 G)
kernel call    (1 + n) P s + S + max(G H^2 s, b P s) + T H (A s + 8) (+ P s: see below)
update         (1 + n) P s + S + 2 P s + 8 P (float32) or + P (float64)
=============  ===================================================================

Initialisation draws the recurrent blocks in float64, one H x H block at a
time (:data:`INIT_BLOCK_TEMPS` of them live while one is drawn: for an
orthogonal block the Gaussian draw, numpy's QR with its raw factor, R and Q,
and the sign-folded scaled Q), then holds the G blocks and their
concatenation. A kernel call holds its transposed W_hh, then the gradients
it returns (b = 2 sets for the RNN's call split over two blocks of rows,
with B >= 16; else 1), and lambda_1 at initialisation one sequence's states;
the held-out loop keeps the previous batch's gradients meanwhile (the P s
with eval_batches > 1). An update holds the gradients and their clipped copy
(2 P s; without clipping, P s), and the float64 copies clipping takes of
float32 gradients (8 P), or the float64 parameters' finiteness mask (P).

**Probe** (``gradpath.probe``, float64), whose network reads N = G H inputs
through W_ih = input_std I, an N x N matrix; steps' share
S = 8 T (B (N + A H + 4) + H) (the inputs, the states, the log-norms):

=============  ===================================================================
phase          bytes held
=============  ===================================================================
initialise     8 max(H^2 max(G - 1 + INIT_BLOCK_TEMPS[init], 2 G), G H^2 + 2 N^2)
input matrix   8 (G H^2 + 3 N^2)
forward pass   8 (2 G H^2 + 2 N^2) + S
Lyapunov       8 (G H^2 + N^2) + S + 8 (LYAPUNOV_TEMPS H' k + k^2)
=============  ===================================================================

``init_params`` draws W_ih as a Gaussian and scales it (two N x N copies);
the probe then replaces it by ``input_std * np.eye(N)`` while the old one
lives (the identity counted in full, as transparent huge pages can make its
zeros resident; here they were not), and the forward pass transposes W_ih and
W_hh. The Lyapunov QR step on k vectors of the state (H' = 2 H numbers for
the LSTM, H for the others) holds :data:`LYAPUNOV_TEMPS` H' x k arrays. Several
seeds add the previous seed's network and states.

Measured, as peak resident memory of the run's own process (``VmHWM``) on a
2-core AMD EPYC (Zen 4) with numpy 2 and OpenBLAS at one thread, where a tiny
run's process peaks at 297-303 MiB: above that, training runs held 0.92-1.04x
the counted bytes at H = 1024-4096 (T = 5; every cell, both dtypes, Adam and
SGD, with and without clipping) and 0.83-1.15x at T = 1000-8000 (H = 64-128;
the top where a batch split over two threads brings a second BLAS buffer),
probes 0.72-0.98x (less where the identity's zeros or the Lyapunov
temporaries are not all resident). The orthogonal block's 5 H^2 was measured
alone at H = 2048 (5.0-5.1). The estimate was 1.19-1.55x the measured peak
over every cell and both kinds, H = 8 to 4096 (``tests/test_resources.py``
and ``tests/test_provenance.py`` hold it between 1x and 2x); the previous
per-step coefficients, blind to the parameters, were 0.08x for an LSTM probe
and 0.14x for LSTM training at H = 4096.

Runtime comes from a count of floating-point work (the recurrent and input
products of the forward and backward passes, plus a per-element term) at
:data:`FLOPS_PER_SECOND`, one core's sustained rate at these sizes: an
order-of-magnitude estimate, which the scheduler request multiplies by a
safety factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psutil

from .cells import REGISTRY, cell_class

#: Resident memory of a job around its runs: the interpreter, numpy, numba
#: with the cached kernels, pandas, pyarrow, BLAS buffers (a tiny run's job
#: peaked at 250-300 MB on 2-core Intel Xeons; with numpy 2 on a 2-core AMD
#: EPYC, 297-303 MiB with one OpenBLAS thread and 330-340 MiB with two).
BASE_MB: float = 400.0
#: Head-room on the counted bytes: allocator slack, small temporaries, a
#: second thread's BLAS buffer (measured peaks were 0.72-1.15x the count).
MEMORY_MARGIN: float = 1.2
#: Arrays of T x B x H numbers a cell's forward pass keeps for the backward
#: pass (the kernels' states, :meth:`gradpath.cells.base.Cell.state_shapes`):
#: each cell's ``stored_per_step``.
STORED_PER_STEP: dict[str, int] = {n: c.stored_per_step for n, c in REGISTRY.items()}
#: Optimiser state: copies of the parameters each optimiser keeps (train.py).
OPTIMIZER_STATE: dict[str, int] = {"sgd": 1, "rmsprop": 1, "adam": 2}
#: H x H float64 matrices live while one recurrent block is drawn
#: (``models.recurrent_matrix``): orthogonal 5 (the draw, numpy's QR's raw
#: factor, R and Q, the scaled Q; measured 5.0-5.1 at H = 2048); Gaussian and
#: identity 2 (the draw and its scaled copy).
INIT_BLOCK_TEMPS: dict[str, int] = {"orthogonal": 5, "gaussian": 2, "identity": 2}
#: H' x k float64 arrays (H' = 2H for the LSTM's state, H for the others) the
#: Lyapunov QR step holds at once, a bound: the basis, the Jacobian products
#: and their sums, the stacked result, and the QR's copy and factors.
LYAPUNOV_TEMPS: int = 12
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
TIME_FACTOR: dict[tuple[str, str], float] = {("probe", n): c.probe_time_factor
                                             for n, c in REGISTRY.items()}

_INPUTS = {"adding": 2, "copy": 10, "sine": 1}
_OUTPUTS = {"adding": 1, "copy": 9, "sine": 1}


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


def _init_bytes(init: str, G: int, H: int) -> float:
    """Peak of drawing the G recurrent H x H blocks in float64 (``init_params``)."""
    temps = INIT_BLOCK_TEMPS.get(init, INIT_BLOCK_TEMPS["orthogonal"])
    return 8.0 * H * H * max(G - 1 + temps, 2 * G)


def train_bytes(config: dict) -> float:
    """Bytes a training run holds at its largest phase (see the module docstring)."""
    cls = cell_class(config["cell"])
    G, A = cls.gates, cls.stored_per_step
    task = config.get("task", "adding")
    T = int(config["seq_len"]) + (20 if task == "copy" else 0)  # copy: the recall steps
    B, H = int(config["batch"]), int(config["hidden"])
    s = 4 if config.get("dtype") == "float32" else 8
    D, O = _INPUTS.get(task, 2), _OUTPUTS.get(task, 1)
    P = sum(math.prod(s) for s in cls(D, H, O).param_shapes().values())
    # the kept states, read-out gradient, norms; the batch drawn in float64 and cast
    steps = T * B * (s * (A * H + D + O + 3) + 8.0 * (D + 2))
    held = (1 + OPTIMIZER_STATE.get(config.get("optimizer", "adam"), 2)) * P * s + steps
    blocks = 2 if cls.block_parts and B >= 16 else 1  # per-block gradient parts
    # a kernel call: W_hh transposed or the gradients (and lambda_1's single
    # sequence's states); the held-out loop keeps the previous batch's gradients
    call = max(G * H * H * s, blocks * P * s) + T * H * (A * s + 8.0)
    if int(config.get("eval_batches", 4)) > 1:
        call += P * s
    clipped = config.get("clip", "norm") != "none"
    update = (2 if clipped else 1) * P * s + (8.0 if s == 4 else 1.0) * P
    return max(_init_bytes(config.get("init", "orthogonal"), G, H), held + max(call, update))


def probe_bytes(config: dict) -> float:
    """Bytes a probe holds at its largest phase (see the module docstring)."""
    cls = cell_class(config["cell"])
    G, A = cls.gates, cls.stored_per_step
    T = int(config["seq_len"]) + int(config["burn_in"])
    B, H = int(config["batch"]), int(config["hidden"])
    N = G * H  # the probe's inputs: W_ih is N x N
    k = min(max(int(config.get("lyapunov_k", 1)), 1), H)
    w_hh, w_ih = 8.0 * G * H * H, 8.0 * N * N
    steps = 8.0 * T * (B * (N + A * H + 4) + H)  # inputs, states, log-norms
    lyap = 8.0 * (LYAPUNOV_TEMPS * cls.state_blocks * H * k + k * k)
    peak = max(_init_bytes(config.get("init", "gaussian"), G, H),
               w_hh + 2 * w_ih,                    # W_ih drawn and scaled
               w_hh + 3 * w_ih,                    # replaced by input_std * eye
               2 * (w_hh + w_ih) + steps,          # the forward pass's transposes
               w_hh + w_ih + steps + lyap)         # the adjoint and Lyapunov passes
    if len(config.get("seeds", [0])) > 1:  # the previous seed's network and states
        peak += w_hh + w_ih + steps
    return peak


def estimate(kind: str, config: dict) -> Estimate:
    """Estimate a run's peak memory and runtime from its configuration.

    Parameters
    ----------
    kind : {"probe", "train"}
    config : dict
        The run's configuration, as in :class:`gradpath.grid.Run` (``cell``,
        ``seq_len``, ``batch``, ``hidden``, ``init``; for a probe ``burn_in``,
        ``lyapunov_k`` and ``seeds``; for training ``task``, ``steps``,
        ``eval_every``, ``eval_batches``, ``optimizer``, ``clip`` and
        ``dtype``).

    Returns
    -------
    Estimate
    """
    if kind not in ("probe", "train"):
        raise ValueError(f"kind: expected 'probe' or 'train', got {kind!r}")
    cls = cell_class(config["cell"])
    T, B, H, item, D = _shape(kind, config)
    G, R = cls.gates, cls.recurrent_gates()
    counted = probe_bytes(config) if kind == "probe" else train_bytes(config)
    mem = BASE_MB + MEMORY_MARGIN * counted / 2**20
    per_pass = 6.0 * T * B * (R * H * H + G * H * D) + ELEMENT_FLOPS * G * T * B * H
    if kind == "probe":
        k = min(max(int(config["lyapunov_k"]), 1), H)
        # forward and adjoint passes, plus one QR step of k vectors per step
        flops = per_pass + T * (2.0 * R * H * H * k + 4.0 * 2 * H * k * k)
    else:
        steps = int(config["steps"])
        evals = steps // max(int(config["eval_every"]), 1) + 1
        # updates, forward-only evaluations, and the decay curve, lambda_1 and
        # held-out metric at initialisation
        flops = per_pass * (steps + evals * int(config["eval_batches"]) / 3.0 + 4.0)
    factor = cls.probe_time_factor if kind == "probe" else 1.0
    return Estimate(mem_mb=mem, seconds=RUN_OVERHEAD_S + factor * flops / FLOPS_PER_SECOND)


def physical_memory_mb() -> float | None:
    """This machine's physical memory in MiB (psutil: Linux, macOS, Windows),
    or None where the OS does not say (e.g. no /proc in a container)."""
    try:
        return psutil.virtual_memory().total / 2**20
    except OSError:
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

"""The cases of the peer comparison (``bench/peers.py``): sizes, data and weights.

Every implementation (gradpath, PyTorch, JAX) builds a case from the same
spec and gets the same float64 numbers from here, cast to the case's dtype,
so their losses and gradients can be compared before anything is timed.

Two kinds of case:

* ``kernel``: forward + full BPTT of loss = mean over (t, b) of
  0.5 ||W_out h_t + b_out - y_t||^2 (score all), tanh RNN, LSTM or GRU,
  weights uniform in +-1/sqrt(H) (PyTorch's default), x and y standard normal;
* ``train``: one training update on the adding problem (mse at the last
  step), ReLU RNN, LSTM or GRU with a linear read-out, global-norm clipping at
  1 and Adam (lr 1e-3), from the same weights and batch.

The cells are ``bench_cases.CELLS`` (``gradpath.vocab.CELLS``). The GRU is
PyTorch's (``torch.nn.GRU``): its n gate's recurrent bias ``b_hn`` sits inside
the reset product, so it is a parameter of its own (PyTorch's ``bias_hh`` is
``[0, 0, b_hn]``).
"""

from __future__ import annotations

import numpy as np
from bench_cases import CELLS, GATE_BLOCKS, SIZES

#: (B, H, D, T) of the kernel cases: the benchmark sizes, plus a wide one.
KERNEL_SIZES: dict[str, tuple[int, int, int, int]] = {**SIZES, "wide": (16, 512, 8, 100)}
#: Training-update cases: B x H x T, adding problem (D = 2, O = 1).
TRAIN_B = (16, 64)
TRAIN_H = (64, 128)
TRAIN_T = (100, 400)
TRAIN_LR = 1e-3
TRAIN_CLIP = 1.0
IMPLS = ("gradpath", "torch", "jax")
DTYPES = ("float32", "float64")
#: Gate blocks per hidden unit (rows of W_ih and W_hh per hidden unit).
GATES = GATE_BLOCKS
#: Activations kept per step for the backward pass, in units of B x H: the RNN
#: h_t; the LSTM h_t, c_t and its four gates; the GRU h_t, its three gates
#: r, z, n and the n block's recurrent term W_hn h_{t-1} + b_hn (r multiplies
#: it, so dL/dr needs it).
KEPT_PER_STEP = {"rnn": 1, "lstm": 6, "gru": 5}


def kernel_specs() -> list[dict]:
    return [{"kind": "kernel", "cell": cell, "size": name, "B": B, "H": H, "D": D, "T": T,
             "O": 1, "activation": "tanh", "dtype": dt,
             "key": f"kernel-{cell}-{B}x{H}x{D}x{T}-{dt}"}
            for cell in CELLS for name, (B, H, D, T) in KERNEL_SIZES.items()
            for dt in DTYPES]


def train_specs() -> list[dict]:
    # the activation is the RNN's; the gated cells' are fixed (tanh)
    return [{"kind": "train", "cell": cell, "B": B, "H": H, "D": 2, "T": T, "O": 1,
             "activation": "relu" if cell == "rnn" else "tanh", "dtype": dt,
             "key": f"train-{cell}-B{B}-H{H}-T{T}-{dt}"}
            for cell in CELLS for B in TRAIN_B for H in TRAIN_H for T in TRAIN_T
            for dt in DTYPES]


def weights(spec: dict) -> dict[str, np.ndarray]:
    """gradpath-layout parameters (float64): W_ih (G H, D), W_hh (G H, H), b (G H,),
    for the GRU b_hn (H,), W_out (O, H), b_out (O,); uniform in +-1/sqrt(H)."""
    G = GATES[spec["cell"]]
    H, D, O = spec["H"], spec["D"], spec["O"]
    rng = np.random.default_rng([H, D, G, 7])
    k = 1.0 / np.sqrt(H)
    shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b": (G * H,),
              **({"b_hn": (H,)} if spec["cell"] == "gru" else {}),
              "W_out": (O, H), "b_out": (O,)}
    return {name: rng.uniform(-k, k, shape) for name, shape in shapes.items()}


def data(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(x (T, B, D), target): (T, B, O) for kernel cases; an adding batch
    (target (B, 1), the sum of the two marked values) for train cases."""
    B, D, T, O = spec["B"], spec["D"], spec["T"], spec["O"]
    rng = np.random.default_rng([B, D, T, 11])
    if spec["kind"] == "kernel":
        return rng.standard_normal((T, B, D)), rng.standard_normal((T, B, O))
    x = np.zeros((T, B, 2))
    x[:, :, 0] = rng.uniform(0.0, 1.0, (T, B))
    first = rng.integers(0, T // 2, B)
    second = rng.integers(T // 2, T, B)
    x[first, np.arange(B), 1] = 1.0
    x[second, np.arange(B), 1] = 1.0
    target = (x[first, np.arange(B), 0] + x[second, np.arange(B), 0])[:, None]
    return x, target


def flops(spec: dict) -> float:
    """Forward + backward FLOPs of the recurrent and input products:
    6 B T (H^2 + H D) per gate block (G = 1, 4, 3 for the RNN, LSTM, GRU)."""
    G = GATES[spec["cell"]]
    B, H, D, T = spec["B"], spec["H"], spec["D"], spec["T"]
    return 6.0 * G * B * T * (H * H + H * D)


def memory_floor(spec: dict) -> int:
    """Bytes a reverse-mode implementation cannot avoid keeping: activations
    for the backward pass (:data:`KEPT_PER_STEP`: RNN h_t; LSTM h_t, c_t and
    the four gates; GRU h_t, r, z, n and W_hn h_{t-1} + b_hn), parameters and
    their gradients."""
    G = GATES[spec["cell"]]
    B, H, D, T, O = spec["B"], spec["H"], spec["D"], spec["T"], spec["O"]
    per_step = KEPT_PER_STEP[spec["cell"]] * B * H
    params = G * H * (D + H + 1) + (H if spec["cell"] == "gru" else 0) + O * (H + 1)
    return (T * per_step + 2 * params) * np.dtype(spec["dtype"]).itemsize

"""The IndRNN for the peer comparison (``bench/peers.py``), in PyTorch and JAX:
h_t = phi(W_ih x_t + u * h_{t-1} + b), u (H,) elementwise.

Neither PyTorch nor JAX has a layer for it: both peers run this step, PyTorch
in an explicit loop over t, JAX in ``lax.scan``. The weights of the peer
cases (uniform in +-1/sqrt(H)) lie well inside the bound on |u| that
gradpath's training projects onto (2**(1/T) for ReLU), so the projection
after a training update changes nothing and the peers need none.

Plain Python, imported by file path without gradpath (the contract of a
peer module: ``bench/peer_cases.py``).
"""

#: ReLU, the paper's (and gradpath's default).
ACTIVATION = "relu"
#: B x H arrays a reverse-mode implementation keeps per step: h_t.
KEPT_PER_STEP = 1
#: No H x H product: the recurrence is elementwise (the FLOP count is the
#: input product's alone).
RECURRENT_BLOCKS = 0


def shapes(H: int, D: int, O: int) -> dict:
    return {"W_ih": (H, D), "u": (H,), "b": (H,), "W_out": (O, H), "b_out": (O,)}


def step(xp, p, h, xw, act):
    """h_t from h_{t-1} and xw = W_ih x_t + b."""
    return act(xw + p["u"] * h)

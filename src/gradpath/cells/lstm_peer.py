"""The LSTM for the peer comparison (``bench/peers.py``), in PyTorch and JAX:
gates i, f, g, o (``torch.nn.LSTM``'s order), c_t = f c_{t-1} + i g,
h_t = o tanh(c_t).

Plain Python, imported by file path without gradpath (the contract of a
peer module: ``bench/peer_cases.py``).
"""

#: The nonlinearities are fixed; what gradpath's configs record.
ACTIVATION = "tanh"
#: The state (h, c), both zero at t = 0.
STATES = 2
#: B x H arrays a reverse-mode implementation keeps per step: h_t, c_t and the
#: four gates.
KEPT_PER_STEP = 6
#: torch.nn's own layer (oneDNN on the CPU): gradpath's parameters as its tensors.
TORCH_LAYER = {"class": "LSTM",
               "params": {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b": "bias_ih_l0"}}


def shapes(H: int, D: int, O: int) -> dict:
    return {"W_ih": (4 * H, D), "W_hh": (4 * H, H), "b": (4 * H,), "W_out": (O, H),
            "b_out": (O,)}


def step(xp, p, state, xw, act):
    """(h_t, c_t) from (h_{t-1}, c_{t-1}) and xw = W_ih x_t + b."""
    h, c = state
    i, f, g, o = xp.chunk(xw + h @ p["W_hh"].T, 4)
    c = xp.sigmoid(f) * c + xp.sigmoid(i) * xp.tanh(g)
    return xp.sigmoid(o) * xp.tanh(c), c

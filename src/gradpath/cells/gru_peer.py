"""The GRU for the peer comparison (``bench/peers.py``), in PyTorch and JAX;
``torch.nn.GRU``'s convention: b_hn inside the reset product,

    r = sigmoid(W_ir x + W_hr h + b_r),  z = sigmoid(W_iz x + W_hz h + b_z)
    n = tanh(W_in x + b_n + r * (W_hn h + b_hn)),  h' = (1 - z) n + z h.

Plain Python, imported by file path without gradpath (the contract of a
peer module: ``bench/peer_cases.py``).
"""

#: The nonlinearities are fixed; what gradpath's configs record.
ACTIVATION = "tanh"
#: B x H arrays a reverse-mode implementation keeps per step: h_t, the gates
#: r, z, n and W_hn h_{t-1} + b_hn (r multiplies it, so dL/dr needs it).
KEPT_PER_STEP = 5
#: torch.nn's own layer (oneDNN on the CPU). Its ``bias_hh`` is [0, 0, b_hn]:
#: the n block (rows 2H..3H) is gradpath's b_hn; the r and z blocks would
#: duplicate b, stay 0 and get no gradient.
TORCH_LAYER = {"class": "GRU",
               "params": {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b": "bias_ih_l0",
                          "b_hn": ("bias_hh_l0", 2, 3)}}


def shapes(H: int, D: int, O: int) -> dict:
    return {"W_ih": (3 * H, D), "W_hh": (3 * H, H), "b": (3 * H,), "b_hn": (H,),
            "W_out": (O, H), "b_out": (O,)}


def step(xp, p, h, xw, act):
    """h_t from h_{t-1} and xw = W_ih x_t + b."""
    xr, xz, xn = xp.chunk(xw, 3)
    hr, hz, hn = xp.chunk(h @ p["W_hh"].T, 3)
    r = xp.sigmoid(xr + hr)
    z = xp.sigmoid(xz + hz)
    n = xp.tanh(xn + r * (hn + p["b_hn"]))
    return (1.0 - z) * n + z * h

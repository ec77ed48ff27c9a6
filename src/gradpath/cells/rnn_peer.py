"""The vanilla RNN for the peer comparison (``bench/peers.py``), in PyTorch and JAX:
h_t = phi(W_ih x_t + W_hh h_{t-1} + b).

Plain Python, imported by file path without gradpath (the contract of a
peer module: ``bench/peer_cases.py``).
"""

#: Activations the peers run: tanh for forward + BPTT, ReLU for the training update.
ACTIVATION = {"kernel": "tanh", "train": "relu"}
#: B x H arrays a reverse-mode implementation keeps per step: h_t.
KEPT_PER_STEP = 1
#: torch.nn's own layer (oneDNN on the CPU): gradpath's parameters as its tensors.
TORCH_LAYER = {"class": "RNN", "activation_kwarg": "nonlinearity",
               "params": {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b": "bias_ih_l0"}}


def shapes(H: int, D: int, O: int) -> dict:
    return {"W_ih": (H, D), "W_hh": (H, H), "b": (H,), "W_out": (O, H), "b_out": (O,)}


def step(xp, p, h, xw, act):
    """h_t from h_{t-1} and xw = W_ih x_t + b."""
    return act(xw + h @ p["W_hh"].T)

"""The expRNN for the peer comparison (``bench/peers.py``), in PyTorch and JAX:
h_t = modReLU(W_ih x_t + W_hh h_{t-1}; b), W_hh = expm(A - A^T),
modReLU(z; b) = sign(z) relu(|z| + b).

Neither PyTorch nor JAX has a layer for it: both peers run this step, PyTorch
in an explicit loop over t, JAX in ``lax.scan``. W_hh is computed once per
call (``torch.linalg.matrix_exp``, ``jax.scipy.linalg.expm``) and autograd
differentiates through it, so the peers' dL/dA is the adjoint of the
exponential's Frechet derivative, as gradpath's (``grad_A``).

Plain Python, imported by file path without gradpath (the contract of a
peer module: ``bench/peer_cases.py``).
"""

#: The nonlinearity is fixed; what gradpath's configs record.
ACTIVATION = "modrelu"
#: B x H arrays a reverse-mode implementation keeps per step: h_t (modReLU's
#: derivatives follow from h_t alone).
KEPT_PER_STEP = 1


def shapes(H: int, D: int, O: int) -> dict:
    return {"W_ih": (H, D), "A": (H, H), "b": (H,), "W_out": (O, H), "b_out": (O,)}


def prepare(xp, p):
    """Once per call: the orthogonal W_hh = expm(A - A^T)."""
    A = p["A"]
    return {**p, "W_hh": xp.expm(A - A.T)}


def drive(xp, p, x):
    """W_ih x_t for every t at once: the pre-activation has no additive bias
    (b is modReLU's)."""
    return x @ p["W_ih"].T


def step(xp, p, h, xw, act):
    """h_t from h_{t-1} and xw = W_ih x_t."""
    z = xw + h @ p["W_hh"].T
    return xp.sign(z) * xp.relu(xp.abs(z) + p["b"])

"""One implementation (gradpath, PyTorch or JAX) of the peer cases, in its own process.

``bench/peers.py`` starts one worker per implementation and talks to it over
stdin/stdout, one JSON object per line (as ``bench/worker.py`` does):

* ``{"cmd": "setup", "cases": [spec, ...]}``: build every case and call it
  once (compilation, first-touch allocation); reply ``{"ok": [...],
  "errors": {key: message}}``;
* ``{"cmd": "check", "key": k, "path": p}``: from a fresh state, write the
  case's loss and gradients (kernel cases) or loss, gradients and the
  parameters after one update (train cases) to ``p`` (npz, gradpath's
  parameter names); reply ``{}``;
* ``{"cmd": "time", "key": k, "calls": n}``: seconds per call over ``n`` calls;
* ``{"cmd": "quit"}``.

``python bench/peer_worker.py IMPL --memory`` reads one spec from stdin and
prints the peak memory of one call above the resident size before it.

Threads are pinned by the controller's environment (``PEER_THREADS``):
PyTorch intra-op threads, XLA's Eigen pool and gradpath's row blocks.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

import numpy as np
from peer_cases import TRAIN_CLIP, TRAIN_LR, data, weights

THREADS = int(os.environ.get("PEER_THREADS", "2"))


# ---------------------------------------------------------------------------
# gradpath
# ---------------------------------------------------------------------------
class Batch:
    def __init__(self, x, target):
        self.x, self.target, self.lengths = x, target, None


def gradpath_case(spec: dict):
    """(call, check) for one case."""
    from gradpath.models import make_model
    from gradpath.train import TrainConfig, Trainer

    dt = np.dtype(spec["dtype"])
    w = {k: v.astype(dt) for k, v in weights(spec).items()}
    x, target = (a.astype(dt) for a in data(spec))
    B, H, D, T, O = spec["B"], spec["H"], spec["D"], spec["T"], spec["O"]
    if spec["kind"] == "kernel":
        model = make_model(spec["cell"], D, H, O, spec["activation"])  # RNN, LSTM, GRU

        def call():
            return model.loss_and_grads(w, x, target, loss="mse", score="all")

        def check():
            res = call()
            return {"loss": res.loss, **{f"grad_{k}": g for k, g in res.grads.items()}}

        return call, check

    def fresh():
        cfg = TrainConfig(task="adding", seq_len=T, cell=spec["cell"],
                          activation=spec["activation"], init="orthogonal", clip="norm",
                          clip_threshold=TRAIN_CLIP, optimizer="adam", lr=TRAIN_LR,
                          hidden=H, batch=B, dtype=spec["dtype"])
        tr = Trainer(cfg)
        for k, v in w.items():
            np.copyto(tr.params[k], v)
        return tr

    tr = fresh()
    b = Batch(x, target)

    def call():
        return tr.update(b)

    def check():
        t = fresh()
        res = t.model.loss_and_grads(t.params, x, target, "mse", "last")
        u = t.update(b)
        return {"loss": u.loss, **{f"grad_{k}": g for k, g in res.grads.items()},
                **{f"param_{k}": p for k, p in t.params.items()}}
    return call, check


# ---------------------------------------------------------------------------
# PyTorch: nn.RNN / nn.LSTM / nn.GRU + nn.Linear, autograd, torch.optim.Adam,
# clip_grad_norm_
# ---------------------------------------------------------------------------
def torch_case(spec: dict):
    import torch

    torch.set_num_threads(THREADS)
    dt = torch.float64 if spec["dtype"] == "float64" else torch.float32
    w = weights(spec)
    xn, tn = data(spec)
    H, D, O = spec["H"], spec["D"], spec["O"]
    gru = spec["cell"] == "gru"

    def build():
        if spec["cell"] == "lstm":
            net = torch.nn.LSTM(D, H)
        elif gru:
            net = torch.nn.GRU(D, H)
        else:
            net = torch.nn.RNN(D, H, nonlinearity=spec["activation"])
        head = torch.nn.Linear(H, O)
        net, head = net.to(dt), head.to(dt)
        with torch.no_grad():
            net.weight_ih_l0.copy_(torch.from_numpy(w["W_ih"]))
            net.weight_hh_l0.copy_(torch.from_numpy(w["W_hh"]))
            net.bias_ih_l0.copy_(torch.from_numpy(w["b"]))
            net.bias_hh_l0.zero_()
            if gru:
                net.bias_hh_l0[2 * H:].copy_(torch.from_numpy(w["b_hn"]))
            head.weight.copy_(torch.from_numpy(w["W_out"]))
            head.bias.copy_(torch.from_numpy(w["b_out"]))
        if gru:
            # bias_hh = [0, 0, b_hn]: the n block is gradpath's b_hn (inside the
            # reset product, not a duplicate of b); the r and z blocks would
            # duplicate b and stay 0: their gradient is masked to 0, so neither
            # the clipping norm nor Adam (zero moments: a zero step) sees them
            mask = torch.zeros(3 * H, dtype=dt)
            mask[2 * H:] = 1
            net.bias_hh_l0.register_hook(lambda g: g * mask)
        else:
            # gradpath has one bias vector per gate block; the second stays 0
            net.bias_hh_l0.requires_grad_(False)
        return net, head

    x = torch.from_numpy(xn).to(dt)
    target = torch.from_numpy(tn).to(dt)
    net, head = build()

    def loss_of(net, head):
        out, _ = net(x)
        y = head(out) if spec["kind"] == "kernel" else head(out[-1])
        return 0.5 * ((y - target) ** 2).sum(-1).mean()

    def grads_of(net, head):
        return {"W_ih": net.weight_ih_l0.grad, "W_hh": net.weight_hh_l0.grad,
                "b": net.bias_ih_l0.grad,
                **({"b_hn": net.bias_hh_l0.grad[2 * H:]} if gru else {}),
                "W_out": head.weight.grad, "b_out": head.bias.grad}

    def named(net, head):
        return {"W_ih": net.weight_ih_l0, "W_hh": net.weight_hh_l0, "b": net.bias_ih_l0,
                **({"b_hn": net.bias_hh_l0[2 * H:]} if gru else {}),
                "W_out": head.weight, "b_out": head.bias}

    if spec["kind"] == "kernel":
        def call():
            for p in (*net.parameters(), *head.parameters()):
                p.grad = None
            loss = loss_of(net, head)
            loss.backward()
            return loss

        def check():
            n, h = build()
            loss = loss_of(n, h)
            loss.backward()
            return {"loss": loss.item(), **{f"grad_{k}": g.numpy()
                                             for k, g in grads_of(n, h).items()}}
        return call, check

    def trainable(n, h):
        return [p for p in (*n.parameters(), *h.parameters()) if p.requires_grad]

    opt = torch.optim.Adam(trainable(net, head), lr=TRAIN_LR)

    def update(n, h, o):
        o.zero_grad(set_to_none=True)
        loss = loss_of(n, h)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable(n, h), TRAIN_CLIP)
        o.step()
        return loss

    def call():
        return update(net, head, opt)

    def check():
        n, h = build()
        o = torch.optim.Adam(trainable(n, h), lr=TRAIN_LR)
        o.zero_grad(set_to_none=True)
        loss = loss_of(n, h)
        loss.backward()
        out = {"loss": loss.item(), **{f"grad_{k}": g.detach().clone().numpy()
                                       for k, g in grads_of(n, h).items()}}
        torch.nn.utils.clip_grad_norm_(trainable(n, h), TRAIN_CLIP)
        o.step()
        out.update({f"param_{k}": p.detach().numpy() for k, p in named(n, h).items()})
        return out
    return call, check


# ---------------------------------------------------------------------------
# JAX: lax.scan + value_and_grad under jit; optax for the update
# ---------------------------------------------------------------------------
def jax_case(spec: dict, ahead: bool = False):
    import jax
    import jax.numpy as jnp
    from jax import lax

    dt = jnp.float64 if spec["dtype"] == "float64" else jnp.float32
    w0 = {k: jnp.asarray(v, dt) for k, v in weights(spec).items()}
    xn, tn = data(spec)
    x, target = jnp.asarray(xn, dt), jnp.asarray(tn, dt)
    B, H = spec["B"], spec["H"]
    cell = spec["cell"]
    act = jnp.tanh if spec["activation"] == "tanh" else jax.nn.relu

    def loss_fn(p, x, target):
        xw = x @ p["W_ih"].T + p["b"]  # the input projection, outside the scan
        if cell == "lstm":
            def step(carry, xt):
                h, c = carry
                i, f, g, o = jnp.split(xt + h @ p["W_hh"].T, 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), h
            z = jnp.zeros((B, H), dt)
            _, hs = lax.scan(step, (z, z), xw)
        elif cell == "gru":  # torch.nn.GRU's convention: b_hn inside the reset product
            def step(h, xt):
                xr, xz, xn = jnp.split(xt, 3, axis=-1)
                hr, hz, hn = jnp.split(h @ p["W_hh"].T, 3, axis=-1)
                r = jax.nn.sigmoid(xr + hr)
                z = jax.nn.sigmoid(xz + hz)
                n = jnp.tanh(xn + r * (hn + p["b_hn"]))
                h = (1.0 - z) * n + z * h
                return h, h
            _, hs = lax.scan(step, jnp.zeros((B, H), dt), xw)
        else:
            def step(h, xt):
                h = act(xt + h @ p["W_hh"].T)
                return h, h
            _, hs = lax.scan(step, jnp.zeros((B, H), dt), xw)
        y = (hs if spec["kind"] == "kernel" else hs[-1]) @ p["W_out"].T + p["b_out"]
        return 0.5 * jnp.mean(jnp.sum((y - target) ** 2, axis=-1))

    vg = jax.jit(jax.value_and_grad(loss_fn))
    if ahead:  # compiled now, so the first call only runs
        vg = vg.lower(w0, x, target).compile()
    if spec["kind"] == "kernel":
        def call():
            return jax.block_until_ready(vg(w0, x, target))

        def check():
            loss, g = vg(w0, x, target)
            return {"loss": float(loss), **{f"grad_{k}": np.asarray(v) for k, v in g.items()}}
        return call, check

    import optax

    tx = optax.chain(optax.clip_by_global_norm(TRAIN_CLIP), optax.adam(TRAIN_LR))

    @jax.jit
    def update(p, state, x, target):
        loss, g = jax.value_and_grad(loss_fn)(p, x, target)
        upd, state = tx.update(g, state, p)
        return optax.apply_updates(p, upd), state, loss

    st = {"p": w0, "s": tx.init(w0)}

    def call():
        st["p"], st["s"], loss = update(st["p"], st["s"], x, target)
        return jax.block_until_ready(loss)

    def check():
        loss, g = vg(w0, x, target)
        p, _, _ = update(w0, tx.init(w0), x, target)
        return {"loss": float(loss), **{f"grad_{k}": np.asarray(v) for k, v in g.items()},
                **{f"param_{k}": np.asarray(v) for k, v in p.items()}}
    return call, check


BUILDERS = {"gradpath": gradpath_case, "torch": torch_case, "jax": jax_case}


def setup_impl(impl: str) -> None:
    if impl == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    if impl == "gradpath":
        os.environ["GRADPATH_NUM_THREADS"] = str(THREADS)


def proc_status(field: str) -> int:
    """A /proc/self/status size field in bytes (Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def memory(impl: str, spec: dict) -> int:
    """Peak resident bytes of the first call of a case above the resident size
    before it (inputs and weights already built): a small case of the same
    kind runs first (big enough for gradpath to use its threads), so code
    loading, thread pools and per-thread allocator arenas are not counted;
    JAX compiles the case ahead of time."""
    small = {**spec, "B": 16, "H": 64, "T": 64, "key": "warm"}
    BUILDERS[impl](small)[0]()
    call, _ = BUILDERS[impl](spec, ahead=True) if impl == "jax" else BUILDERS[impl](spec)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark
        f.write("5")
    before = proc_status("VmRSS")
    call()
    return proc_status("VmHWM") - before


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    impl = sys.argv[1]
    setup_impl(impl)
    if "--memory" in sys.argv:
        print(json.dumps({"peak_bytes": memory(impl, json.loads(sys.stdin.read()))}))
        return 0
    reply({"impl": impl})
    cases: dict = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "setup":
            errors = {}
            for spec in req["cases"]:
                try:
                    call, check = BUILDERS[impl](spec)
                    call()
                    cases[spec["key"]] = (call, check)
                except Exception as exc:  # reported, and the case is left out
                    errors[spec["key"]] = f"{type(exc).__name__}: {exc}"
            reply({"ok": sorted(cases), "errors": errors})
        elif req["cmd"] == "check":
            out = cases[req["key"]][1]()
            np.savez(req["path"], **{k: np.asarray(v, dtype=np.float64) for k, v in out.items()})
            reply({})
        elif req["cmd"] == "time":
            call, n = cases[req["key"]][0], int(req["calls"])
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            reply({"s": (time.perf_counter() - t0) / n})
        elif req["cmd"] == "quit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

The peers build a cell from its peer module (``peer_cases.peer_cell``; no cell
is named here): PyTorch runs the torch.nn layer the module names (nn.RNN,
nn.LSTM, nn.GRU: oneDNN), or else, or with ``spec["torch_loop"]``, the
module's step in an explicit Python loop over t; JAX runs the step in
``lax.scan``. A cell without a peer module is an error for the peers (the
controller sends them none).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
from peer_cases import LOOP, TRAIN_CLIP, TRAIN_LR, data, peer_cell, weights

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
    B, H, D, T, O = spec["B"], spec["H"], spec["D"], spec["T"], spec["O"]
    # activation None: the cell's default (a cell without a peer module)
    model = make_model(spec["cell"], D, H, O, spec["activation"])
    # the model's own parameter shapes: a peer module that disagrees fails the check
    w = {k: v.astype(dt) for k, v in weights(spec, model.param_shapes()).items()}
    x, target = (a.astype(dt) for a in data(spec))
    if spec["kind"] == "kernel":
        def call():
            return model.loss_and_grads(w, x, target, loss="mse", score="all")

        def check():
            res = call()
            return {"loss": res.loss, **{f"grad_{k}": g for k, g in res.grads.items()}}

        return call, check

    def fresh():
        cfg = TrainConfig(task="adding", seq_len=T, cell=spec["cell"],
                          activation=model.activation, init="orthogonal", clip="norm",
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
# The peers' array namespaces (what a peer module's step and prepare see)
# ---------------------------------------------------------------------------
def namespace(impl: str) -> SimpleNamespace:
    """``xp`` of the peer modules (``peer_cases``) for PyTorch or JAX."""
    if impl == "torch":
        import torch

        return SimpleNamespace(name="torch", tanh=torch.tanh, sigmoid=torch.sigmoid,
                               relu=torch.relu, abs=torch.abs, sign=torch.sign,
                               expm=torch.linalg.matrix_exp,
                               chunk=lambda a, n: torch.chunk(a, n, dim=-1))
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg

    return SimpleNamespace(name="jax", tanh=jnp.tanh, sigmoid=jax.nn.sigmoid,
                           relu=jax.nn.relu, abs=jnp.abs, sign=jnp.sign,
                           expm=jax.scipy.linalg.expm,
                           chunk=lambda a, n: tuple(jnp.split(a, n, axis=-1)))


def activation_of(xp, name: str | None):
    """The activation a peer module's step takes: tanh, ReLU, or None (fixed)."""
    return {"tanh": xp.tanh, "relu": xp.relu}.get(name)


def peer_of(spec: dict):
    pc = peer_cell(spec["cell"])
    if pc is None:
        raise ValueError(f"the {spec['cell']} cell has no peer module")
    return pc


def readout_loss(spec: dict, p: dict, hs, target):
    """The mse of the read-out: every step's (kernel cases: hs (T, B, H)) or
    the last's (train cases: hs (B, H))."""
    y = hs @ p["W_out"].T + p["b_out"]
    return 0.5 * ((y - target) ** 2).sum(-1).mean()


# ---------------------------------------------------------------------------
# PyTorch: the cell's torch.nn layer (nn.RNN / nn.LSTM / nn.GRU, oneDNN) +
# nn.Linear where the peer module names one, else the peer module's step in an
# explicit Python loop over t; autograd, torch.optim.Adam, clip_grad_norm_
# ---------------------------------------------------------------------------
def torch_case(spec: dict):
    import torch

    torch.set_num_threads(THREADS)
    pc = peer_of(spec)
    dt = torch.float64 if spec["dtype"] == "float64" else torch.float32
    w = weights(spec)
    xn, tn = data(spec)
    x = torch.from_numpy(xn).to(dt)
    target = torch.from_numpy(tn).to(dt)
    if pc.torch_path(spec.get("torch_loop", False)) == LOOP:
        build, loss_of, grads_of, named = torch_loop(spec, pc, w, x, target, dt)
    else:
        build, loss_of, grads_of, named = torch_layer(spec, pc, w, x, target, dt)
    net = build()

    def trainable(n):
        return [t for t in n.parameters() if t.requires_grad]

    if spec["kind"] == "kernel":
        def call():
            for t in net.parameters():
                t.grad = None
            loss = loss_of(net)
            loss.backward()
            return loss

        def check():
            n = build()
            loss = loss_of(n)
            loss.backward()
            return {"loss": loss.item(), **{f"grad_{k}": g.numpy()
                                             for k, g in grads_of(n).items()}}
        return call, check

    opt = torch.optim.Adam(trainable(net), lr=TRAIN_LR)

    def update(n, o):
        o.zero_grad(set_to_none=True)
        loss = loss_of(n)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable(n), TRAIN_CLIP)
        o.step()
        return loss

    def call():
        return update(net, opt)

    def check():
        n = build()
        o = torch.optim.Adam(trainable(n), lr=TRAIN_LR)
        o.zero_grad(set_to_none=True)
        loss = loss_of(n)
        loss.backward()
        out = {"loss": loss.item(), **{f"grad_{k}": g.detach().clone().numpy()
                                       for k, g in grads_of(n).items()}}
        torch.nn.utils.clip_grad_norm_(trainable(n), TRAIN_CLIP)
        o.step()
        out.update({f"param_{k}": t.detach().numpy() for k, t in named(n).items()})
        return out
    return call, check


def torch_layer(spec: dict, pc, w: dict, x, target, dt):
    """(build, loss_of, grads_of, named) for the cell's torch.nn layer + nn.Linear.

    The layer's tensors that gradpath's parameters cover (``TORCH_LAYER``'s
    "params") start from them; the rest start at 0 and never move: a tensor
    no parameter covers takes no gradient, and the uncovered rows of a
    partly covered one (the GRU's ``bias_hh`` = [0, 0, b_hn]) have their
    gradient masked to 0, so neither the clipping norm nor Adam (zero
    moments: a zero step) sees them.
    """
    import torch

    H, D, O = spec["H"], spec["D"], spec["O"]
    layer = pc.torch_layer
    kwargs = ({layer["activation_kwarg"]: spec["activation"]}
              if layer.get("activation_kwarg") else {})

    def rows(target_):
        name, first, end = (target_, None, None) if isinstance(target_, str) else target_
        return name, slice(None) if first is None else slice(first * H, end * H)

    where = {k: rows(v) for k, v in layer["params"].items()}

    def build():
        rnn = getattr(torch.nn, layer["class"])(D, H, **kwargs).to(dt)
        head = torch.nn.Linear(H, O).to(dt)
        covered = {}
        with torch.no_grad():
            for t in rnn.parameters():
                t.zero_()
            for k, (name, sl) in where.items():
                getattr(rnn, name)[sl].copy_(torch.from_numpy(w[k]))
                mask = covered.setdefault(name, torch.zeros(getattr(rnn, name).shape[0],
                                                             dtype=torch.bool))
                mask[sl] = True
            head.weight.copy_(torch.from_numpy(w["W_out"]))
            head.bias.copy_(torch.from_numpy(w["b_out"]))
        for name, t in rnn.named_parameters():
            mask = covered.get(name)
            if mask is None:
                t.requires_grad_(False)
            elif not bool(mask.all()):
                m = mask.to(dt).reshape(-1, *([1] * (t.dim() - 1)))
                t.register_hook(lambda g, m=m: g * m)
        net = torch.nn.ModuleDict({"rnn": rnn, "head": head})
        return net

    def loss_of(net):
        out, _ = net["rnn"](x)
        hs = out if spec["kind"] == "kernel" else out[-1]
        return readout_loss(spec, {"W_out": net["head"].weight, "b_out": net["head"].bias},
                            hs, target)

    def named(net):
        return {**{k: getattr(net["rnn"], name)[sl] for k, (name, sl) in where.items()},
                "W_out": net["head"].weight, "b_out": net["head"].bias}

    def grads_of(net):
        return {**{k: getattr(net["rnn"], name).grad[sl] for k, (name, sl) in where.items()},
                "W_out": net["head"].weight.grad, "b_out": net["head"].bias.grad}

    return build, loss_of, grads_of, named


def torch_loop(spec: dict, pc, w: dict, x, target, dt):
    """(build, loss_of, grads_of, named) for the peer module's step in an
    explicit Python loop over t: gradpath's parameters as leaf tensors."""
    import torch

    xp = namespace("torch")
    act = activation_of(xp, spec["activation"])
    B, H = spec["B"], spec["H"]

    class Params(torch.nn.Module):
        def __init__(self):
            super().__init__()
            # copies: the optimiser updates them in place, and w must stay the start
            self.p = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(torch.tensor(v, dtype=dt)) for k, v in w.items()})

    def build():
        return Params()

    def loss_of(net):
        p = pc.prepare(xp, dict(net.p))
        xw = pc.drive(xp, p, x)
        zero = torch.zeros((B, H), dtype=dt)
        state = zero if pc.states == 1 else tuple(zero for _ in range(pc.states))
        hs = []
        for t in range(xw.shape[0]):
            state = pc.step(xp, p, state, xw[t], act)
            if spec["kind"] == "kernel":
                hs.append(state if pc.states == 1 else state[0])
        last = state if pc.states == 1 else state[0]
        return readout_loss(spec, p, torch.stack(hs) if spec["kind"] == "kernel" else last,
                            target)

    def named(net):
        return dict(net.p)

    def grads_of(net):
        return {k: t.grad for k, t in net.p.items()}

    return build, loss_of, grads_of, named


# ---------------------------------------------------------------------------
# JAX: the peer module's step in lax.scan; value_and_grad under jit; optax for
# the update
# ---------------------------------------------------------------------------
def jax_case(spec: dict, ahead: bool = False):
    import jax
    import jax.numpy as jnp
    from jax import lax

    pc = peer_of(spec)
    xp = namespace("jax")
    act = activation_of(xp, spec["activation"])
    dt = jnp.float64 if spec["dtype"] == "float64" else jnp.float32
    w0 = {k: jnp.asarray(v, dt) for k, v in weights(spec).items()}
    xn, tn = data(spec)
    x, target = jnp.asarray(xn, dt), jnp.asarray(tn, dt)
    B, H = spec["B"], spec["H"]

    def loss_fn(w, x, target):
        p = pc.prepare(xp, w)
        xw = pc.drive(xp, p, x)  # the input product, outside the scan
        zero = jnp.zeros((B, H), dt)
        init = zero if pc.states == 1 else tuple(zero for _ in range(pc.states))

        def body(state, xt):
            state = pc.step(xp, p, state, xt, act)
            if spec["kind"] != "kernel":  # the read-out sees the last state alone
                return state, None
            return state, (state if pc.states == 1 else state[0])

        last, hs = lax.scan(body, init, xw)
        if spec["kind"] == "kernel":
            return readout_loss(spec, p, hs, target)
        return readout_loss(spec, p, last if pc.states == 1 else last[0], target)

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

"""The ``gradpath`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from . import __version__
from .checks import integer, number


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (naming the flag) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _arg(parse, check, **kw):
    """An argparse type: parse the text, then apply a :mod:`gradpath.checks` check."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        try:
            return check(value, "value", **kw)
        except ValueError as exc:  # "value: expected ..., got ..." -> "expected ..., got '<text>'"
            what = str(exc).removeprefix("value: ").split(", got ")[0]
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
    return convert


_positive_int = _arg(int, integer)
_nonneg_int = _arg(int, integer, minimum=0)
_nonneg_float = _arg(float, number)
_positive_float = _arg(float, number, positive=True)


def _network_flags(p: argparse.ArgumentParser, hidden: int, seq_len: int, batch: int) -> None:
    p.add_argument("--cell", choices=("rnn", "lstm"), default="rnn",
                   help="recurrent cell (default: rnn)")
    p.add_argument("--activation", choices=("tanh", "relu"), default="tanh",
                   help="RNN activation; ignored by the LSTM (default: tanh)")
    p.add_argument("--init", choices=("identity", "gaussian", "orthogonal"),
                   default="gaussian", help="recurrent-weight initialisation (default: gaussian)")
    p.add_argument("--gain", type=_nonneg_float, default=1.0,
                   help="recurrent gain: gain*I, N(0, gain^2/H) or gain*Q (default: 1.0)")
    p.add_argument("--hidden", type=_positive_int, default=hidden,
                   help=f"hidden size H (default: {hidden})")
    p.add_argument("--seq-len", type=_positive_int, default=seq_len,
                   help=f"sequence length T (default: {seq_len})")
    p.add_argument("--batch", type=_positive_int, default=batch,
                   help=f"batch size B (default: {batch})")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="seed (default: 0)")
    p.add_argument("--out", metavar="DIR",
                   help="write the run's tables (Parquet) and JSON summary to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    p = _Parser(prog="gradpath", description="Gradient pathologies of RNNs, measured.")
    p.add_argument("--version", action="version", version=f"gradpath {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="print gradient norms by lag at initialisation",
                       description="Gradient norm ||dL/dh_t|| at lags 0, 10, 50, 100 for tanh "
                       "and ReLU RNNs under identity, gaussian and orthogonal initialisation, "
                       "reading adding-problem inputs, at initialisation.")
    d.add_argument("--hidden", type=_positive_int, default=128, help="hidden size H (128)")
    d.add_argument("--seq-len", type=_positive_int, default=101,
                   help="sequence length T, > 100 (101)")
    d.add_argument("--batch", type=_positive_int, default=32, help="batch size B (32)")
    d.add_argument("--gain", type=_nonneg_float, default=1.0, help="recurrent gain (1.0)")
    d.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (0)")
    d.add_argument("--warmup", action="store_true",
                   help="only load (or compile) every kernel and exit")

    pr = sub.add_parser(
        "probe", help="measure the gradient-decay curve of a network at initialisation",
        description="Drive a network with Gaussian inputs, propagate a random unit adjoint "
        "back from the last step with per-step renormalisation, and report the decay "
        "curve log10||dL_T/dh_t|| by lag, its fitted slope, the mean-field prediction, the "
        "top Lyapunov exponent and the gradient horizon.")
    _network_flags(pr, hidden=256, seq_len=200, batch=8)
    pr.add_argument("--input-std", type=_nonneg_float, default=1.0,
                    help="std of each unit's input contribution sigma_u (default: 1.0)")
    pr.add_argument("--bias-std", type=_nonneg_float, default=0.0,
                    help="std of the per-unit bias sigma_b (default: 0.0)")
    pr.add_argument("--burn-in", type=_nonneg_int, default=100,
                    help="steps run before the measured window (default: 100)")
    pr.add_argument("--lyapunov-k", type=_positive_int, default=4,
                    help="number of Lyapunov exponents (default: 4)")

    tr = sub.add_parser(
        "train", help="train on a long-memory task with optional gradient clipping",
        description="Train one configuration; a non-finite loss or gradient ends the run "
        "with status 'diverged' (exit status 0). final_loss is the held-out task metric "
        "(MSE for adding and sine, nats per step for copy), comparable to baseline.")
    tr.add_argument("--task", choices=("adding", "copy", "sine"), default="adding",
                    help="task (default: adding)")
    _network_flags(tr, hidden=64, seq_len=50, batch=32)
    tr.add_argument("--clip", choices=("none", "norm", "value"), default="norm",
                    help="gradient clipping (default: norm)")
    tr.add_argument("--clip-threshold", type=_positive_float, default=1.0,
                    help="theta for norm clipping, bound for value clipping (default: 1.0)")
    tr.add_argument("--optimizer", choices=("sgd", "rmsprop", "adam"), default="adam",
                    help="optimiser (default: adam)")
    tr.add_argument("--lr", type=_positive_float, default=1e-3,
                    help="learning rate (default: 0.001)")
    tr.add_argument("--steps", type=_positive_int, default=500,
                    help="number of updates (default: 500)")
    tr.add_argument("--eval-every", type=_positive_int, default=100,
                    help="updates between held-out evaluations (default: 100)")
    tr.add_argument("--ragged", action="store_true", help="variable-length sequences")
    tr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="print step, loss, clipped share and ETA on stderr while training "
                         "(default: when stderr is a terminal)")
    tr.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="precision of parameters, data and kernels (default: float64)")
    return p


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _cmd_probe(args: argparse.Namespace) -> int:
    from .probe import probe
    from .resources import check_fits, physical_memory_mb
    from .results import probe_tables, write_run

    check_fits("probe", {"cell": args.cell, "seq_len": args.seq_len, "burn_in": args.burn_in,
                         "batch": args.batch, "hidden": args.hidden,
                         "lyapunov_k": args.lyapunov_k}, physical_memory_mb())
    t0 = time.perf_counter()
    res = probe(args.cell, args.activation, args.init, args.gain, args.hidden, args.seq_len,
                args.batch, args.input_std, args.bias_std, (args.seed,), args.burn_in,
                args.lyapunov_k)
    tables = probe_tables(res, time.perf_counter() - t0)
    if args.out:
        write_run(args.out, tables)
    out = {
        "run_id": tables["runs"]["run_id"].iloc[0],
        "config": res.config,
        "decay_rate": _finite(res.decay_rate),
        "cell_decay_rate": _finite(res.cell_decay_rate),
        "theory_slope": _finite(res.theory_slope),
        "lyapunov": _finite(float(res.lyapunov[0])),
        "lyapunov_spectrum": [_finite(float(v)) for v in res.lyapunov],
        "horizon": res.horizon,
        "fit_start": res.fit_start,
        "log10_grad_norm": [_finite(float(v)) for v in res.log10_grad_norm],
    }
    if res.log10_cell_grad_norm is not None:
        out["log10_cell_grad_norm"] = [_finite(float(v)) for v in res.log10_cell_grad_norm]
    if args.json:
        print(json.dumps(out))
        return 0
    th = "n/a" if res.theory_slope is None else f"{res.theory_slope:+.4f}"
    print(f"probe {res.config['cell']} {res.config['activation']} {res.config['init']} "
          f"gain {args.gain}: H={args.hidden}, T={args.seq_len}, B={args.batch}, "
          f"sigma_u={args.input_std}, sigma_b={args.bias_std}, seed {args.seed}")
    print(f"  decay rate (slope of ln||dL_T/dh_t|| per step, lags >= {res.fit_start}): "
          f"{res.decay_rate:+.4f}   mean-field 0.5 ln chi: {th}")
    if res.cell_decay_rate is not None:
        print(f"  cell-path decay rate: {res.cell_decay_rate:+.4f}")
    print(f"  lambda_1: {res.lyapunov[0]:+.4f}   horizon (1e-6): "
          f"{'beyond T' if res.horizon is None else res.horizon}")
    lags = [k for k in (0, 10, 50, 100, 200, 500, 1000, 5000, 10000) if k < args.seq_len]
    print("  log10||dL_T/dh_t|| at lag " + ", ".join(
        f"{k}: {res.log10_grad_norm[k]:.2f}" for k in lags))
    return 0


def _progress_printer(stream, every_s: float = 1.0):
    """A train() progress callback: one line at most every ``every_s`` seconds,
    and the last update's; rewritten in place on a terminal."""
    tty = stream.isatty()
    last = [-math.inf]

    def show(p) -> None:
        now = time.perf_counter()
        if now - last[0] < every_s and p.step < p.steps:
            return
        last[0] = now
        line = (f"step {p.step}/{p.steps}  loss {p.loss:.4g}  clipped "
                f"{100 * p.clipped_fraction:.0f}%  elapsed {p.elapsed_s:.0f} s  "
                f"ETA {p.eta_s:.0f} s")
        if tty:  # rewrite the line in place; a newline after the last update
            line = "\r" + line + ("  \n" if p.step == p.steps else "  ")
        else:
            line += "\n"
        stream.write(line)
        stream.flush()

    return show


def _cmd_train(args: argparse.Namespace) -> int:
    from .resources import check_fits, physical_memory_mb
    from .results import train_tables, write_run
    from .train import TrainConfig, train

    cfg = TrainConfig(task=args.task, seq_len=args.seq_len, cell=args.cell,
                      activation=args.activation, init=args.init, gain=args.gain,
                      clip=args.clip, clip_threshold=args.clip_threshold,
                      optimizer=args.optimizer, lr=args.lr, hidden=args.hidden,
                      batch=args.batch, steps=args.steps, seed=args.seed,
                      eval_every=args.eval_every, ragged=args.ragged, dtype=args.dtype)
    check_fits("train", cfg.as_dict(), physical_memory_mb())
    show = sys.stderr.isatty() if args.progress is None else args.progress
    res = train(cfg, _progress_printer(sys.stderr) if show else None)
    tables = train_tables(res)
    if args.out:
        write_run(args.out, tables)
    out = {
        "run_id": tables["runs"]["run_id"].iloc[0],
        "config": cfg.as_dict(),
        "status": res.status,
        "diverged_at": res.diverged_at,
        "cause": res.cause,
        "final_loss": _finite(res.final_metric),
        "baseline": res.baseline,
        "success": res.success,
        "clipped_fraction": res.clipped_fraction,
        "steps": len(res.records["step"]),
        "decay_rate_init": _finite(res.decay_rate_init),
        "lyapunov_init": _finite(res.lyapunov_init),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"train {cfg.task} T={cfg.seq_len} {cfg.cell} {cfg.activation} {cfg.init} "
          f"gain {cfg.gain} clip {cfg.clip} {cfg.optimizer} lr {cfg.lr}: {res.status}"
          + (f" at step {res.diverged_at} ({res.cause})" if res.diverged_at else ""))
    print(f"  held-out metric {res.final_metric:.4g} (baseline {res.baseline:.4g}), "
          f"success {res.success}, clipped {100 * res.clipped_fraction:.0f}% of "
          f"{out['steps']} updates")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import decay_table, format_table
    from .warmup import warmup

    if args.warmup:
        t0 = time.perf_counter()
        warmup()
        print(f"gradpath: every kernel loaded or compiled in {time.perf_counter() - t0:.1f} s")
        return 0
    rows = decay_table(args.hidden, args.seq_len, args.batch, args.gain, args.seed)
    print(f"Gradient norm ||dL/dh_t|| at initialisation, mean over {args.batch} sequences of "
          f"the adding problem\n(H={args.hidden}, T={args.seq_len}, gain {args.gain}, "
          f"seed {args.seed}, MSE scored at the last step; lag k is t = T-1-k)\n")
    print(format_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gradpath`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"demo": _cmd_demo, "probe": _cmd_probe, "train": _cmd_train}[args.command](args)
    except ValueError as exc:  # bad values caught by the library: one line, status 2
        sys.stderr.write(f"gradpath {args.command}: error: {exc}\n")
        return 2
    except BrokenPipeError:  # `gradpath probe --json | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

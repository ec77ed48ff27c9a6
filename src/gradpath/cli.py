"""The ``gradpath`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import TYPE_CHECKING

from . import __version__, vocab
from .checks import integer, number

if TYPE_CHECKING:  # imported where used: `gradpath --help` loads no kernels
    from .probe import ProbeConfig
    from .train import TrainConfig

# The command line's defaults: one table per sub-command, the one place each
# flag takes its default (and its help the value) from; tests/test_cli.py holds
# each table to what it stands for. Not the config dataclasses' defaults
# (ProbeConfig, TrainConfig: the library's, e.g. float64 training, on which
# library callers' numbers and run ids rest), nor read from configs/schema.yaml
# (not installed with the package; its lists of models, inits and lengths do
# not pick one run).

#: The defaults of ``gradpath demo``: :func:`gradpath.demo.decay_table`'s.
DEMO_DEFAULTS: dict = dict(hidden=128, seq_len=101, batch=32, gain=1.0, seed=0)
#: The defaults of ``gradpath probe``: the default study's probe settings
#: (configs/default.yaml), so that a probe with the defaults is one of the
#: study's (the same run id). tests/test_cli.py holds them to the study.
PROBE_DEFAULTS: dict = dict(cell="rnn", activation="tanh", init="gaussian", gain=1.0,
                            hidden=512, seq_len=200, batch=4, input_std=1.0, bias_std=0.1,
                            burn_in=100, lyapunov_k=8, seed=0)
#: The defaults of ``gradpath train``: the default study's training settings
#: (its tanh RNN block at T = 50, and the schema's block defaults), except the
#: learning rate, which the study selects by a sweep (:data:`TRAIN_NOT_STUDY`).
TRAIN_DEFAULTS: dict = dict(task="adding", cell="rnn", activation="tanh", init="gaussian",
                            gain=1.0, hidden=64, seq_len=50, batch=32, clip="norm",
                            clip_threshold=1.0, optimizer="adam", lr=1e-3, steps=1000,
                            eval_every=250, dtype="float32", seed=0)
#: What a ``gradpath train`` run with the defaults does not share with the
#: study's runs (said in ``--help``).
TRAIN_NOT_STUDY: str = ("the default study selects the learning rate of each configuration "
                        "by a sweep (its lrs, around --lr's default) on other seeds")


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


def _network_flags(p: argparse.ArgumentParser, d: dict, shown: str) -> None:
    """The flags ``probe`` and ``train`` share, with the defaults ``d``;
    ``shown`` is what ``--progress`` shows besides the ETA."""
    p.add_argument("--cell", choices=vocab.CELLS, default=d["cell"],
                   help=f"recurrent cell (default: {d['cell']})")
    p.add_argument("--activation", choices=vocab.ACTIVATIONS, default=d["activation"],
                   help="activation of the cells that have one "
                        f"({', '.join(vocab.CELLS_WITH_ACTIVATION)}); ignored by the gated "
                        f"cells (default: {d['activation']})")
    p.add_argument("--init", choices=vocab.INITS, default=d["init"],
                   help=f"recurrent-weight initialisation (default: {d['init']})")
    p.add_argument("--gain", type=_nonneg_float, default=d["gain"],
                   help="recurrent gain: gain*I, N(0, gain^2/H) or gain*Q "
                        f"(default: {d['gain']})")
    p.add_argument("--hidden", type=_positive_int, default=d["hidden"],
                   help=f"hidden size H (default: {d['hidden']})")
    p.add_argument("--seq-len", type=_positive_int, default=d["seq_len"],
                   help=f"sequence length T (default: {d['seq_len']})")
    p.add_argument("--batch", type=_positive_int, default=d["batch"],
                   help=f"batch size B (default: {d['batch']})")
    p.add_argument("--seed", type=_nonneg_int, default=d["seed"],
                   help=f"seed (default: {d['seed']})")
    p.add_argument("--out", metavar="DIR",
                   help="write the run's tables (Parquet) and JSON summary to DIR (checked "
                        "before the run; if writing fails at the end, they go to a "
                        "temporary folder named on stderr, exit status 1; needs the study extra: "
                        "pip install 'gradpath[study]')")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"print {shown} and ETA on stderr while running (default: when "
                        "stderr is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    p = _Parser(prog="gradpath", description="Gradient pathologies of RNNs, measured.")
    p.add_argument("--version", action="version", version=f"gradpath {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="print gradient norms by lag at initialisation",
                       description="Gradient norm ||dL/dh_t|| at lags 0, 10, 50, 100 for tanh "
                       "and ReLU RNNs under identity, gaussian and orthogonal initialisation, "
                       "reading adding-problem inputs, at initialisation.")
    dd = DEMO_DEFAULTS
    d.add_argument("--hidden", type=_positive_int, default=dd["hidden"],
                   help=f"hidden size H (default: {dd['hidden']})")
    d.add_argument("--seq-len", type=_positive_int, default=dd["seq_len"],
                   help=f"sequence length T, > 100 (default: {dd['seq_len']})")
    d.add_argument("--batch", type=_positive_int, default=dd["batch"],
                   help=f"batch size B (default: {dd['batch']})")
    d.add_argument("--gain", type=_nonneg_float, default=dd["gain"],
                   help=f"recurrent gain (default: {dd['gain']})")
    d.add_argument("--seed", type=int, default=dd["seed"],
                   help=f"seed of weights and inputs (default: {dd['seed']})")
    d.add_argument("--warmup", action="store_true",
                   help="only load (or compile) every kernel and exit")

    dp = PROBE_DEFAULTS
    pr = sub.add_parser(
        "probe", help="measure the gradient-decay curve of a network at initialisation",
        description="Drive a network with Gaussian inputs, propagate a random unit adjoint "
        "back from the last step with per-step renormalisation, and report the decay "
        "curve log10||dL_T/dh_t|| by lag, its fitted slope, the mean-field prediction, the "
        "top Lyapunov exponent and the gradient horizon. The defaults are the default "
        "study's settings (configs/default.yaml): with them, the probe is one of its runs.")
    _network_flags(pr, dp, "the step of the Lyapunov pass")
    pr.add_argument("--input-std", type=_nonneg_float, default=dp["input_std"],
                    help="std of each unit's input contribution sigma_u "
                         f"(default: {dp['input_std']})")
    pr.add_argument("--bias-std", type=_nonneg_float, default=dp["bias_std"],
                    help=f"std of the per-unit bias sigma_b (default: {dp['bias_std']})")
    pr.add_argument("--burn-in", type=_nonneg_int, default=dp["burn_in"],
                    help=f"steps run before the measured window (default: {dp['burn_in']})")
    pr.add_argument("--lyapunov-k", type=_positive_int, default=dp["lyapunov_k"],
                    help=f"number of Lyapunov exponents (default: {dp['lyapunov_k']})")

    dt = TRAIN_DEFAULTS
    tr = sub.add_parser(
        "train", help="train on a long-memory task with optional gradient clipping",
        description="Train one configuration; a non-finite loss or gradient ends the run "
        "with status 'diverged' (exit status 0). final_loss is the held-out task metric "
        "(MSE for adding and sine, nats per step for copy), comparable to baseline. The "
        "defaults are the default study's settings (configs/default.yaml) for the tanh RNN "
        f"at T = {dt['seq_len']}, but {TRAIN_NOT_STUDY}.")
    tr.add_argument("--task", choices=vocab.TASKS, default=dt["task"],
                    help=f"task (default: {dt['task']})")
    _network_flags(tr, dt, "step, loss, clipped share")
    tr.add_argument("--clip", choices=vocab.CLIPS, default=dt["clip"],
                    help=f"gradient clipping (default: {dt['clip']})")
    tr.add_argument("--clip-threshold", type=_positive_float, default=dt["clip_threshold"],
                    help="theta for norm clipping, bound for value clipping "
                         f"(default: {dt['clip_threshold']})")
    tr.add_argument("--optimizer", choices=vocab.OPTIMIZERS, default=dt["optimizer"],
                    help=f"optimiser (default: {dt['optimizer']})")
    tr.add_argument("--lr", type=_positive_float, default=dt["lr"],
                    help=f"learning rate (default: {dt['lr']:g})")
    tr.add_argument("--steps", type=_positive_int, default=dt["steps"],
                    help=f"number of updates (default: {dt['steps']})")
    tr.add_argument("--eval-every", type=_positive_int, default=dt["eval_every"],
                    help=f"updates between held-out evaluations (default: {dt['eval_every']})")
    tr.add_argument("--ragged", action="store_true", help="variable-length sequences")
    tr.add_argument("--dtype", choices=vocab.DTYPES, default=dt["dtype"],
                    help=f"precision of parameters, data and kernels (default: {dt['dtype']})")
    return p


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _show_progress(args: argparse.Namespace):
    """The progress callback ``--progress`` asks for (by default: at a terminal), or None."""
    show = sys.stderr.isatty() if args.progress is None else args.progress
    return _progress_printer(sys.stderr) if show else None


def probe_config(args: argparse.Namespace) -> ProbeConfig:
    """The :class:`~gradpath.probe.ProbeConfig` of parsed ``probe`` arguments."""
    from .probe import ProbeConfig

    return ProbeConfig(cell=args.cell, activation=args.activation, init=args.init,
                       gain=args.gain, hidden=args.hidden, seq_len=args.seq_len,
                       batch=args.batch, input_std=args.input_std, bias_std=args.bias_std,
                       seeds=(args.seed,), burn_in=args.burn_in, lyapunov_k=args.lyapunov_k)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`~gradpath.train.TrainConfig` of parsed ``train`` arguments."""
    from .train import TrainConfig

    return TrainConfig(task=args.task, seq_len=args.seq_len, cell=args.cell,
                       activation=args.activation, init=args.init, gain=args.gain,
                       clip=args.clip, clip_threshold=args.clip_threshold,
                       optimizer=args.optimizer, lr=args.lr, hidden=args.hidden,
                       batch=args.batch, steps=args.steps, seed=args.seed,
                       eval_every=args.eval_every, ragged=args.ragged, dtype=args.dtype)


def _check_out(out: str | None) -> None:
    """Refuse an ``--out`` folder that cannot take the run's files, before any
    work: an existing file, or a folder that cannot be created or written."""
    if not out:
        return
    import tempfile
    from pathlib import Path

    from .extras import STUDY_INSTALL, missing

    if lacking := missing("pandas", "pyarrow.parquet"):
        raise ValueError(f"--out writes the run's tables as Parquet, which needs "
                         f"{' and '.join(lacking)} (the study extra): {STUDY_INSTALL}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out: {out} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gradpath-write-check-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out: cannot write run files to {out} "
                         f"({exc.strerror or exc})") from exc


def _write_out(out: str | None, tables: dict) -> bool:
    """Write the run's files to ``--out``; if that fails after the run (the
    folder vanished, the disk filled), write them to a fresh temporary folder
    instead and say where on stderr. Returns whether ``--out`` got them."""
    if not out:
        return True
    import tempfile

    from .results import write_run

    try:
        write_run(out, tables)
        return True
    except OSError as exc:
        why = f"gradpath: error: could not write the run to {out} ({exc.strerror or exc})"
    try:
        fallback = tempfile.mkdtemp(prefix="gradpath-run-")
        write_run(fallback, tables)
        sys.stderr.write(f"{why}; its files are in {fallback}\n")
    except OSError as exc:  # the result is still printed
        sys.stderr.write(f"{why}, nor to a temporary folder ({exc.strerror or exc})\n")
    return False


def _cmd_probe(args: argparse.Namespace) -> int:
    from .probe import probe
    from .resources import check_fits, physical_memory_mb
    from .results import probe_tables

    cfg = probe_config(args)
    _check_out(args.out)
    check_fits("probe", cfg.as_dict(), physical_memory_mb())
    t0 = time.perf_counter()
    res = probe(cfg, progress=_show_progress(args))
    elapsed = time.perf_counter() - t0
    # the tables (pandas) only for --out: without it the plain install suffices
    written = not args.out or _write_out(args.out, probe_tables(res, elapsed))
    out = {
        "run_id": cfg.run_id,
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
        return 0 if written else 1
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
    return 0 if written else 1


def _progress_printer(stream, every_s: float = 1.0):
    """A train() or probe() progress callback: one line at most every
    ``every_s`` seconds, and the last step's; rewritten in place on a
    terminal. Loss and clipped share are shown where the progress has them
    (training)."""
    tty = stream.isatty()
    last = [-math.inf]

    def show(p) -> None:
        now = time.perf_counter()
        if now - last[0] < every_s and p.step < p.steps:
            return
        last[0] = now
        parts = [f"step {p.step}/{p.steps}"]
        if hasattr(p, "loss"):
            parts += [f"loss {p.loss:.4g}", f"clipped {100 * p.clipped_fraction:.0f}%"]
        line = "  ".join([*parts, f"elapsed {p.elapsed_s:.0f} s", f"ETA {p.eta_s:.0f} s"])
        if tty:  # rewrite the line in place; a newline after the last update
            line = "\r" + line + ("  \n" if p.step == p.steps else "  ")
        else:
            line += "\n"
        stream.write(line)
        stream.flush()

    return show


def _cmd_train(args: argparse.Namespace) -> int:
    from .resources import check_fits, physical_memory_mb
    from .results import train_tables
    from .train import train

    cfg = train_config(args)
    _check_out(args.out)
    check_fits("train", cfg.as_dict(), physical_memory_mb())
    rid = cfg.run_id()  # a reported run: the id of the same run in a study
    res = train(cfg, _show_progress(args))
    written = not args.out or _write_out(args.out, train_tables(res, rid))
    out = {
        "run_id": rid,
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
        return 0 if written else 1
    print(f"train {cfg.task} T={cfg.seq_len} {cfg.cell} {cfg.activation} {cfg.init} "
          f"gain {cfg.gain} clip {cfg.clip} {cfg.optimizer} lr {cfg.lr}: {res.status}"
          + (f" at step {res.diverged_at} ({res.cause})" if res.diverged_at else ""))
    print(f"  held-out metric {res.final_metric:.4g} (baseline {res.baseline:.4g}), "
          f"success {res.success}, clipped {100 * res.clipped_fraction:.0f}% of "
          f"{out['steps']} updates")
    return 0 if written else 1


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

"""The ``gradpath`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (naming the flag) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite non-negative number, got {text!r}")
    return v


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
    return p


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import decay_table, format_table
    from .warmup import warmup

    if args.warmup:
        warmup()
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
        return {"demo": _cmd_demo}[args.command](args)
    except ValueError as exc:  # bad values caught by the library: one line, status 2
        sys.stderr.write(f"gradpath {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Write the API reference in ``docs/api.md`` from the public API's docstrings.

The part of ``docs/api.md`` between ``<!-- api:start -->`` and
``<!-- api:end -->`` is generated, never edited by hand: every public name's
signature and docstring, in the order of :data:`SECTIONS`. ``make readme``
reruns this; ``tests/test_docs.py`` fails when the page is out of date.

    python scripts/api_docs.py [--check]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"

#: (module, heading, names); a model class lists its public methods too.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("gradpath", "Models (`gradpath`)", ("RNN", "LSTM", "GRU", "IndRNN", "ExpRNN")),
    ("gradpath.cells.base", "Every model's methods (`gradpath.models.Cell`)",
     ("Cell.init_params", "Cell.loss_and_grads", "Cell.forward", "Cell.project")),
    ("gradpath", "Results of a call", ("LossGrads", "Forward")),
    ("gradpath.models", "Building a model by name", ("make_model",)),
    ("gradpath.clipping", "Clipping (`gradpath`)",
     ("clip_by_norm", "clip_by_value", "global_norm", "ClipResult")),
    ("gradpath.probe", "Probes at initialisation (`gradpath.probe`)",
     ("probe", "ProbeConfig", "ProbeResult", "fit_decay_rate", "horizon")),
    ("gradpath.train", "Training (`gradpath.train`)", ("train", "TrainConfig", "TrainResult")),
    ("gradpath.tasks", "Tasks (`gradpath.tasks`)",
     ("make_task", "Task", "Adding", "AddingHS", "Copy", "Sine")),
    ("gradpath.theory", "Mean-field theory (`gradpath.theory`)",
     ("mean_field", "q_star", "theory_slope", "critical_gain", "MeanField")),
    ("gradpath", "Compilation", ("warmup",)),
)


def _lookup(module: str, name: str):
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _signature(name: str, obj) -> str:
    short = name.split(".")[-1]
    try:
        sig = inspect.signature(obj, eval_str=True)
    except (NameError, TypeError, ValueError):
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            return short
    # Defaults that print as reprs of objects carry memory addresses: drop them.
    text = re.sub(r" at 0x[0-9a-f]+", "", str(sig))
    text = text.replace("<object object>", "<unset>")  # a sentinel default
    return short + re.sub(r"<class '([\w.]+)'>", r"\1", text)


def entry(module: str, name: str) -> str:
    """One name's reference: its signature and its docstring, verbatim."""
    obj = _lookup(module, name)
    doc = inspect.getdoc(obj) or "(no docstring)"
    kind = "class" if inspect.isclass(obj) else "def"
    return "\n".join([f"### `{name}`", "", "```python", f"{kind} {_signature(name, obj)}",
                      "```", "", "```text", doc, "```", ""])


def reference() -> str:
    """The generated part of ``docs/api.md``."""
    out = []
    for module, heading, names in SECTIONS:
        out += [f"## {heading}", ""]
        out += [entry(module, name) for name in names]
    return "\n".join(out)


def render(text: str) -> str:
    """``text`` with its generated block replaced by the current reference."""
    pattern = re.compile(r"(<!-- api:start -->\n).*?(<!-- api:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE} has no <!-- api:start --> ... <!-- api:end --> markers")
    block = ("(generated from the docstrings by `python scripts/api_docs.py`; "
             "do not edit by hand)\n\n" + reference())
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if docs/api.md is out of date instead of writing it")
    args = ap.parse_args(argv)
    text = PAGE.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{PAGE.name} is out of date: run python scripts/api_docs.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One vocabulary (gradpath.vocab): configs/schema.yaml's enums, the command
line's choices and the library's names are the registry's, in its order, so
that a name added in one place only fails here."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import yaml

from gradpath import grid, models, tasks, vocab
from gradpath.cells import REGISTRY
from gradpath.cli import build_parser
from gradpath.train import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "configs" / "schema.yaml").read_text())

#: Every enum of the schema, by its path, and the names it must hold.
SCHEMA_ENUMS: dict[str, tuple[str, ...]] = {
    "definitions.model": tuple(vocab.MODELS),
    "definitions.init": vocab.INITS,
    "definitions.clip": vocab.CLIPS,
    "definitions.task": vocab.TASKS,
    "definitions.train_block.properties.optimizer": vocab.OPTIMIZERS,
    "definitions.train_block.properties.dtype": vocab.DTYPES,
    "properties.stale_runs": grid.STALE_POLICIES,  # the workflow's, not a run's
}
#: Every choices list of the command line, by option, and the names it must hold.
CLI_CHOICES: dict[str, tuple[str, ...]] = {
    "--cell": vocab.CELLS,
    "--activation": vocab.ACTIVATIONS,
    "--init": vocab.INITS,
    "--task": vocab.TASKS,
    "--clip": vocab.CLIPS,
    "--optimizer": vocab.OPTIMIZERS,
    "--dtype": vocab.DTYPES,
}


def schema_enums(node, path: str = "") -> dict[str, list]:
    """Every ``enum`` in a JSON-schema tree, by the dotted path of its node."""
    found = {}
    if isinstance(node, dict):
        if "enum" in node:
            found[path] = node["enum"]
        for key, child in node.items():
            found |= schema_enums(child, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found |= schema_enums(child, f"{path}[{i}]")
    return found


def cli_choices(parser: argparse.ArgumentParser, command: str = "gradpath"
                ) -> dict[tuple[str, str], list]:
    """Every option with choices, by (sub-command, option), walking the sub-commands."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= cli_choices(sub, name)
        elif action.choices is not None:
            found[command, max(action.option_strings, key=len)] = list(action.choices)
    return found


# -- configs/schema.yaml ------------------------------------------------------------------
def test_every_schema_enum_is_known_here():
    assert set(schema_enums(SCHEMA)) == set(SCHEMA_ENUMS)


@pytest.mark.parametrize("path", sorted(SCHEMA_ENUMS))
def test_schema_enum_is_the_vocabulary(path):
    assert schema_enums(SCHEMA)[path] == list(SCHEMA_ENUMS[path])


def test_schema_default_names_are_the_vocabulary():
    """Defaults that list names use the vocabulary's names, in its order: every
    init, and models of the vocabulary (a cell added later joins the default
    study only when the study says so)."""
    block = SCHEMA["definitions"]["train_block"]["properties"]
    probe = SCHEMA["properties"]["probe"]["properties"]
    for section in (block, probe):
        assert section["inits"]["default"] == list(vocab.INITS)
        chosen = section["models"]["default"]
        assert chosen == [m for m in vocab.MODELS if m in chosen], chosen
    assert block["clips"]["default"] == list(vocab.CLIPS)
    assert set(block["tasks"]["default"]) <= set(vocab.TASKS)


# -- the command line ---------------------------------------------------------------------
def test_every_cli_choices_list_is_known_here():
    found = cli_choices(build_parser())
    assert {"probe", "train"} <= {cmd for cmd, _ in found}
    assert {opt for _, opt in found} == set(CLI_CHOICES)


@pytest.mark.parametrize("command, option", sorted(cli_choices(build_parser())))
def test_cli_choices_are_the_vocabulary(command, option):
    assert cli_choices(build_parser())[command, option] == list(CLI_CHOICES[option])


def test_the_walks_see_a_name_added_in_one_place_only(monkeypatch):
    """The checks above fail when the schema or the CLI alone gains a name."""
    schema = yaml.safe_load((ROOT / "configs" / "schema.yaml").read_text())
    schema["definitions"]["model"]["enum"].append("rnn-sigmoid")
    assert schema_enums(schema)["definitions.model"] != list(SCHEMA_ENUMS["definitions.model"])
    monkeypatch.setattr(vocab, "TASKS", (*vocab.TASKS, "parity"))
    found = cli_choices(build_parser())
    assert found["train", "--task"] != list(CLI_CHOICES["--task"])


# -- the library ----------------------------------------------------------------------------
def test_models_are_made_of_the_vocabulary():
    for label, m in vocab.MODELS.items():
        cls = REGISTRY[m.cell]
        assert m.label == label and m.cell in vocab.CELLS
        assert m.activation in (cls.activations or (cls.fixed_activation,))
        assert vocab.model_of(m.cell, m.activation) is m
    assert set(vocab.CELLS) == {m.cell for m in vocab.MODELS.values()}  # every cell has a model
    assert set(vocab.CELLS_WITH_ACTIVATION) <= set(vocab.CELLS)
    with pytest.raises(ValueError, match="rnn-tanh"):
        vocab.model_of("rnn", "sigmoid")


def test_the_library_speaks_the_vocabulary():
    assert tuple(models.ACTIVATIONS) == vocab.ACTIVATIONS
    assert models.INITS == vocab.INITS
    assert tuple(models.LOSSES) == vocab.LOSSES and tuple(models.SCORES) == vocab.SCORES
    assert tasks.TASKS == vocab.TASKS
    assert tuple(models.CELL_TYPES) == vocab.CELLS
    for cell, cls in models.CELL_TYPES.items():
        assert cls.gates == vocab.GATE_BLOCKS[cell], cell
        m = models.make_model(cell, 2, 3, 1)
        if "W_hh" in m.param_shapes():
            assert m.param_shapes()["W_hh"] == (vocab.GATE_BLOCKS[cell] * 3, 3)
    for name in vocab.TASKS:
        assert tasks.make_task(name, 24).name == name
    params = {"w": np.zeros(2)}
    for name in vocab.OPTIMIZERS:
        make_optimizer(name, params, 0.1)


def test_the_figures_take_orders_and_titles_from_the_vocabulary():
    import sys

    sys.path.insert(0, str(ROOT / "analysis"))
    try:
        import plots
    finally:
        sys.path.pop(0)
    assert plots.MODEL_ORDER == list(vocab.MODELS)
    assert plots.MODEL_LABEL == {k: m.title for k, m in vocab.MODELS.items()}
    assert plots.INIT_ORDER == list(vocab.INITS) and plots.CLIP_ORDER == list(vocab.CLIPS)
    for palette, order in ((plots.MODEL_PALETTE, plots.MODEL_ORDER),
                           (plots.INIT_PALETTE, plots.INIT_ORDER),
                           (plots.CLIP_PALETTE, plots.CLIP_ORDER)):
        assert list(palette) == order

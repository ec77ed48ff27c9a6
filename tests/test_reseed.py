"""scripts/reseed.py: the seed-robustness check runs the same study with other
training seeds and nothing else changed."""

import importlib.util
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from gradpath import grid

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reseed", ROOT / "scripts" / "reseed.py")
reseed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reseed)


def test_reseeding_changes_the_reported_seeds_and_nothing_else():
    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    out = reseed.reseed(cfg, [11, 12, 13])
    for c in (cfg, out):  # (fills in the schema's defaults)
        validate(c, str(ROOT / "configs" / "schema.yaml"))
    assert out["name"] == "default-seeds-11-12-13" and out["probe"] == cfg["probe"]
    for a, b in zip(cfg["train"], out["train"], strict=True):
        assert b["seeds"] == [11, 12, 13]
        assert {k: v for k, v in a.items() if k != "seeds"} == {
            k: v for k, v in b.items() if k != "seeds"}
    before = {r.config.get("selection") for r in grid.train_runs(cfg["train"])}
    after = {r.config.get("selection") for r in grid.train_runs(out["train"])}
    assert before == after  # the same sweeps choose the rates


def test_a_selection_seed_cannot_become_a_reported_seed():
    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    with pytest.raises(ValueError, match="selection seeds"):
        reseed.reseed(cfg, [1000])

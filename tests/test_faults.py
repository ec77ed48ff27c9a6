"""Bad studies refused with a clear error before any work (issue 17): a study
named ``..``, a config with a duplicate key, YTE templating, ``lr`` beside
``lrs``. The faults injected into a running or finished study (a truncated run
file, a deleted table, a batch killed mid-write, two instances at once) are in
tests/test_smoke_study.py, which holds every test of the session's smoke study.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from studies import ROOT, snakemake

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_a_study_named_dotdot_is_refused_before_any_work(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    for name in ("..", ".", ".hidden"):
        work = tmp_path / "w" / "inner"
        work.mkdir(parents=True, exist_ok=True)
        path = _config(tmp_path, yaml.safe_dump({**cfg, "name": name}))
        out = snakemake(work, "-n", config=path, check=False)
        assert out.returncode != 0
        assert f"'{name}' does not match" in out.stdout + out.stderr, out.stdout[-2000:]
        assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["inner"]
        assert not (work / "results").exists() and not (work / "batches").exists()


def test_a_config_with_a_duplicate_key_is_refused(tmp_path):
    text = (ROOT / "configs" / "smoke.yaml").read_text()
    text = text.replace("    hidden: 12\n", "    hidden: 12\n    hidden: 24\n", 1)
    out = snakemake(tmp_path / "w", "-n", config=_config(tmp_path, text), check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "key 'hidden' is given twice" in text and "study.yaml, line" in text
    assert not (tmp_path / "w" / "results").exists()


def test_a_config_asking_for_yte_templating_is_refused(tmp_path):
    text = "__use_yte__: true\n" + (ROOT / "configs" / "smoke.yaml").read_text()
    out = snakemake(tmp_path / "w", "-n", config=_config(tmp_path, text), check=False)
    assert out.returncode != 0 and "__use_yte__ is not allowed" in out.stdout + out.stderr


def test_lr_beside_lrs_fails_the_dry_run_naming_the_block(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg["train"][0]["lr"] = 0.001
    out = snakemake(tmp_path / "w", "-n", config=_config(tmp_path, yaml.safe_dump(cfg)),
                    check=False)
    assert out.returncode != 0
    assert "train[0] (remedies): gives both lr" in out.stdout + out.stderr

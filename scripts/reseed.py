"""Write a study's config with other training seeds, for the seed-robustness
check: the same study, every training block's reported ``seeds`` replaced,
everything else (the sweeps' selection seeds included) unchanged, under the
name ``<name>-seeds-<s1>-<s2>...`` so its results go to a folder of their own.

    python scripts/reseed.py configs/default.yaml --seeds 11 12 13 \\
        --out results/default-seeds-11-12-13.yaml

``make reseed`` writes it and runs it (SEEDS="11 12 13" by default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def reseed(config: dict, seeds: list[int]) -> dict:
    """The config with every training block's reported seeds replaced by ``seeds``."""
    out = dict(config)
    blocks = config["train"] if isinstance(config["train"], list) else [config["train"]]
    for b in blocks:
        clash = set(seeds) & set(b.get("selection_seeds", []))
        if clash:
            raise ValueError(f"seeds {sorted(clash)} are selection seeds of block "
                             f"{b.get('name', '?')!r}: choose others")
    out["train"] = [{**b, "seeds": list(seeds)} for b in blocks]
    out["name"] = f"{config['name']}-seeds-" + "-".join(str(s) for s in seeds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = reseed(yaml.safe_load(args.config.read_text()), args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# {args.config} with training seeds {args.seeds} "
                        "(scripts/reseed.py)\n" + yaml.safe_dump(cfg, sort_keys=False))
    print(cfg["name"])


if __name__ == "__main__":
    main()

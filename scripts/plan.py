"""The paper calculation of a study before it runs: runs, jobs, submissions,
CPU-hours, peak memory per job, and the expected wall time on N nodes.

    python scripts/plan.py --configfile configs/full.yaml --nodes 4 --cores 32
    python scripts/plan.py --configfile configs/smoke.yaml --nodes 1 --cores 2 \\
        --runs-dir results/smoke/runs   # and against a finished run's wall times

Everything comes from the workflow's own pieces: the config is validated
against configs/schema.yaml, expanded into runs and batches by gradpath.grid,
and costed by gradpath.resources (the same estimates that size the SLURM
requests). Submissions follow profiles/slurm's group-components (batches
packed per submission).

The wall time is a critical-path model of the three stages (free batches and
sweeps, the rate selection, the reported runs of the sweeps): each stage takes
its work spread over the cores, but never less than its longest job, plus a
fixed cost per stage for queueing, Snakemake's start-up inside the job and the
plugin's status polling (``--overhead``; about 35 s per stage was measured on
a local one-node SLURM, see the README).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from gradpath import grid
from gradpath.resources import estimate

ROOT = Path(__file__).resolve().parents[1]


def group_components(profile: Path) -> dict[str, int]:
    """The profile's group-components, as {group: batches per submission}."""
    cfg = yaml.safe_load(profile.read_text()) or {}
    return {k: int(v) for k, v in (item.split("=") for item in cfg.get("group-components", []))}


def plan(config: dict, nodes: int, cores: int, per_submission: dict[str, int],
         overhead_s: float) -> dict:
    """Runs, jobs, submissions, CPU-hours and wall time of a validated config."""
    probes, trains = grid.probe_runs(config["probe"]), grid.train_runs(config["train"])
    stages = grid.stage_batches(probes + trains, config["batch_seconds"])
    slots = nodes * cores
    out = {"runs": len(probes) + len(trains), "probe_runs": len(probes),
           "train_runs": len(trains), "stages": {}}
    wall = overhead_s  # the warm-up job
    cpu_s = 0.0
    submissions = 1 + (1 if stages["selected"] else 0)  # warm-up, rate selection
    peak_mb = 0.0
    for name, batches in stages.items():
        seconds = [sum(estimate(r.kind, r.config).seconds for r in runs)
                   for runs in batches.values()]
        mem = [grid.batch_resources(runs)["mem_mb"] for runs in batches.values()]
        k = per_submission.get(name, 1)
        subs = math.ceil(len(batches) / k)
        stage_wall = (max(sum(seconds) / slots, max(seconds)) + overhead_s) if seconds else 0.0
        out["stages"][name] = {"batches": len(batches), "submissions": subs,
                               "cpu_hours": sum(seconds) / 3600,
                               "longest_batch_min": max(seconds, default=0) / 60,
                               "largest_batch_mem_mb": max(mem, default=0),
                               "wall_min": stage_wall / 60}
        wall += stage_wall + (overhead_s if name == "runs" and stages["selected"] else 0)
        cpu_s += sum(seconds)
        submissions += subs
        peak_mb = max(peak_mb, max(mem, default=0))
    out.update(jobs=1 + sum(len(b) for b in stages.values()) + (1 if stages["selected"] else 0),
               submissions=submissions, cpu_hours=cpu_s / 3600, peak_job_mem_mb=peak_mb,
               nodes=nodes, cores_per_node=cores, wall_hours=wall / 3600)
    return out


def measured(runs_dir: Path, runs: list[grid.Run]) -> dict:
    """Estimated against measured run seconds, for the runs finished in runs_dir."""
    pairs = []
    for r in runs:
        path = runs_dir / f"{r.run_id}.json"
        if path.exists():
            pairs.append((estimate(r.kind, r.config).seconds,
                          float(json.loads(path.read_text())["wall_time_s"])))
    ratios = sorted(e / g for e, g in pairs if g > 0)
    if not ratios:
        return {}
    est, got = (sum(p) for p in zip(*pairs, strict=True))
    return {"runs_measured": len(pairs), "estimated_cpu_s": est, "measured_cpu_s": got,
            "estimate_over_measured_median": ratios[len(ratios) // 2],
            "estimate_over_measured_min": ratios[0]}


def main(argv: list[str] | None = None) -> int:
    """Print the plan of ``--configfile`` (text, or JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", required=True, type=Path)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--cores", type=int, default=32, help="cores per node (default 32)")
    ap.add_argument("--profile", type=Path, default=ROOT / "profiles" / "slurm")
    ap.add_argument("--overhead", type=float, default=35.0,
                    help="seconds per stage for queueing, job start-up and polling (35)")
    ap.add_argument("--runs-dir", type=Path, help="compare with the finished runs here")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    config = yaml.safe_load(args.configfile.read_text())
    validate(config, str(ROOT / "configs" / "schema.yaml"))
    out = plan(config, args.nodes, args.cores, group_components(args.profile / "config.yaml"),
               args.overhead)
    if args.runs_dir:
        out["measured"] = measured(args.runs_dir, grid.probe_runs(config["probe"])
                                   + grid.train_runs(config["train"]))
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{args.configfile}: {out['runs']} runs ({out['probe_runs']} probes, "
          f"{out['train_runs']} training), {out['jobs']} jobs, {out['submissions']} SLURM "
          f"submissions")
    for name, s in out["stages"].items():
        print(f"  {name:9s} {s['batches']:5d} batches -> {s['submissions']:5d} submissions, "
              f"{s['cpu_hours']:8.2f} CPU-h, longest batch {s['longest_batch_min']:.1f} min, "
              f"largest {s['largest_batch_mem_mb']} MB")
    print(f"  total {out['cpu_hours']:.2f} CPU-hours; on {args.nodes} node(s) x {args.cores} "
          f"cores: about {out['wall_hours'] * 60:.1f} min wall time")
    if out.get("measured"):
        m = out["measured"]
        print(f"  measured: {m['runs_measured']} runs took {m['measured_cpu_s']:.0f} CPU-s, "
              f"estimated {m['estimated_cpu_s']:.0f} (median estimate/measured "
              f"{m['estimate_over_measured_median']:.2f}, lowest "
              f"{m['estimate_over_measured_min']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

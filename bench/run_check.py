"""Run the benchmark suite, then the regression check on its results.

The one-command entry point (``make bench`` calls it)::

    python bench/run_check.py                  # sizes from $GRADPATH_BENCH_SIZES, else all
    python bench/run_check.py --sizes ci       # the fast subset (small, medium)
    python bench/run_check.py --tolerance 0.3  # further options go to check_regression.py

Entries that fail are measured ``--retries`` more times (default 2) and the
median of their attempts counts: on a shared machine another process can make
one benchmark many times slower (or its twin, flattering the kernel), but
rarely two attempts out of three, while a real regression shows in every
attempt. Entries failing only an absolute target that their baseline misses
too (a known shortfall) are not re-measured. JSON goes to bench/results/
(git-ignored).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import check_regression
from bench_cases import CACHE_LOAD_KEY, SIZES_ENV

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def pytest_cmd(json_path: Path, sizes: str, tests: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
            f"--bench-sizes={sizes}", f"--benchmark-json={json_path}",
            "--benchmark-columns=min,median,iqr,rounds", "--benchmark-sort=name"]


def node_ids(keys: list[str]) -> list[str]:
    """pytest node ids of the kernel and twin benchmarks of the given entries."""
    ids = []
    for key in keys:
        if key == CACHE_LOAD_KEY:
            ids.append("bench/test_cache_load.py::test_cache_load")
        else:
            ids += [f"bench/test_kernels.py::test_loss_and_grads[{key}-{impl}]"
                    for impl in ("kernel", "twin")]
    return ids


def run(cmd: list[str]) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other options are passed to check_regression.py (see its --help).",
    )
    ap.add_argument("--sizes", default=os.environ.get(SIZES_ENV) or "all",
                    help=f"benchmark sizes: names or subsets, e.g. 'ci', 'small,large', 'all' "
                         f"(default: ${SIZES_ENV}, else all)")
    ap.add_argument("--retries", type=int, default=2,
                    help="re-measure failing entries this many more times; the median of the "
                         "attempts counts (default: 2)")
    ap.add_argument("--out", type=Path, default=BENCH / "results",
                    help="directory for the pytest-benchmark JSON (default: bench/results)")
    args, rest = ap.parse_known_args(argv)
    if "--update" in rest:
        args.retries = 0  # a baseline records one plain run of the suite
    args.out.mkdir(parents=True, exist_ok=True)

    jsons = [args.out / "bench.json"]
    rc = run(pytest_cmd(jsons[0], args.sizes, ["bench"]))
    if rc != 0:
        print(f"benchmark suite failed (pytest exit {rc}); no regression check", file=sys.stderr)
        return rc
    json_args = ["--json", str(jsons[0])]
    failing, known = check_regression.failing_entries([*json_args, *rest])
    if known:
        print(f"\nnot re-measured (their baseline misses the target too): {', '.join(known)}",
              flush=True)
    if not args.retries:
        failing = []
    if failing:
        print(f"\n{len(failing)} entr{'y' if len(failing) == 1 else 'ies'} failed: "
              f"{', '.join(failing)}\nre-measuring {args.retries} more time(s); the median of "
              "the attempts counts\n", flush=True)
    for attempt in range(1, args.retries + 1 if failing else 1):
        jsons.append(args.out / f"retry{attempt}.json")
        json_args += ["--json", str(jsons[-1])]
        rc = run(pytest_cmd(jsons[-1], "all", node_ids(failing)))
        if rc != 0:
            print(f"benchmark re-run failed (pytest exit {rc})", file=sys.stderr)
            return rc
    print()
    return check_regression.main([*json_args, *rest])


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark regression check: kernel speed-ups over the numpy twin vs a baseline.

Reads one or more pytest-benchmark JSON files (``pytest bench
--benchmark-json=FILE``), computes for every (cell, size, dtype) entry the
speed-up = twin time / kernel time, and compares it with the committed
baseline (``bench/baseline.json``) and with the absolute targets of the issue.
Exit status 0 when every check passes, 1 when any fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import sys
from pathlib import Path

from bench_cases import (
    CACHE_LOAD_KEY,
    CACHE_LOAD_NOISE_FACTOR,
    CACHE_LOAD_TARGET_S,
    CELLS,
    DTYPES,
    MIN_SPEEDUP,
    SIZES,
    SIZES_ENV,
    SLOWDOWN_ENV,
    SUBSETS,
    entry_key,
)

#: Default tolerance: fail when a speed-up drops below baseline x (1 - 0.35).
#: Chosen from measured run-to-run spread on a shared 2-core machine (see
#: bench/README.md): large enough for noise, small enough that a kernel made
#: 2x slower (speed-up x 0.5) always fails.
DEFAULT_TOLERANCE = 0.35

EPILOG = f"""\
checks, per (cell, size, dtype) entry (any FAIL makes the exit status 1):
  FAIL  regression: speed-up < baseline x (1 - tolerance)
  FAIL  target: speed-up < {MIN_SPEEDUP['small']:g} at small, < {MIN_SPEEDUP['medium']:g} at \
medium and large (absolute targets from
        the issue; not relaxed by the tolerance)
  WARN  drift: speed-up < baseline x (1 - tolerance/2)
  WARN  a measured entry has no baseline entry (add it with --update)
  SKIP  a baseline entry was not measured (subset run); FAIL with --require-all
  FAIL  cache-load: median fresh-process time > {CACHE_LOAD_TARGET_S} s x \
{CACHE_LOAD_NOISE_FACTOR} (noise factor)
  WARN  cache-load: median > {CACHE_LOAD_TARGET_S} s but within the noise factor

sizes and the fast CI subset:
  The suite runs every size by default. Choose sizes with the pytest option
  --bench-sizes or the environment variable {SIZES_ENV}: comma-separated
  names {', '.join(f'{k}={v}' for k, v in SIZES.items())},
  or subsets {', '.join(f'{k}=({",".join(v)})' for k, v in SUBSETS.items())}.
  'ci' skips the large size (the bulk of the run time); entries it does not
  measure are reported as SKIP. bench/run_check.py runs suite + check in one go.

proving the check bites:
  {SLOWDOWN_ENV}=N makes the kernel benchmark call the kernel N times per
  timed call (bench-side only; the library never reads it); --update refuses
  such runs.

examples:
  pytest bench --benchmark-json=bench/results/bench.json
  python bench/check_regression.py --json bench/results/bench.json
  {SIZES_ENV}=ci pytest bench --benchmark-json=bench/results/ci.json
  python bench/check_regression.py --json a.json --json b.json --update
      # new baseline: per-entry median speed-up of two runs
"""


def die(msg: str):
    """Bad input: message to stderr, exit status 2."""
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------
# reading pytest-benchmark JSON
# ---------------------------------------------------------------------------
def load_runs(paths: list[Path], stat: str) -> tuple[dict, dict, list[str]]:
    """Per-entry measurements from each JSON file.

    Returns ``(entries, cache, notes)``: ``entries[key]`` is a dict with the
    entry's description and lists ``kernel_s``, ``twin_s`` and ``speedup`` (one
    value per file that measured both); ``cache`` has ``median_s``, a list.
    """
    entries: dict[str, dict] = {}
    cache: dict[str, list] = {"median_s": []}
    notes: list[str] = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            die(f"cannot read benchmark JSON {path}: {exc}")
        per_file: dict[str, dict] = {}
        for bm in data.get("benchmarks", []):
            info = bm.get("extra_info", {})
            key = info.get("entry")
            if key == CACHE_LOAD_KEY:
                cache["median_s"].append(bm["stats"]["median"])
                continue
            if key is None or info.get("impl") not in ("kernel", "twin"):
                continue
            e = per_file.setdefault(key, {"info": info})
            e[info["impl"]] = bm["stats"][stat]
            if info["impl"] == "kernel" and info.get("slowdown", 1) != 1:
                e["slowdown"] = info["slowdown"]
        for key, e in per_file.items():
            if "kernel" not in e or "twin" not in e:
                notes.append(f"{path}: {key} lacks its {'twin' if 'kernel' in e else 'kernel'} "
                             "timing; ignored")
                continue
            agg = entries.setdefault(key, {"kernel_s": [], "twin_s": [], "speedup": [],
                                           "slowdown": 1})
            info = e["info"]
            agg.update({k: info[k] for k in ("cell", "B", "H", "D", "T", "dtype", "size")})
            agg["kernel_s"].append(e["kernel"])
            agg["twin_s"].append(e["twin"])
            agg["speedup"].append(e["twin"] / e["kernel"])
            agg["slowdown"] = max(agg["slowdown"], e.get("slowdown", 1))
    return entries, cache, notes


def summarise(entries: dict, cache: dict) -> dict:
    """Collapse several runs to one value per entry: the median over the runs
    (for the speed-up, the median of the per-run speed-ups)."""
    out = {}
    for key, e in entries.items():
        out[key] = {k: e[k] for k in ("cell", "size", "B", "H", "D", "T", "dtype")}
        out[key].update({
            "kernel_ms": statistics.median(e["kernel_s"]) * 1e3,
            "twin_ms": statistics.median(e["twin_s"]) * 1e3,
            "speedup": statistics.median(e["speedup"]),
            "runs": len(e["speedup"]),
            "slowdown": e["slowdown"],
        })
    if cache["median_s"]:
        out[CACHE_LOAD_KEY] = {"median_s": statistics.median(cache["median_s"]),
                               "runs": len(cache["median_s"])}
    return out


def ordered_keys() -> list[str]:
    return [entry_key(c, SIZES[s], d) for c in CELLS for s in SIZES for d in DTYPES]


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------
def check(measured: dict, baseline: dict, tolerance: float, require_all: bool) -> list[dict]:
    """One row per entry: measured values, baseline, status and reasons."""
    base = baseline.get("entries", {})
    rows = []
    keys = ordered_keys()
    keys += sorted(k for k in set(measured) | set(base) if k not in keys and k != CACHE_LOAD_KEY)
    for key in keys:
        m, b = measured.get(key), base.get(key)
        if m is None and b is None:
            continue
        row = {"key": key, "m": m, "b": b, "status": "OK", "why": []}
        if m is None:
            row["status"] = "FAIL" if require_all else "SKIP"
            row["why"].append((row["status"], "not measured in this run"))
            rows.append(row)
            continue
        s = m["speedup"]
        target = MIN_SPEEDUP.get(m["size"])
        fail, warn = [], []
        if target is not None and s < target:
            fail.append(f"target: speed-up {s:.2f} < {target:g}")
        if b is None:
            warn.append("no baseline entry (run with --update)")
        else:
            floor = b["speedup"] * (1.0 - tolerance)
            if s < floor:
                fail.append(f"regression: speed-up {s:.2f} < baseline {b['speedup']:.2f} x "
                            f"(1 - {tolerance:g}) = {floor:.2f}")
            elif s < b["speedup"] * (1.0 - tolerance / 2):
                warn.append(f"drift: speed-up {s:.2f} is {1 - s / b['speedup']:.0%} below "
                            f"baseline {b['speedup']:.2f} (fails at {tolerance:.0%})")
        row["status"] = "FAIL" if fail else ("WARN" if warn else "OK")
        row["why"] = [("FAIL", w) for w in fail] + [("WARN", w) for w in warn]
        rows.append(row)

    m, b = measured.get(CACHE_LOAD_KEY), base.get(CACHE_LOAD_KEY)
    if m is not None or b is not None:
        row = {"key": CACHE_LOAD_KEY, "m": m, "b": b, "status": "OK", "why": []}
        limit = CACHE_LOAD_TARGET_S * CACHE_LOAD_NOISE_FACTOR
        if m is None:
            row["status"] = "FAIL" if require_all else "SKIP"
            row["why"].append((row["status"], "not measured in this run"))
        elif m["median_s"] > limit:
            row["status"] = "FAIL"
            row["why"].append(("FAIL", f"target: median {m['median_s']:.2f} s > "
                               f"{CACHE_LOAD_TARGET_S} s x {CACHE_LOAD_NOISE_FACTOR} noise "
                               f"factor = {limit:.1f} s"))
        elif m["median_s"] > CACHE_LOAD_TARGET_S:
            row["status"] = "WARN"
            row["why"].append(("WARN", f"target: median {m['median_s']:.2f} s > "
                               f"{CACHE_LOAD_TARGET_S} s (fails above {limit:.1f} s)"))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------
def fmt_ms(v: float) -> str:
    return f"{v:.3g}" if v < 10 else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt_x(v: float) -> str:
    return f"{v:.1f}×" if v >= 10 else f"{v:.2f}×"


def print_check_table(rows: list[dict], tolerance: float) -> None:
    head = (f"{'entry':<28} {'kernel ms':>10} {'twin ms':>10} {'speed-up':>9} {'baseline':>9} "
            f"{'fail <':>7} {'target':>7}  status")
    print(head)
    print("-" * len(head))
    for r in rows:
        m, b = r["m"], r["b"]
        if r["key"] == CACHE_LOAD_KEY:
            meas = f"{m['median_s']:.3f} s" if m else "-"
            base = f"{b['median_s']:.3f} s" if b else "-"
            limit = f"{CACHE_LOAD_TARGET_S * CACHE_LOAD_NOISE_FACTOR:.1f} s"
            print(f"{'cache-load (median)':<28} {meas:>21} {'':>9} {base:>9} {limit:>7} "
                  f"{f'{CACHE_LOAD_TARGET_S} s':>7}  {r['status']}")
        else:
            km = fmt_ms(m["kernel_ms"]) if m else "-"
            tm = fmt_ms(m["twin_ms"]) if m else "-"
            sp = f"{m['speedup']:.2f}" if m else "-"
            bs = f"{b['speedup']:.2f}" if b else "-"
            fl = f"{b['speedup'] * (1 - tolerance):.2f}" if b else "-"
            size = (m or b)["size"]
            tg = f">={MIN_SPEEDUP[size]:g}" if size in MIN_SPEEDUP else "-"
            print(f"{r['key']:<28} {km:>10} {tm:>10} {sp:>9} {bs:>9} {fl:>7} {tg:>7}  "
                  f"{r['status']}")
        for level, why in r["why"]:
            print(f"    {level}: {why}")


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| cell | B | H | D | T | dtype | kernel ms | twin ms | speed-up | baseline | target |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|",
    ]
    cache_line = ""
    for r in rows:
        m, b = r["m"], r["b"]
        if m is None:
            continue
        if r["key"] == CACHE_LOAD_KEY:
            base = f" (baseline {b['median_s']:.2f} s)" if b else ""
            cache_line = (f"\nFresh process, kernels loaded from Numba's cache "
                          f"(`import gradpath; gradpath.warmup()`): median "
                          f"**{m['median_s']:.2f} s**{base}; target < {CACHE_LOAD_TARGET_S} s.")
            continue
        tg = f"≥ {MIN_SPEEDUP[m['size']]:g}" if m["size"] in MIN_SPEEDUP else ""
        bl = fmt_x(b["speedup"]) if b else "–"
        lines.append(
            f"| {m['cell'].upper() if m['cell'] == 'rnn' else 'LSTM'} | {m['B']} | {m['H']} | "
            f"{m['D']} | {m['T']} | {m['dtype']} | {fmt_ms(m['kernel_ms'])} | "
            f"{fmt_ms(m['twin_ms'])} | {fmt_x(m['speedup'])} | "
            f"{bl} | {tg} |")
    return "\n".join(lines) + "\n" + cache_line


# ---------------------------------------------------------------------------
# baseline
# ---------------------------------------------------------------------------
def read_baseline(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        die(f"baseline {path} is not valid JSON: {exc}")


def write_baseline(path: Path, measured: dict, old: dict, json_paths: list[Path],
                   stat: str) -> None:
    slowed = [k for k, v in measured.items() if v.get("slowdown", 1) != 1]
    if slowed:
        die(f"refusing --update: {SLOWDOWN_ENV} was active for {slowed}")
    entries = dict(old.get("entries", {}))
    for key, v in measured.items():
        if key == CACHE_LOAD_KEY:
            entries[key] = {"median_s": round(v["median_s"], 4)}
        else:
            entries[key] = {k: v[k] for k in ("cell", "size", "B", "H", "D", "T", "dtype")}
            entries[key].update({"kernel_ms": round(v["kernel_ms"], 4),
                                 "twin_ms": round(v["twin_ms"], 4),
                                 "speedup": round(v["speedup"], 3)})
    machine, commit = {}, {}
    try:
        data = json.loads(json_paths[0].read_text())
        mi = data.get("machine_info", {})
        machine = {"cpu": mi.get("cpu", {}).get("brand_raw"),
                   "cores": mi.get("cpu", {}).get("count"),
                   "python": mi.get("python_version")}
        commit = {"id": data.get("commit_info", {}).get("id"),
                  "dirty": data.get("commit_info", {}).get("dirty")}
    except (OSError, json.JSONDecodeError):
        pass
    out = {
        "description": ("Speed-up (numpy twin time / Numba kernel time, forward+backward, "
                        "mse, score='last') per (cell, B x H x D x T, dtype), and the median "
                        "fresh-process cache-load time. Written by bench/check_regression.py "
                        "--update; ratios, not absolute times, are compared."),
        "stat": stat,
        "updated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": max((v.get("runs", 1) for v in measured.values()), default=1),
        "machine": machine,
        "commit": commit,
        "entries": {k: entries[k] for k in sorted(entries, key=_sort_key)},
    }
    path.write_text(json.dumps(out, indent=2) + "\n")


def _sort_key(key: str) -> tuple:
    order = ordered_keys()
    return (order.index(key), "") if key in order else (len(order), key)


# ---------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="check_regression.py",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--json", dest="json_paths", type=Path, action="append", required=True,
                    metavar="FILE",
                    help="pytest-benchmark JSON (pytest bench --benchmark-json=FILE); repeat "
                         "to use the per-entry median over several runs")
    ap.add_argument("--baseline", type=Path, default=Path(__file__).with_name("baseline.json"),
                    metavar="FILE",
                    help="baseline JSON (default: bench/baseline.json)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="F",
                    help="fail when speed-up < baseline x (1 - F) (default: %(default)s)")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="per-benchmark statistic the speed-up is computed from "
                         "(default: %(default)s)")
    ap.add_argument("--update", action="store_true",
                    help="rewrite the baseline from the given JSON (entries not measured are "
                         "kept); the absolute targets are still checked")
    ap.add_argument("--require-all", action="store_true",
                    help="fail when a baseline entry was not measured (default: SKIP)")
    ap.add_argument("--markdown", type=Path, metavar="FILE",
                    help="also write the markdown results table to FILE")
    return ap


def failing_entries(argv: list[str]) -> tuple[list[str], list[str]]:
    """Entries that fail, for the given check_regression arguments (no output,
    baseline never written), split into ``(noise_suspects, known)``.

    ``known`` fail only a target that their baseline misses too: a recorded
    shortfall, which re-measuring will not change.
    """
    args = parser().parse_args(argv)
    entries, cache, _ = load_runs(args.json_paths, args.stat)
    measured = summarise(entries, cache)
    rows = check(measured, read_baseline(args.baseline), args.tolerance, args.require_all)
    suspects, known = [], []
    for r in rows:
        if r["status"] != "FAIL" or r["m"] is None:
            continue
        only_target = all(why.startswith("target") for lvl, why in r["why"] if lvl == "FAIL")
        b, size = r["b"], r["m"].get("size")
        if only_target and b is not None and size in MIN_SPEEDUP \
                and b["speedup"] < MIN_SPEEDUP[size]:
            known.append(r["key"])
        else:
            suspects.append(r["key"])
    return suspects, known


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if not 0.0 <= args.tolerance < 1.0:
        ap.error(f"--tolerance: expected 0 <= F < 1, got {args.tolerance}")

    entries, cache, notes = load_runs(args.json_paths, args.stat)
    measured = summarise(entries, cache)
    if not measured:
        print(f"error: no gradpath benchmarks found in {[str(p) for p in args.json_paths]}",
              file=sys.stderr)
        return 2
    baseline = read_baseline(args.baseline)
    if args.update:
        write_baseline(args.baseline, measured, baseline, args.json_paths, args.stat)
        print(f"baseline written: {args.baseline}\n")
        baseline = read_baseline(args.baseline)
    elif not baseline:
        print(f"warning: no baseline at {args.baseline}; only absolute targets are checked "
              "(create one with --update)\n")
    if baseline.get("stat", args.stat) != args.stat:
        print(f"warning: baseline was recorded with --stat {baseline['stat']}, "
              f"this check uses --stat {args.stat}\n")

    rows = check(measured, baseline, args.tolerance, args.require_all)
    runs = max((v.get("runs", 1) for v in measured.values()), default=1)
    print(f"speed-up = twin {args.stat} / kernel {args.stat}"
          f"{f' (median over up to {runs} runs)' if runs > 1 else ''}; "
          f"tolerance {args.tolerance:g}; baseline {args.baseline}")
    for note in notes:
        print(f"note: {note}")
    slowed = sorted({v["slowdown"] for v in measured.values() if v.get("slowdown", 1) != 1})
    if slowed:
        print(f"NOTE: {SLOWDOWN_ENV}={slowed[0]} was active: kernel timings are deliberately "
              "inflated")
    print()
    print_check_table(rows, args.tolerance)
    print()
    print("markdown table:\n")
    md = markdown_table(rows)
    print(md)
    if args.markdown:
        args.markdown.write_text(md)

    failed = [r for r in rows if r["status"] == "FAIL"]
    warned = [r for r in rows if r["status"] == "WARN"]
    skipped = [r for r in rows if r["status"] == "SKIP"]
    if failed:
        print(f"RESULT: FAIL - {len(failed)} entr{'y' if len(failed) == 1 else 'ies'} failed:")
        for r in failed:
            for level, why in r["why"]:
                if level == "FAIL":
                    print(f"  {r['key']}: {why}")
        if warned:
            print(f"(and {len(warned)} warning(s): {', '.join(r['key'] for r in warned)})")
        return 1
    extra = []
    if warned:
        extra.append(f"{len(warned)} warning(s): {', '.join(r['key'] for r in warned)}")
    if skipped:
        extra.append(f"{len(skipped)} not measured")
    print(f"RESULT: PASS{' (' + '; '.join(extra) + ')' if extra else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

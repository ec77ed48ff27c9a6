"""Absolute speed targets: the kernels against their numpy twin, measured in the same run.

Reads one or more pytest-benchmark JSON files (``pytest bench
--benchmark-json=FILE``), computes for every (cell, size, dtype) entry the
speed-up = twin time / kernel time and holds it to the absolute targets
(``bench_cases.MIN_SPEEDUP``), which must hold on any machine; the
fresh-process cache-load time is held to its target too. Regressions against
an earlier revision are the paired gate's job (``bench/gate.py``), not this
check's: a ratio stored from one machine cannot judge another. Exit status 0
when every check passes, 1 when any fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
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
    SUBSETS,
    entry_key,
    md_table,
)

EPILOG = f"""\
checks, per (cell, size, dtype) entry (any FAIL makes the exit status 1):
  FAIL  target: speed-up < {MIN_SPEEDUP['small']:g} at small, < {MIN_SPEEDUP['medium']:g} at \
medium and large
  SKIP  an entry was not measured (subset run); FAIL with --require-all
  FAIL  cache-load: median fresh-process time > {CACHE_LOAD_TARGET_S} s x \
{CACHE_LOAD_NOISE_FACTOR} (noise factor)
  WARN  cache-load: median > {CACHE_LOAD_TARGET_S} s but within the noise factor

sizes: the suite runs every size by default; choose with the pytest option
  --bench-sizes or the environment variable {SIZES_ENV}: comma-separated
  names {', '.join(f'{k}={v}' for k, v in SIZES.items())},
  or subsets {', '.join(f'{k}=({",".join(v)})' for k, v in SUBSETS.items())}.

examples:
  pytest bench --benchmark-json=bench/results/bench.json
  python bench/check_targets.py --json bench/results/bench.json
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
        for key, e in per_file.items():
            if "kernel" not in e or "twin" not in e:
                notes.append(f"{path}: {key} lacks its {'twin' if 'kernel' in e else 'kernel'} "
                             "timing; ignored")
                continue
            agg = entries.setdefault(key, {"kernel_s": [], "twin_s": [], "speedup": []})
            info = e["info"]
            agg.update({k: info[k] for k in ("cell", "B", "H", "D", "T", "dtype", "size")})
            agg["kernel_s"].append(e["kernel"])
            agg["twin_s"].append(e["twin"])
            agg["speedup"].append(e["twin"] / e["kernel"])
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
        })
    if cache["median_s"]:
        out[CACHE_LOAD_KEY] = {"median_s": statistics.median(cache["median_s"]),
                               "runs": len(cache["median_s"])}
    return out


def ordered_keys() -> list[str]:
    return [entry_key(c, SIZES[s], d) for c in CELLS for s in SIZES for d in DTYPES]


def check(measured: dict, require_all: bool) -> list[dict]:
    """One row per entry: measured values, status and reasons."""
    rows = []
    for key in ordered_keys():
        m = measured.get(key)
        row = {"key": key, "m": m, "status": "OK", "why": []}
        if m is None:
            row["status"] = "FAIL" if require_all else "SKIP"
            row["why"].append((row["status"], "not measured in this run"))
        else:
            target = MIN_SPEEDUP[m["size"]]
            if m["speedup"] < target:
                row["status"] = "FAIL"
                row["why"].append(("FAIL", f"target: speed-up {m['speedup']:.2f} < {target:g}"))
        rows.append(row)

    m = measured.get(CACHE_LOAD_KEY)
    row = {"key": CACHE_LOAD_KEY, "m": m, "status": "OK", "why": []}
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


def fmt_ms(v: float) -> str:
    return f"{v:.3g}" if v < 10 else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt_x(v: float) -> str:
    return f"{v:.1f}×" if v >= 10 else f"{v:.2f}×"


def print_check_table(rows: list[dict]) -> None:
    head = f"{'entry':<28} {'kernel ms':>10} {'twin ms':>10} {'speed-up':>9} {'target':>7}  status"
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["m"]
        if r["key"] == CACHE_LOAD_KEY:
            meas = f"{m['median_s']:.3f} s" if m else "-"
            print(f"{'cache-load (median)':<28} {meas:>21} {'':>9} "
                  f"{f'<{CACHE_LOAD_TARGET_S} s':>7}  {r['status']}")
        else:
            km = fmt_ms(m["kernel_ms"]) if m else "-"
            tm = fmt_ms(m["twin_ms"]) if m else "-"
            sp = f"{m['speedup']:.2f}" if m else "-"
            size = m["size"] if m else None
            tg = f">={MIN_SPEEDUP[size]:g}" if size else "-"
            print(f"{r['key']:<28} {km:>10} {tm:>10} {sp:>9} {tg:>7}  {r['status']}")
        for level, why in r["why"]:
            print(f"    {level}: {why}")


def markdown_table(rows: list[dict]) -> str:
    """The measured entries as a Markdown table, then the cache-load line."""
    cells = []
    cache_line = ""
    for r in rows:
        m = r["m"]
        if m is None:
            continue
        if r["key"] == CACHE_LOAD_KEY:
            cache_line = (f"\nFresh process, kernels loaded from Numba's cache "
                          f"(`import gradpath; gradpath.warmup()`): median "
                          f"**{m['median_s']:.2f} s**; target < {CACHE_LOAD_TARGET_S} s.")
            continue
        cells.append([m["cell"].upper(), str(m["B"]), str(m["H"]), str(m["D"]), str(m["T"]),
                      m["dtype"], fmt_ms(m["kernel_ms"]), fmt_ms(m["twin_ms"]),
                      fmt_x(m["speedup"]), f"≥ {MIN_SPEEDUP[m['size']]:g}"])
    table = md_table(["cell", "B", "H", "D", "T", "dtype", "kernel ms", "twin ms", "speed-up",
                      "target"], cells, "lrrrrlrrrr")
    return table + "\n" + cache_line


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="check_targets.py",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--json", dest="json_paths", type=Path, action="append", required=True,
                    metavar="FILE",
                    help="pytest-benchmark JSON (pytest bench --benchmark-json=FILE); repeat "
                         "to use the per-entry median over several runs")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="per-benchmark statistic the speed-up is computed from "
                         "(default: %(default)s)")
    ap.add_argument("--require-all", action="store_true",
                    help="fail when an entry was not measured (default: SKIP)")
    ap.add_argument("--markdown", type=Path, metavar="FILE",
                    help="also write the markdown results table to FILE")
    return ap


def failing_entries(argv: list[str]) -> list[str]:
    """Keys of the entries that fail, for the given arguments (no output)."""
    args = parser().parse_args(argv)
    entries, cache, _ = load_runs(args.json_paths, args.stat)
    rows = check(summarise(entries, cache), args.require_all)
    return [r["key"] for r in rows if r["status"] == "FAIL" and r["m"] is not None]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    entries, cache, notes = load_runs(args.json_paths, args.stat)
    measured = summarise(entries, cache)
    if not measured:
        print(f"error: no gradpath benchmarks found in {[str(p) for p in args.json_paths]}",
              file=sys.stderr)
        return 2
    rows = check(measured, args.require_all)
    runs = max((v.get("runs", 1) for v in measured.values()), default=1)
    print(f"speed-up = twin {args.stat} / kernel {args.stat}"
          f"{f' (median over up to {runs} runs)' if runs > 1 else ''}")
    for note in notes:
        print(f"note: {note}")
    print()
    print_check_table(rows)
    print("\nmarkdown table:\n")
    md = markdown_table(rows)
    print(md)
    if args.markdown:
        args.markdown.write_text(md)

    failed = [r for r in rows if r["status"] == "FAIL"]
    warned = [r for r in rows if r["status"] == "WARN"]
    if failed:
        print(f"TARGETS: FAIL - {len(failed)} entr{'y' if len(failed) == 1 else 'ies'} failed:")
        for r in failed:
            for level, why in r["why"]:
                if level == "FAIL":
                    print(f"  {r['key']}: {why}")
        return 1
    extra = f" ({len(warned)} warning(s): {', '.join(r['key'] for r in warned)})" if warned else ""
    print(f"TARGETS: PASS{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

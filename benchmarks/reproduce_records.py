"""Re-run the configs of committed records and compare the metrics with the committed ones.

Why: a refactor of the LLM kit (or any change meant to keep numbers) is only done when the same configs give
the same metrics. This runs each record's stored ``config`` with ``force`` into a separate results folder
(the committed tree is never touched) and prints, per record, the largest absolute metric difference.

    python benchmarks/reproduce_records.py --out /tmp/after results/ml-100k/ctr/collm-*.json
    python benchmarks/reproduce_records.py --compare /tmp/before /tmp/after   # two re-runs, side by side

Use a fresh ``BENCHBED_CACHE`` for a pass that must retrain its stages (cached stages are loaded, not
retrained, by design).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    """Metric -> value; a metric with no value (an empty subset, e.g. ``cold`` on generative) is left out:
    both sides lack it or only one does (then it counts as unmatched)."""
    return {f"{s}/{k}": float(v) for s, m in metrics.items() for k, v in m.items() if v is not None}


def max_diff(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str, int]:
    """Largest |a - b| over the metrics both hold, its key, and how many keys only one side holds."""
    fa, fb = _flat(a), _flat(b)
    common = sorted(set(fa) & set(fb))
    worst, key = 0.0, ""
    for k in common:
        d = abs(fa[k] - fb[k])
        if d > worst:
            worst, key = d, k
    return worst, key, len(set(fa) ^ set(fb))


def rerun(records: list[Path], out: Path) -> list[dict[str, Any]]:
    from benchbed.config import RunConfig
    from benchbed.orchestration.runner import execute
    from benchbed.settings import get_settings, set_settings

    settings = get_settings()
    set_settings(type(settings)(settings.data_dir, settings.cache_dir, out, settings.verbosity))
    rows = []
    for path in records:
        committed = json.loads(path.read_text())
        config = RunConfig.from_dict(committed["config"], source=str(path))
        start = time.perf_counter()
        outcome = execute(config, force=True, progress=False)
        seconds = time.perf_counter() - start
        worst, key, only_one = max_diff(committed["metrics"], outcome.record.metrics)
        rows.append(
            {"record": path.name, "max_abs_diff": worst, "at": key, "unmatched": only_one, "s": seconds}
        )
        print(f"{path.name}: max |diff| {worst:.3g} {key} unmatched={only_one} ({seconds:.0f} s)", flush=True)
    return rows


def compare(a: Path, b: Path) -> int:
    bad = 0
    for fa in sorted(a.rglob("*-s[0-9]*.json")):  # run records only (not reproduce.json)
        fb = b / fa.relative_to(a)
        if not fb.is_file():
            print(f"{fa.relative_to(a)}: missing in {b}")
            bad += 1
            continue
        ra, rb = json.loads(fa.read_text()), json.loads(fb.read_text())
        worst, key, only_one = max_diff(ra["metrics"], rb["metrics"])
        print(f"{fa.relative_to(a)}: max |diff| {worst:.3g} {key} unmatched={only_one}")
        bad += int(worst > 0 or only_one > 0)
    print(f"{bad} record(s) differ")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, help="results folder for the re-runs")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    if not args.out or not args.records:
        ap.error("give --out and record files, or --compare A B")
    rows = rerun(args.records, args.out)
    (args.out / "reproduce.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

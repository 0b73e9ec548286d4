"""Issue 26: tables of the MiniLM CTR runs (tallrec, collm, collm with permuted CF vectors), from records.

- learning curve: valid AUC (512 seeded valid rows) against training rows seen, per stage and seed, from the
  stage histories (`evals_per_epoch=4`: one evaluation every 512 rows of the 2,048-row cpu-encoder budget);
- training seconds per stage and test-scoring seconds (wall clock on the shared 2-core machine: read them as
  the cost under that load, not as a benchmark);
- test AUC/UAUC on all/warm/cold: mean over seeds with a 95% t-interval, beside the ID baseline's records.

    python benchmarks/minilm_ctr_curve.py RESULTS/ml-100k/ctr [--baseline results/ml-100k/ctr] [--method mf]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.stats.power import t_interval

SUBSETS = ("all", "warm", "cold")


def label(record: dict[str, Any]) -> str | None:
    """tallrec-minilm / collm-minilm / collm-minilm-permuted; None for records of other runs."""
    if record.get("status") != "ok" or "MiniLM" not in str(record.get("backbone", {}).get("id", "")):
        return None
    stages = record["info"]["method"]["stages"]
    permuted = bool(stages.get("cf", {}).get("permuted"))
    return f"{record['method']}-minilm" + ("-permuted" if permuted else "")


PATHS: dict[tuple[str, int], Path] = {}  # (run, seed) -> record file, for the predictions


def load(directory: Path) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(directory.glob("*.json")):
        record = json.loads(path.read_text())
        name = label(record)
        if name is not None:
            out[name][int(record["seed"])] = record
            PATHS[(name, int(record["seed"]))] = path
    return out


def curve_rows(runs: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    lines = [
        "| stage | seed | " + " | ".join(["rows seen: valid AUC"] * 1) + " | train s |",
        "|---|---|---|---|",
    ]
    seen: set[str] = set()
    for name in sorted(runs):
        for seed, record in sorted(runs[name].items()):
            params = record["method_params"]
            batch = int(params["batch_size"])
            for key, stage in record["info"]["method"]["stages"].items():
                if "train" not in stage or stage.get("loaded"):
                    continue  # a loaded stage is listed under the run that trained it
                if stage["key"] in seen:
                    continue
                seen.add(stage["key"])
                train = stage["train"]
                points = ", ".join(f"{h['steps'] * batch}: {h['metric']:.4f}" for h in train["history"])
                what = (
                    "lora-text (tallrec = collm step 1)" if key == "stage1" else f"{stage['stage']} ({name})"
                )
                lines.append(f"| {what} | {seed} | {points} | {train['seconds']:.0f} |")
    return lines


def mean_curve(runs: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    by_stage: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, per_seed in runs.items():
        for record in per_seed.values():
            batch = int(record["method_params"]["batch_size"])
            for key, stage in record["info"]["method"]["stages"].items():
                if "train" not in stage or stage.get("loaded"):
                    continue
                what = "lora-text" if key == "stage1" else name
                for h in stage["train"]["history"]:
                    by_stage[what][h["steps"] * batch].append(h["metric"])
    lines = ["| stage | " + " | ".join(f"{n} rows" for n in sorted(next(iter(by_stage.values()), {}))) + " |"]
    lines.append("|---" * (1 + len(next(iter(by_stage.values()), {}))) + "|")
    for what, points in sorted(by_stage.items()):
        cells = [f"{np.mean(v):.4f} (n={len(v)})" for _, v in sorted(points.items())]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return lines


def cost_rows(runs: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    lines = [
        "| run | seed | trained stage | train s | rows/s | test scoring s (10,000 rows) |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(runs):
        for seed, record in sorted(runs[name].items()):
            stages = record["info"]["method"]["stages"]
            trained = [s for s in stages.values() if "train" in s and not s.get("loaded")]
            for s in trained or [{}]:
                train = s.get("train", {})
                lines.append(
                    f"| {name} | {seed} | {s.get('stage', '(loaded)')} | {train.get('seconds', 0):.0f} | "
                    f"{train.get('rows_per_s', 0):.1f} | {record['cost']['eval_s']:.0f} |"
                )
    return lines


def metric_cell(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]  # a subset with no rows has no metric
    if not values:
        return "–"
    ci = t_interval(values) if len(values) > 1 else None
    return f"{np.mean(values):.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def metric_rows(runs: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    head = " | ".join(f"{s} {m}" for s in SUBSETS for m in ("AUC", "UAUC"))
    lines = [f"| run | seeds | {head} |", "|---" * (2 + 2 * len(SUBSETS)) + "|"]
    for name in sorted(runs):
        per_seed = runs[name]
        cells = [
            metric_cell([r["metrics"][s][m] for r in per_seed.values() if s in r["metrics"]])
            for s in SUBSETS
            for m in ("auc", "uauc")
        ]
        lines.append(f"| {name} | {','.join(map(str, sorted(per_seed)))} | " + " | ".join(cells) + " |")
    return lines


def delong_rows(runs: dict[str, dict[int, dict[str, Any]]], paths: dict[tuple[str, int], Path]) -> list[str]:
    """AUC with DeLong's 95% CI on the test rows (seeds pooled by mean structural components)."""
    import pandas as pd
    from scipy import stats

    from benchbed.stats.delong import mean_components, structural_components

    z = stats.norm.ppf(0.975)
    lines = ["| run | seeds | " + " | ".join(f"{s} AUC [DeLong 95% CI]" for s in SUBSETS) + " |"]
    lines.append("|---" * (2 + len(SUBSETS)) + "|")
    for name in sorted(runs):
        frames = []
        for seed in sorted(runs[name]):
            pred = pd.read_parquet(paths[(name, seed)].with_suffix(".predictions.parquet"))
            frames.append(pred[pred["template"] == "seen"].sort_values("row").reset_index(drop=True))
        cells = []
        for subset in SUBSETS:
            keep = np.ones(len(frames[0]), bool)
            if subset != "all":
                keep = frames[0]["warm"].to_numpy(bool) == (subset == "warm")
            y = frames[0]["label"].to_numpy()[keep]
            comp = mean_components([structural_components(y, f["score"].to_numpy()[keep])[0] for f in frames])
            var = np.var(comp.v10, ddof=1) / len(comp.v10) + np.var(comp.v01, ddof=1) / len(comp.v01)
            half = z * float(np.sqrt(var))
            cells.append(f"{comp.auc:.4f} [{comp.auc - half:.4f}, {comp.auc + half:.4f}]")
        lines.append(f"| {name} | {','.join(map(str, sorted(runs[name])))} | " + " | ".join(cells) + " |")
    return lines


def baseline(directory: Path, method: str) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[int, dict[str, Any]] = {}
    for path in sorted(directory.glob(f"{method}-*.json")):
        record = json.loads(path.read_text())
        if (
            record.get("status") == "ok"
            and record["method"] == method
            and not record["method_params"].get("backbone")
        ):
            out[int(record["seed"])] = record
            PATHS[(method, int(record["seed"]))] = path
    return {method: out} if out else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", type=Path, help="directory of the MiniLM records (RESULTS/ml-100k/ctr)")
    ap.add_argument("--baseline", type=Path, default=None, help="directory of the ID baseline's records")
    ap.add_argument("--method", default="mf", help="the ID baseline [mf]")
    args = ap.parse_args()
    runs = load(args.records)
    if not runs:
        raise SystemExit(f"no MiniLM tallrec/collm records in {args.records}")
    print("## Learning curve (valid AUC against training rows seen)\n")
    print("\n".join(curve_rows(runs)))
    print("\nMean over seeds:\n")
    print("\n".join(mean_curve(runs)))
    print("\n## Cost per stage (wall clock, shared 2-core machine)\n")
    print("\n".join(cost_rows(runs)))
    print("\n## Test metrics: mean over seeds [95% t-interval]\n")
    both = {**(baseline(args.baseline, args.method) if args.baseline else {}), **runs}
    print("\n".join(metric_rows(both)))
    print("\n## Test AUC with DeLong's 95% CI (seeds pooled by mean structural components)\n")
    print("\n".join(delong_rows(both, PATHS)))


if __name__ == "__main__":
    main()

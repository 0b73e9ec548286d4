"""CLLM4Rec: all-item scoring in one forward pass vs candidates one by one, and the extended vocabulary's
memory (benchmark, not a test).

1. ``one pass``: ``CLLM4Rec.score_all`` on ml-100k test users (random-per-user): one forward pass over each
   user's recommendation prompt (all training items, then ", user_i will interact with") and the multinomial
   head over all J items [paper §3.4-3.5], ``eval_batch_size`` users per pass.
2. ``one by one``: the same ranking the way a pointwise LLM ranker pays for it, one forward pass per (user,
   candidate): the prompt followed by the candidate's item token, one score from the last hidden state.
   Timed on ``--candidates`` items of ``--users-one`` users and extrapolated to all J items (stated), once
   with one row per forward and once with ``--cand-batch`` candidate rows per forward.
3. memory of the extended vocabulary per 10k items: the bytes of the ``VocabExtension`` tensors (two tables,
   collaborative and content) allocated for 10k items on the tiny GPT-2 (64-d) and on a GPT-2 config of
   width 768 (1 layer: only the width sets the size), tied head and separate head; training adds the
   gradient and Adam's two moments of the rows that train (x4 in all).

The model is untrained (all stage epochs 0): speed does not depend on the weights. One run; the speed-up
figures are ratios of medians over ``--rounds`` passes.

    python benchmarks/perf_cllm4rec.py                      # tiny GPT-2, CPU
    python benchmarks/perf_cllm4rec.py --backbone gpt2 --device cuda   # with the GPT-2 weights at hand
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchbed sets it; must precede torch's import

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchbed.api import RunContext, TaskSetup  # noqa: E402
from benchbed.data.prepare import prepare_split  # noqa: E402
from benchbed.llm.injectors.prompts import EncodedPrompts, collate  # noqa: E402
from benchbed.llm.injectors.vocab import VocabExtension  # noqa: E402
from benchbed.methods.cllm4rec.method import CLLM4Rec  # noqa: E402
from benchbed.methods.cllm4rec.model import COLLAB, CONTENT  # noqa: E402

UNTRAINED = {"warmup_epochs": 0, "pretrain_epochs": 0, "finetune_epochs": 0, "max_content_docs": 10}


def timed(fn: Any, rounds: int) -> float:
    """Median seconds of ``rounds`` calls."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def one_by_one(method: CLLM4Rec, users: np.ndarray, candidates: np.ndarray, batch: int) -> None:
    """Score ``candidates`` for each user with one (prompt + candidate) row each, ``batch`` rows a pass."""
    core, corpus = method.core, method.corpus
    assert core is not None and corpus is not None
    with torch.no_grad():
        for u in users:
            prompt = corpus.rec_prompt(int(u), method.prompt_items(int(u)))
            rows = [np.asarray(prompt + corpus.item_ids(np.array([c])), dtype=np.int64) for c in candidates]
            for s in range(0, len(rows), batch):
                part = rows[s : s + batch]
                enc = EncodedPrompts(
                    ids=part, slot_names=(), slot_pos=np.zeros((len(part), 0), dtype=np.int64)
                )
                b = collate(enc, np.arange(len(part)), corpus.pad_id, corpus.device, side="left")
                h = core.rec_head.last_hidden(core.model, core.ext.inputs(core.model, b, table=COLLAB))
                rows_w = core.rec_head.matrix()[torch.as_tensor(candidates[s : s + batch], device=h.device)]
                (h * rows_w).sum(-1)


def vocab_memory(width: int, items: int = 10_000) -> dict[str, Any]:
    """Bytes of a two-table extension for ``items`` item tokens (no users) at hidden size ``width``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    out: dict[str, Any] = {"width": width}
    for tie in (True, False):
        config = GPT2Config(
            vocab_size=100,
            n_embd=width,
            n_layer=1,
            n_head=max(1, width // 64),
            n_positions=8,
            bos_token_id=None,
            eos_token_id=None,
        )
        config.tie_word_embeddings = tie
        model = GPT2LMHeadModel(config)
        ext = VocabExtension.for_model(model, {"item": items}, tables=(COLLAB, CONTENT), method="cllm4rec")
        n = sum(p.numel() * p.element_size() for p in ext.parameters())
        out["tied" if tie else "separate"] = {"head": ext.head, "MB": round(n / 2**20, 2), "bytes": int(n)}
    out["training_MB_tied_x4"] = round(4 * out["tied"]["MB"], 2)  # rows + grad + Adam m, v (fp32)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--users", type=int, default=256, help="users scored by the one-pass path")
    ap.add_argument("--users-one", type=int, default=4, help="users scored candidate by candidate")
    ap.add_argument("--candidates", type=int, default=64, help="candidates timed per user (extrapolated)")
    ap.add_argument("--cand-batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    split = prepare_split("ml-100k", "random-per-user").split
    ctx = RunContext(setup=TaskSetup(task="topk", feedback="interactions"), seed=0, device=args.device)
    method = CLLM4Rec(backbone=args.backbone, **UNTRAINED)
    method.fit(split, ctx)
    n_items = split.n_items
    users = np.sort(split.test["user"].unique())[: args.users]
    hist = [[] for _ in users]
    lens = [len(method.train_items[int(u)]) for u in users]
    t_all = timed(lambda: method.score_all(users, hist), args.rounds)
    few = users[: args.users_one]
    cands = np.random.default_rng(0).choice(n_items, args.candidates, replace=False)
    t_one = timed(lambda: one_by_one(method, few, cands, 1), args.rounds)
    t_bat = timed(lambda: one_by_one(method, few, cands, args.cand_batch), args.rounds)
    ups_all = len(users) / t_all
    # per user, all J items: the timed candidates scaled by J / candidates
    ups_one = len(few) / (t_one * n_items / len(cands))
    ups_bat = len(few) / (t_bat * n_items / len(cands))
    report = {
        "backbone": method.backbone_info.get("id"),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "items": n_items,
        "prompt_items_mean": round(float(np.mean(lens)), 1),
        "one_pass_users_per_s": round(ups_all, 2),
        "one_by_one_users_per_s": round(ups_one, 4),
        f"batched_{args.cand_batch}_candidates_users_per_s": round(ups_bat, 4),
        "speedup_vs_one_by_one": round(ups_all / ups_one, 1),
        f"speedup_vs_batched_{args.cand_batch}": round(ups_all / ups_bat, 1),
        "extrapolated_from": f"{len(cands)} candidates x {len(few)} users -> {n_items} items",
        "vocab_memory_per_10k_items": [vocab_memory(64), vocab_memory(768)],
    }
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()

"""Throughput of Yes/No CTR scoring and LoRA training (benchmark, not a test).

Measures, on ml-100k test rows (real titles; synthetic rows if the dataset cannot be prepared):
1. scoring rows/s and tokens/s: length-bucketed batches vs the same batches in random order vs one row at a
   time;
2. LoRA training rows/s and tokens/s (forward + backward + AdamW step, bucketed batches);
3. candidate ranking: C candidates per user, the user's prompt prefix (everything before the candidate
   title) encoded once and its key/values reused for every candidate, vs recomputing full prompts;
and prints the ratios. With ``--backbone random-1b`` (meant for a GPU, bf16) it builds a ~1.1B-parameter
randomly initialised Llama decoder and also reports model-FLOPs utilisation against the GPU's bf16 peak.

    python benchmarks/perf_llm_scoring.py                       # tiny backbone, CPU
    python benchmarks/perf_llm_scoring.py --backbone random-1b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchbed sets it; must precede torch's import

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchbed.llm.backbone import Backbone, build_tiny, load_backbone, resolve_device
from benchbed.llm.heads.yesno import bce_loss, score_with_prefix_cache
from benchbed.llm.inject import EncodedPrompts, bucket_batches, special_prefix
from benchbed.llm.lora import add_lora
from benchbed.llm.yesno import Rows, YesNoScorer, rows_from_frame
from benchbed.prompts import load_bank

# dense bf16 peak, TFLOP/s (NVIDIA datasheets, without sparsity)
BF16_PEAK_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "A100": 312.0}
RANDOM_1B = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 20,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 2048,
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def load(args: argparse.Namespace) -> Backbone:
    if args.backbone != "random-1b":
        return load_backbone(args.backbone, device=args.device, dtype=args.dtype)
    dev, dt = resolve_device(args.device, args.dtype)
    with torch.device(dev):
        model, tok = build_tiny(**RANDOM_1B)
    model = model.to(dtype=dt).eval()
    info = {"id": "random-1b", "revision": "random", "parameters": sum(p.numel() for p in model.parameters())}
    return Backbone(
        name="random-1b", model=model, tokenizer=tok, device=dev, dtype=dt, is_decoder=True, info=info
    )


def ctr_rows(n: int) -> tuple[Rows, list[str], str, str]:
    try:
        from benchbed.data.prepare import prepare_split

        split = prepare_split("ml-100k").split
        return (
            rows_from_frame(split.test.iloc[:n], 10),
            split.data.item_titles(),
            split.data.domain,
            "ml-100k test",
        )
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs on synthetic rows
        from benchbed.llm.synthetic import planted_split

        split = planted_split(n_users=200, n_items=300, rows_per_user=60, history_len=10)
        print(f"(ml-100k unavailable: {exc}; using synthetic rows)")
        return rows_from_frame(split.test.iloc[:n], 10), split.data.item_titles(), "items", "synthetic"


def timed(fn, device: str, repeat: int = 1) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def score_batches(scorer: YesNoScorer, model, enc: EncodedPrompts, batches: list[np.ndarray]) -> None:
    with torch.no_grad():
        for idx in batches:
            scorer.forward(model, scorer.batch(enc, idx))


def padded_tokens(enc: EncodedPrompts, batches: list[np.ndarray]) -> int:
    return int(sum(len(b) * enc.lengths[b].max() for b in batches))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--rows", type=int, default=2000, help="CTR rows to score")
    ap.add_argument("--single-rows", type=int, default=200, help="rows scored one at a time")
    ap.add_argument("--train-rows", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-batch-size", type=int, default=16)
    ap.add_argument("--users", type=int, default=20, help="users for candidate ranking")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bb = load(args)
    dev = bb.device
    rows, titles, domain, source = ctr_rows(args.rows)
    bank = load_bank("ctr")
    scorer = YesNoScorer(bb, bank, titles=titles, domain=domain, batch_size=args.train_batch_size)
    model = bb.model
    n_params = (
        sum(p.numel() for p in model.parameters() if p.ndim >= 2)
        - model.get_input_embeddings().weight.numel()
    )
    enc = scorer.encode(rows, "seen", "text")
    real_tokens = int(enc.lengths.sum())
    out: dict[str, Any] = {
        "backbone": bb.info.get("id"),
        "device": dev,
        "dtype": str(bb.dtype),
        "rows": len(rows),
        "source": source,
        "mean_prompt_tokens": float(enc.lengths.mean()),
        "non_embedding_params": int(n_params),
        "threads": torch.get_num_threads(),
    }
    print(
        f"backbone {out['backbone']} on {dev} ({bb.dtype}), {len(rows)} rows of {source}, "
        f"{out['mean_prompt_tokens']:.0f} tokens/prompt, {torch.get_num_threads()} CPU threads"
    )

    # 1. scoring: bucketed vs unbucketed vs one at a time
    bucketed = bucket_batches(enc.lengths, args.batch_size)
    shuffled = np.random.default_rng(0).permutation(len(rows))
    unbucketed = [shuffled[i : i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    t_b = timed(lambda: score_batches(scorer, model, enc, bucketed), dev)
    t_u = timed(lambda: score_batches(scorer, model, enc, unbucketed), dev)
    single = [np.asarray([i]) for i in range(min(args.single_rows, len(rows)))]
    t_1 = timed(lambda: score_batches(scorer, model, enc, single), dev)
    s1_rate = len(single) / t_1
    out["score"] = {
        "bucketed_rows_s": len(rows) / t_b,
        "bucketed_tokens_s": real_tokens / t_b,
        "bucketed_padding_share": 1 - real_tokens / padded_tokens(enc, bucketed),
        "unbucketed_rows_s": len(rows) / t_u,
        "unbucketed_padding_share": 1 - real_tokens / padded_tokens(enc, unbucketed),
        "single_rows_s": s1_rate,
        "ratio_bucketed_vs_single": (len(rows) / t_b) / s1_rate,
        "ratio_bucketed_vs_unbucketed": t_u / t_b,
    }

    # 2. LoRA training throughput
    train_rows = rows.take(np.arange(min(args.train_rows, len(rows))))
    tenc = scorer.encode(train_rows, "seen", "text")
    peft_model, _ = add_lora(model)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    labels = torch.as_tensor(train_rows.labels, device=dev)
    tb = bucket_batches(tenc.lengths, args.train_batch_size, rng=np.random.default_rng(0))

    def train_epoch() -> None:
        peft_model.train()
        for idx in tb:
            loss = bce_loss(scorer.forward(peft_model, scorer.batch(tenc, idx)), labels[torch.as_tensor(idx)])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    t_tr = timed(train_epoch, dev)
    train_tokens = int(tenc.lengths.sum())
    out["train"] = {
        "rows_s": len(train_rows) / t_tr,
        "tokens_s": train_tokens / t_tr,
        "batch_size": args.train_batch_size,
    }
    peft_model.eval()

    # 3. candidate ranking: shared prefix KV cache vs full prompts
    rng = np.random.default_rng(1)
    tpl = bank.template("seen", "text")
    head, _, tail = tpl.partition("{target}")
    users = rng.choice(len(rows), size=min(args.users, len(rows)), replace=False)
    n_items = len(titles)
    cand = rng.integers(0, n_items, size=(len(users), args.candidates))
    prefix_ids, suffix_ids = [], []
    for r, u in enumerate(users):
        vals = {**scorer.domain_values, "history": scorer.history_text(rows.histories[u])}
        text = head.format(**vals)
        prefix_ids.append(
            np.asarray(
                special_prefix(bb.tokenizer) + bb.tokenizer(text, add_special_tokens=False)["input_ids"]
            )
        )
        sfx = [f'"{scorer.titles[i]}"' + tail for i in cand[r]]
        suffix_ids.append([np.asarray(x) for x in bb.tokenizer(sfx, add_special_tokens=False)["input_ids"]])
    embed_ids = model.get_input_embeddings()

    def ranked_cached() -> list[np.ndarray]:
        return [
            score_with_prefix_cache(
                model, embed_ids, p, s, scorer.answer_ids, batch_size=args.batch_size, device=dev
            )
            for p, s in zip(prefix_ids, suffix_ids, strict=True)
        ]

    full = EncodedPrompts(
        ids=[np.concatenate([p, s]) for p, ss in zip(prefix_ids, suffix_ids, strict=True) for s in ss],
        slot_names=(),
        slot_pos=np.zeros((len(users) * args.candidates, 0), dtype=np.int64),
    )

    def ranked_full() -> np.ndarray:
        return scorer.score(model, full, batch_size=args.batch_size)

    t_c = timed(ranked_cached, dev)
    t_f = timed(ranked_full, dev)
    a = np.concatenate(ranked_cached())
    b = ranked_full()
    n_pairs = len(users) * args.candidates
    out["rank"] = {
        "candidates_per_user": args.candidates,
        "users": len(users),
        "prefix_tokens": float(np.mean([len(p) for p in prefix_ids])),
        "suffix_tokens": float(np.mean([len(s) for ss in suffix_ids for s in ss])),
        "cached_pairs_s": n_pairs / t_c,
        "full_pairs_s": n_pairs / t_f,
        "ratio_cached_vs_full": t_f / t_c,
        "max_abs_score_diff": float(np.abs(a - b).max()),
    }

    if dev.startswith("cuda"):
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if all(w in name for w in k.split())), None)
        fwd = 2 * n_params  # FLOPs per token, forward (attention scores ignored: prompts are short)
        out["gpu"] = {"name": name, "bf16_peak_tflops": peak}
        if peak:
            out["gpu"]["mfu_score"] = fwd * out["score"]["bucketed_tokens_s"] / (peak * 1e12)
            # LoRA: the frozen base still back-propagates activations (~2x forward); weight grads: LoRA only
            out["gpu"]["mfu_train"] = 2 * fwd * out["train"]["tokens_s"] / (peak * 1e12)
    print(json.dumps(out, indent=2))
    s, t, r = out["score"], out["train"], out["rank"]
    print(
        f"\nscoring: bucketed {s['bucketed_rows_s']:.0f} rows/s ({s['bucketed_tokens_s']:.0f} tokens/s, "
        f"padding {s['bucketed_padding_share']:.1%}) | random order {s['unbucketed_rows_s']:.0f} rows/s "
        f"(padding {s['unbucketed_padding_share']:.1%}) | one at a time {s['single_rows_s']:.0f} rows/s"
    )
    print(
        f"  ratios: bucketed/single {s['ratio_bucketed_vs_single']:.1f}x, bucketed/random order "
        f"{s['ratio_bucketed_vs_unbucketed']:.2f}x"
    )
    print(f"training (LoRA): {t['rows_s']:.0f} rows/s, {t['tokens_s']:.0f} tokens/s")
    print(
        f"ranking {r['candidates_per_user']} candidates/user: prefix cache "
        f"{r['cached_pairs_s']:.0f} pairs/s vs full prompts {r['full_pairs_s']:.0f} pairs/s -> "
        f"{r['ratio_cached_vs_full']:.2f}x (max score diff {r['max_abs_score_diff']:.1e})"
    )
    if "gpu" in out and out["gpu"].get("bf16_peak_tflops"):
        g = out["gpu"]
        print(
            f"{g['name']}: MFU scoring {g['mfu_score']:.1%}, training {g['mfu_train']:.1%} "
            f"(of {g['bf16_peak_tflops']} TFLOP/s bf16)"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

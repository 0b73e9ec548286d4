"""Throughput of Yes/No CTR scoring and LoRA training, the kit's path today (old) beside
``benchbed.llm.yesno.fast_scoring`` (new), measured side by side in one run (benchmark, not a test).

On ml-100k test rows (real titles; synthetic rows if the dataset cannot be prepared):
1. scoring rows/s: length-bucketed batches, the same batch size in random order, one row at a time; new =
   token-budget batches + the two-row answer head; plus CTR rows scored with prefix reuse across rows of one
   (user, history) (``plan_prefixes`` + ``score_yesno_planned``);
2. LoRA training rows/s (forward + backward + AdamW step, bucketed batches), old head vs two-row head;
3. candidate ranking, C candidates per user: full prompts vs the user's prompt prefix encoded once and its
   key/values reused (old: ``score_with_prefix_cache``, one user at a time; new: per user, and all users'
   prefixes and candidates batched together), with the largest score difference to the old full prompts;
4. the same new bucketed scoring with 1 thread vs torch's default thread count (why bucketing can read
   as no gain on a loaded CPU: see the report).

Each figure is the median of ``--rounds`` passes; variants of one comparison run in turn inside each round
(the order rotates), and a ratio is the median of the per-round ratios, so a machine whose speed drifts
still gives a fair ratio. With ``--backbone random-1b`` (meant for a GPU, bf16) it builds a ~1.1B-parameter
randomly initialised Llama decoder and also reports model-FLOPs utilisation against the GPU's bf16 peak.

    python benchmarks/perf_llm_scoring.py                       # tiny backbone, CPU
    python benchmarks/perf_llm_scoring.py --backbone random-1b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchbed sets it; must precede torch's import

import copy  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchbed.compat.hf_cache import cache_kwarg  # noqa: E402
from benchbed.llm.backbone.loader import Backbone, build_tiny, load_backbone, resolve_device  # noqa: E402
from benchbed.llm.injectors.prompts import (  # noqa: E402
    Batch,  # noqa: E402
    EncodedPrompts,
    bucket_batches,
    special_prefix,
)
from benchbed.llm.lora import add_lora  # noqa: E402
from benchbed.llm.yesno import fast_scoring, prefix_reuse  # noqa: E402
from benchbed.llm.yesno.head import answer_logits, bce_loss, to_score  # noqa: E402
from benchbed.llm.yesno.scorer import Rows, YesNoScorer, rows_from_frame  # noqa: E402
from benchbed.prompts import load_bank  # noqa: E402

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


@torch.no_grad()
def score_with_prefix_cache(  # the pre-kit path, kept here as the "old" reference
    model,
    embed_ids: Callable[[torch.Tensor], torch.Tensor],
    prefix_ids: np.ndarray,
    suffix_ids: Sequence[np.ndarray],
    token_ids: Sequence[int],
    *,
    batch_size: int = 64,
    mode: str = "yes",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The kit's prefix-KV scoring before ``benchbed.llm.yesno.fast_scoring`` replaced it (one user per call,
    the
    cache deep-copied and repeated for every batch, the full LM head): this benchmark's "old" column.

    Suffixes are left-padded after the prefix; the padding is masked and position ids continue from the
    prefix, so each score equals scoring prefix+suffix alone.
    """
    from transformers import DynamicCache

    prefix = torch.as_tensor(prefix_ids, dtype=torch.long, device=device)[None]
    n0 = prefix.shape[1]
    cache = DynamicCache()
    model(
        inputs_embeds=embed_ids(prefix),
        attention_mask=torch.ones_like(prefix),
        use_cache=True,
        **{cache_kwarg(): cache},
        logits_to_keep=1,
    )
    scores = np.empty(len(suffix_ids), dtype=np.float64)
    for start in range(0, len(suffix_ids), batch_size):
        chunk = suffix_ids[start : start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        smask = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        for b, s in enumerate(chunk):
            ids[b, width - len(s) :] = torch.as_tensor(s, dtype=torch.long)
            smask[b, width - len(s) :] = 1
        mask = torch.cat([torch.ones((len(chunk), n0), dtype=torch.long, device=device), smask], dim=1)
        pos = (n0 + torch.cumsum(smask, dim=1) - 1).clamp(min=n0)
        batch_cache = copy.deepcopy(cache)
        batch_cache.batch_repeat_interleave(len(chunk))
        batch = Batch(
            rows=np.arange(len(chunk)),
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            slot_pos=torch.empty((len(chunk), 0), dtype=torch.long),
        )
        logits = answer_logits(model, embed_ids(ids), batch, token_ids, past_key_values=batch_cache)
        scores[start : start + len(chunk)] = to_score(logits, mode).cpu().numpy()
    return scores


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


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int, device: str) -> dict[str, list[float]]:
    """Seconds per pass of each variant: one warm-up each, then ``rounds`` rounds running every variant once
    (the starting variant rotates), so drift in the machine's speed hits all variants alike."""
    names = list(variants)
    for name in names:
        variants[name]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def med(xs: list[float]) -> float:
    return float(np.median(xs))


def ratio(times: dict[str, list[float]], slow: str, fast: str) -> float:
    """Median over rounds of time(slow) / time(fast): how many times faster ``fast`` is."""
    return med([a / b for a, b in zip(times[slow], times[fast], strict=True)])


def padded_tokens(lengths: np.ndarray, batches: list[np.ndarray]) -> int:
    return int(sum(len(b) * lengths[b].max() for b in batches))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--rows", type=int, default=2000, help="CTR rows to score")
    ap.add_argument("--single-rows", type=int, default=200, help="rows scored one at a time")
    ap.add_argument("--train-rows", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=64, help="rows per batch of the old path")
    ap.add_argument("--max-tokens", type=int, default=fast_scoring.DEFAULT_MAX_TOKENS, help="new path")
    ap.add_argument("--max-kv-tokens", type=int, default=fast_scoring.DEFAULT_MAX_KV_TOKENS, help="new path")
    ap.add_argument("--train-batch-size", type=int, default=16)
    ap.add_argument("--users", type=int, default=20, help="users for candidate ranking")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="timed passes per variant (median reported)")
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
    ids = scorer.answer_ids
    call = fast_scoring.YesNoCall(ids, scorer.pad_id, device=dev)
    n_params = (
        sum(p.numel() for p in model.parameters() if p.ndim >= 2)
        - model.get_input_embeddings().weight.numel()
    )
    enc = scorer.encode(rows, "seen", "text")
    lengths = enc.lengths
    real_tokens = int(lengths.sum())
    out: dict[str, Any] = {
        "backbone": bb.info.get("id"),
        "device": dev,
        "dtype": str(bb.dtype),
        "rows": len(rows),
        "source": source,
        "mean_prompt_tokens": float(lengths.mean()),
        "prompt_tokens_min_max": [int(lengths.min()), int(lengths.max())],
        "non_embedding_params": int(n_params),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "max_kv_tokens": args.max_kv_tokens,
    }
    print(
        f"backbone {out['backbone']} on {dev} ({bb.dtype}), {len(rows)} rows of {source}, "
        f"{out['mean_prompt_tokens']:.0f} tokens/prompt, {torch.get_num_threads()} CPU threads, "
        f"{args.rounds} rounds"
    )

    # 1. scoring
    def old_pass(batches: list[np.ndarray]) -> Callable[[], None]:
        def go() -> None:
            with torch.no_grad():
                for idx in batches:
                    scorer.forward(model, scorer.batch(enc, idx))

        return go

    def new_pass(batches: list[np.ndarray]) -> Callable[[], None]:
        def go() -> None:
            with torch.no_grad():
                for idx in batches:
                    b = scorer.batch(enc, idx)
                    fast_scoring.answer_logits_batch(model, scorer.injector.inputs(model, b), b, ids)

        return go

    bucketed = bucket_batches(lengths, args.batch_size)
    shuffled = np.random.default_rng(0).permutation(len(rows))
    unbucketed = [shuffled[i : i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    budget = fast_scoring.token_budget_batches(lengths, args.max_tokens)
    single = [np.asarray([i]) for i in range(min(args.single_rows, len(rows)))]
    keys = [(int(u), tuple(h)) for u, h in zip(rows.users, rows.histories, strict=True)]
    plan = prefix_reuse.plan_prefixes(enc, keys)

    def planned() -> np.ndarray:
        return prefix_reuse.score_yesno_planned(
            model, enc, plan, call, max_tokens=args.max_tokens, max_kv_tokens=args.max_kv_tokens
        )

    score_t = interleaved(
        {
            "old_bucketed": old_pass(bucketed),
            "old_random": old_pass(unbucketed),
            "new_bucketed": new_pass(budget),
            "new_random": new_pass(unbucketed),
            "new_prefix_groups": planned,
        },
        args.rounds,
        dev,
    )
    single_t = interleaved({"old_single": old_pass(single), "new_single": new_pass(single)}, args.rounds, dev)
    ref = scorer.score(model, enc, batch_size=args.batch_size)
    n = len(rows)
    out["score"] = {
        "old_bucketed_rows_s": n / med(score_t["old_bucketed"]),
        "old_random_rows_s": n / med(score_t["old_random"]),
        "new_bucketed_rows_s": n / med(score_t["new_bucketed"]),
        "new_random_rows_s": n / med(score_t["new_random"]),
        "new_prefix_groups_rows_s": n / med(score_t["new_prefix_groups"]),
        "old_single_rows_s": len(single) / med(single_t["old_single"]),
        "new_single_rows_s": len(single) / med(single_t["new_single"]),
        "old_bucketed_vs_random": ratio(score_t, "old_random", "old_bucketed"),
        "new_bucketed_vs_random": ratio(score_t, "new_random", "new_bucketed"),
        "new_vs_old_bucketed": ratio(score_t, "old_bucketed", "new_bucketed"),
        "new_prefix_groups_vs_old_bucketed": ratio(score_t, "old_bucketed", "new_prefix_groups"),
        "new_vs_old_single": ratio(single_t, "old_single", "new_single"),
        "bucketed_padding_share": 1 - real_tokens / padded_tokens(lengths, bucketed),
        "random_padding_share": 1 - real_tokens / padded_tokens(lengths, unbucketed),
        "token_budget_padding_share": 1 - real_tokens / padded_tokens(lengths, budget),
        "bucketing_token_ceiling": padded_tokens(lengths, unbucketed) / padded_tokens(lengths, bucketed),
        "prefix_groups": plan.n_groups,
        "prefix_grouped_rows": int((plan.group >= 0).sum()),
        "prefix_shared_token_share": plan.shared_tokens(lengths),
        "max_abs_diff_new_bucketed": float(
            np.abs(fast_scoring.score_yesno_rows(model, enc, call) - ref).max()
        ),
        "max_abs_diff_prefix_groups": float(np.abs(planned() - ref).max()),
    }

    # 2. LoRA training throughput (the old benchmark's order: ranking below then runs on the LoRA model)
    train_rows = rows.take(np.arange(min(args.train_rows, len(rows))))
    tenc = scorer.encode(train_rows, "seen", "text")
    peft_model, _ = add_lora(model)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    labels = torch.as_tensor(train_rows.labels, device=dev)
    tb = bucket_batches(tenc.lengths, args.train_batch_size, rng=np.random.default_rng(0))

    def train_epoch(fast: bool) -> Callable[[], None]:
        def go() -> None:
            peft_model.train()
            for idx in tb:
                b = scorer.batch(tenc, idx)
                if fast:
                    logits = fast_scoring.answer_logits_batch(
                        peft_model, scorer.injector.inputs(peft_model, b), b, ids
                    )
                    s = to_score(logits, scorer.score_mode)
                else:
                    s = scorer.forward(peft_model, b)
                bce_loss(s, labels[torch.as_tensor(idx)]).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        return go

    train_t = interleaved({"old": train_epoch(False), "new": train_epoch(True)}, args.rounds, dev)
    train_tokens = int(tenc.lengths.sum())
    out["train"] = {
        "old_rows_s": len(train_rows) / med(train_t["old"]),
        "new_rows_s": len(train_rows) / med(train_t["new"]),
        "old_tokens_s": train_tokens / med(train_t["old"]),
        "new_vs_old": ratio(train_t, "old", "new"),
        "batch_size": args.train_batch_size,
    }
    peft_model.eval()

    # 3. candidate ranking: shared prefix key/values vs full prompts
    rng = np.random.default_rng(1)
    tpl = bank.template("seen", "text")
    head, _, tail = tpl.partition("{target}")
    users = rng.choice(len(rows), size=min(args.users, len(rows)), replace=False)
    cand = rng.integers(0, len(titles), size=(len(users), args.candidates))
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
    embed_ids = peft_model.get_input_embeddings()
    n_pairs = len(users) * args.candidates
    full = EncodedPrompts(
        ids=[np.concatenate([p, s]) for p, ss in zip(prefix_ids, suffix_ids, strict=True) for s in ss],
        slot_names=(),
        slot_pos=np.zeros((n_pairs, 0), dtype=np.int64),
    )
    cand_plan = prefix_reuse.plan_prefixes(full, list(np.repeat(np.arange(len(users)), args.candidates)))

    def old_cached() -> np.ndarray:
        return np.concatenate(
            [
                score_with_prefix_cache(
                    peft_model, embed_ids, p, s, ids, batch_size=args.batch_size, device=dev
                )
                for p, s in zip(prefix_ids, suffix_ids, strict=True)
            ]
        )

    def new_per_user() -> np.ndarray:
        return np.concatenate(
            [
                prefix_reuse.score_yesno_candidates(
                    peft_model, p, s, ids, pad_id=scorer.pad_id, max_kv_tokens=args.max_kv_tokens, device=dev
                )
                for p, s in zip(prefix_ids, suffix_ids, strict=True)
            ]
        )

    def new_batched() -> np.ndarray:
        return prefix_reuse.score_yesno_planned(
            peft_model, full, cand_plan, call, max_tokens=args.max_tokens, max_kv_tokens=args.max_kv_tokens
        )

    def old_full() -> np.ndarray:
        return scorer.score(peft_model, full, batch_size=args.batch_size)

    def new_full() -> np.ndarray:
        return fast_scoring.score_yesno_rows(peft_model, full, call, max_tokens=args.max_tokens)

    rank_t = interleaved(
        {
            "old_full": old_full,
            "old_cached": old_cached,
            "new_full": new_full,
            "new_per_user": new_per_user,
            "new_batched": new_batched,
        },
        args.rounds,
        dev,
    )
    base = old_full()
    out["rank"] = {
        "candidates_per_user": args.candidates,
        "users": len(users),
        "prefix_tokens": float(np.mean([len(p) for p in prefix_ids])),
        "suffix_tokens": float(np.mean([len(s) for ss in suffix_ids for s in ss])),
        "planned_prefix_tokens": float(cand_plan.prefix_len.mean()),
        **{f"{k}_pairs_s": n_pairs / med(v) for k, v in rank_t.items()},
        "old_cached_vs_old_full": ratio(rank_t, "old_full", "old_cached"),
        "new_per_user_vs_old_full": ratio(rank_t, "old_full", "new_per_user"),
        "new_batched_vs_old_full": ratio(rank_t, "old_full", "new_batched"),
        "new_batched_vs_new_full": ratio(rank_t, "new_full", "new_batched"),
        "new_batched_vs_old_cached": ratio(rank_t, "old_cached", "new_batched"),
        "max_abs_diff_old_cached": float(np.abs(old_cached() - base).max()),
        "max_abs_diff_new_per_user": float(np.abs(new_per_user() - base).max()),
        "max_abs_diff_new_batched": float(np.abs(new_batched() - base).max()),
        "max_abs_diff_new_full": float(np.abs(new_full() - base).max()),
    }

    # 4. threads: the same new bucketed pass on 1 thread and on the default count, interleaved
    if not dev.startswith("cuda") and torch.get_num_threads() > 1:
        many = torch.get_num_threads()

        def on_threads(k: int) -> Callable[[], None]:
            go = new_pass(budget)

            def run() -> None:
                torch.set_num_threads(k)
                try:
                    go()
                finally:
                    torch.set_num_threads(many)

            return run

        th_t = interleaved({"one": on_threads(1), "many": on_threads(many)}, args.rounds, dev)
        out["threads_ab"] = {
            "threads": many,
            "one_thread_rows_s": n / med(th_t["one"]),
            "many_threads_rows_s": n / med(th_t["many"]),
            "many_vs_one": ratio(th_t, "one", "many"),
            "many_spread": max(th_t["many"]) / min(th_t["many"]),
            "one_spread": max(th_t["one"]) / min(th_t["one"]),
        }

    if dev.startswith("cuda"):
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if all(w in name for w in k.split())), None)
        fwd = 2 * n_params  # FLOPs per token, forward (attention scores ignored: prompts are short)
        out["gpu"] = {"name": name, "bf16_peak_tflops": peak}
        if peak:
            for kind in ("old", "new"):
                tok_s = real_tokens * out["score"][f"{kind}_bucketed_rows_s"] / n
                out["gpu"][f"mfu_score_{kind}"] = fwd * tok_s / (peak * 1e12)
            # LoRA: the frozen base still back-propagates activations (~2x forward); weight grads: LoRA only
            out["gpu"]["mfu_train"] = 2 * fwd * out["train"]["old_tokens_s"] / (peak * 1e12)
    print(json.dumps(out, indent=2))
    print()
    print(report(out))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))


def report(out: dict[str, Any]) -> str:
    """A Markdown table: old (the kit today) beside new (``benchbed.llm.yesno.fast_scoring``)."""
    s, t, r = out["score"], out["train"], out["rank"]
    rows = [
        ("scoring, length-bucketed: old 64 rows, new a token budget (rows/s)", s["old_bucketed_rows_s"],
         s["new_bucketed_rows_s"], s["new_vs_old_bucketed"]),
        ("scoring, random order, 64 rows (rows/s)", s["old_random_rows_s"], s["new_random_rows_s"], None),
        ("  bucketed / random order", f"{s['old_bucketed_vs_random']:.2f}x",
         f"{s['new_bucketed_vs_random']:.2f}x", None),
        ("scoring, one at a time (rows/s)", s["old_single_rows_s"], s["new_single_rows_s"],
         s["new_vs_old_single"]),
        ("scoring CTR rows, prefix reuse per (user, history) (rows/s)", None, s["new_prefix_groups_rows_s"],
         s["new_prefix_groups_vs_old_bucketed"]),
        ("LoRA training (rows/s)", t["old_rows_s"], t["new_rows_s"], t["new_vs_old"]),
        (f"{r['candidates_per_user']} candidates/user: full prompts (pairs/s)", r["old_full_pairs_s"],
         r["new_full_pairs_s"], None),
        (f"{r['candidates_per_user']} candidates/user: prefix reuse, per user (pairs/s)",
         r["old_cached_pairs_s"], r["new_per_user_pairs_s"], None),
        (f"{r['candidates_per_user']} candidates/user: prefix reuse, users batched (pairs/s)", None,
         r["new_batched_pairs_s"], r["new_batched_vs_old_cached"]),
        ("  prefix reuse / old full prompts", f"{r['old_cached_vs_old_full']:.2f}x",
         f"{r['new_batched_vs_old_full']:.2f}x", None),
        ("  prefix reuse / full prompts, same head", f"{r['old_cached_vs_old_full']:.2f}x",
         f"{r['new_batched_vs_new_full']:.2f}x", None),
        ("  max |score - old full-prompt score|", f"{r['max_abs_diff_old_cached']:.1e}",
         f"{r['max_abs_diff_new_batched']:.1e}", None),
    ]  # fmt: skip
    lines = [
        f"{out['backbone']} on {out['device']} ({out['dtype']}), {out['threads']} threads, "
        f"{out['rows']} rows of {out['source']} ({out['mean_prompt_tokens']:.0f} tokens/prompt), "
        f"median of {out['rounds']} rounds",
        "",
        "| measure | old (kit today) | new (yesno/fast_scoring.py) | new / old |",
        "|---|---:|---:|---:|",
    ]

    def cell(v: Any) -> str:
        return "—" if v is None else (v if isinstance(v, str) else f"{v:,.0f}")

    for name, old, new, gain in rows:
        lines.append(f"| {name} | {cell(old)} | {cell(new)} | {'' if gain is None else f'{gain:.2f}x'} |")
    lines += [
        "",
        f"padding: bucketed {s['bucketed_padding_share']:.1%}, random order {s['random_padding_share']:.1%}, "
        f"token budget {s['token_budget_padding_share']:.1%} -> bucketing can save at most "
        f"{s['bucketing_token_ceiling']:.2f}x of the token work",
        f"prefix groups in the CTR rows: {s['prefix_groups']} groups cover {s['prefix_grouped_rows']} of "
        f"{out['rows']} rows, {s['prefix_shared_token_share']:.0%} of the tokens are shared; max score "
        f"diff new bucketed {s['max_abs_diff_new_bucketed']:.1e}, prefix groups "
        f"{s['max_abs_diff_prefix_groups']:.1e}",
        f"ranking: prefix {r['prefix_tokens']:.0f} tokens (planned {r['planned_prefix_tokens']:.0f}), "
        f"suffix {r['suffix_tokens']:.0f}; max diff new full {r['max_abs_diff_new_full']:.1e}, "
        f"new per user {r['max_abs_diff_new_per_user']:.1e}",
    ]
    if "threads_ab" in out:
        a = out["threads_ab"]
        lines.append(
            f"threads: new bucketed {a['one_thread_rows_s']:,.0f} rows/s on 1 thread vs "
            f"{a['many_threads_rows_s']:,.0f} on {a['threads']} ({a['many_vs_one']:.2f}x; spread over rounds "
            f"max/min {a['one_spread']:.2f} vs {a['many_spread']:.2f})"
        )
    if "gpu" in out and out["gpu"].get("bf16_peak_tflops"):
        g = out["gpu"]
        lines.append(
            f"{g['name']}: MFU scoring old {g['mfu_score_old']:.1%} / new {g['mfu_score_new']:.1%}, "
            f"training {g['mfu_train']:.1%} (of {g['bf16_peak_tflops']} TFLOP/s bf16)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

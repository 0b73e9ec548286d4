"""Performance benchmark: constrained vs unconstrained beam search, and item-trie build time.

Run: ``python benchmarks/perf_generative.py [--users 256] [--batch 32] [--beams 10] [--threads 1]
[--device cpu|cuda]``. Not a test: it prints a table.

- Decoding: ``tiny`` backbone (or, with ``--device cuda``, a larger randomly initialised decoder: 8 layers,
  hidden 512), prompts of ML-100K's length (sequential template 0, 20 history ids, ~110 tokens), an item trie
  over an ML-100K-sized catalogue (1,682 items spelled "ml-100k <id>" with random ids from 1001). Throughput
  = test users per second (beams = 10), constrained (``beam_search(..., constrained=True)``) vs the same loop
  without the trie; the ratio is constrained / unconstrained. Peak memory: each mode runs in a fresh
  process; we report its peak RSS over the model-loaded baseline (CPU) or ``max_memory_allocated`` (CUDA).
  Unconstrained beams also say how many of them spelled a valid id.
- ``--trained <stage.pt>``: the same with the ``tiny`` weights p5-random trained on ML-100K (its cached
  ``generative-text`` stage) on real test users, where unconstrained beams also end with the end token.
- Trie: tokenizing and building the trie for 10k and 100k random ids (BERT WordPiece: 2-3 tokens per id).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchbed.generative.templates import load_generative_bank, render_pieces
from benchbed.llm.backbone.loader import build_tiny
from benchbed.llm.heads.constrained import ItemTrie, beam_search, build_item_trie
from benchbed.llm.injectors.prompts import collate, encode

N_ITEMS = 1682  # ML-100K


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(device: str) -> tuple[Any, Any]:
    if device.startswith("cuda"):
        model, tok = build_tiny(
            hidden_size=512,
            intermediate_size=1408,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=8,
        )
        return model.to(device).eval(), tok
    model, tok = build_tiny()
    return model.eval(), tok


def _prompts(tok: Any, n: int, rng: np.random.Generator) -> tuple[Any, list[int]]:
    bank = load_generative_bank("sequential")
    ids = rng.permutation(N_ITEMS) + 1001
    pieces = [
        render_pieces(
            bank,
            "seen:0",
            dataset="ml-100k",
            user=str(int(rng.integers(1, 944))),
            history=[str(i) for i in rng.choice(ids, 20, replace=False)],
            slots=False,
        )
        for _ in range(n)
    ]
    return encode(tok, pieces), ids.tolist()


def _real_prompts(tok: Any, n: int) -> tuple[Any, list[int]]:
    """ML-100K test users with the split's random index (what a trained ``generative-text`` stage knows)."""
    from benchbed.data.prepare import prepare_split
    from benchbed.generative.examples import eval_rows
    from benchbed.generative.indexing import get_index

    split = prepare_split("ml-100k", "leave-one-out").split
    index = get_index(split, "random", 0)
    rows = eval_rows(split, "test", history_len=20)
    bank = load_generative_bank("sequential")
    pieces = [
        render_pieces(
            bank,
            "seen:0",
            dataset="ml-100k",
            user=str(int(u)),
            history=[index.text(i) for i in h],
            slots=False,
        )
        for u, h in zip(rows.users[:n], rows.histories[:n], strict=True)
    ]
    return encode(tok, pieces), [int(index.text(i)) for i in range(split.n_items)]


def _decode_worker(args: dict[str, Any], queue: Any) -> None:
    torch.set_num_threads(args["threads"])
    device = args["device"]
    rng = np.random.default_rng(0)
    model, tok = _model(device)
    if args["trained"]:
        saved = torch.load(args["trained"], map_location="cpu", weights_only=False)["params"]
        model.load_state_dict({k.removeprefix("model."): v for k, v in saved.items()}, strict=False)
        enc, ids = _real_prompts(tok, args["users"])
    else:
        enc, ids = _prompts(tok, args["users"], rng)
    trie = build_item_trie(
        tok, {i: f"ml-100k {n}" for i, n in enumerate(ids)}, end_token=tok.sep_token_id, vocab_size=len(tok)
    )
    base = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    valid = beams = 0
    stats: dict[str, float] = {}
    for lo in range(0, args["users"], args["batch"]):
        rows = np.arange(lo, min(lo + args["batch"], args["users"]))
        batch = collate(enc, rows, tok.pad_token_id, device)
        emb = model.get_input_embeddings()(batch.input_ids)
        out = beam_search(
            model, emb, batch.attention_mask, trie, num_beams=args["beams"], constrained=args["constrained"]
        )
        valid += int((out.items >= 0).sum())
        beams += out.items.size
        for k, v in out.stats.items():
            stats[k] = stats.get(k, 0.0) + v
        stats["batches"] = stats.get("batches", 0.0) + 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else _rss_mb() - base
    queue.put(
        {
            "seconds": seconds,
            "users_per_s": args["users"] / seconds,
            "peak_mb": peak,
            "valid_share": valid / beams,
            "step_share": stats["overrides"] / max(stats["decisions"], 1),
            "ms_per_step": 1000 * seconds / max(stats["decode_steps"] + stats["batches"], 1),
            "prompt_tokens": float(np.mean(enc.lengths)),
        }
    )


def decode(args: argparse.Namespace, constrained: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    job = {
        "users": args.users,
        "batch": args.batch,
        "beams": args.beams,
        "threads": args.threads,
        "device": args.device,
        "constrained": constrained,
        "trained": args.trained,
    }
    proc = ctx.Process(target=_decode_worker, args=(job, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def trie_build(n_items: int, tok: Any) -> dict[str, float]:
    rng = np.random.default_rng(0)
    ids = rng.permutation(n_items) + 1001
    texts = {i: f"ml-1m {n}" for i, n in enumerate(ids)}
    start = time.perf_counter()
    encoded = tok(list(texts.values()), add_special_tokens=False)["input_ids"]
    t_tok = time.perf_counter() - start
    start = time.perf_counter()
    trie = ItemTrie.build(
        dict(zip(texts, encoded, strict=True)), end_token=tok.sep_token_id, vocab_size=len(tok)
    )
    t_build = time.perf_counter() - start
    return {
        "items": n_items,
        "tokenize_s": t_tok,
        "build_s": t_build,
        "nodes": trie.n_nodes,
        "depth": trie.depth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--beams", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    parser.add_argument(
        "--trained",
        default=None,
        help="a generative-text stage.pt of `tiny` on ML-100K (<cache>/llm-stages/generative-text-*/): "
        "decode real test users with a trained model, so unconstrained beams also finish",
    )
    args = parser.parse_args()
    console = Console(width=max(120, Console().width))  # numbers must not be cut
    console.print(
        f"{platform.processor() or platform.machine()} · torch {torch.__version__} · device {args.device} "
        f"· {args.threads} thread(s) · {args.users} users, batch {args.batch}, {args.beams} beams"
    )
    con = decode(args, True)
    unc = decode(args, False)
    table = Table(
        title="beam search over ML-100K-sized ids (tiny backbone)"
        if args.device == "cpu"
        else "beam search (8-layer, hidden 512 random decoder)"
    )
    for col in (
        "mode",
        "users/s",
        "ms/forward",
        "peak MB",
        "valid beams",
        "overridden steps",
        "prompt tokens",
    ):
        table.add_column(col, justify="right")
    for name, r in (("constrained", con), ("unconstrained", unc)):
        table.add_row(
            name,
            f"{r['users_per_s']:.1f}",
            f"{r['ms_per_step']:.0f}",
            f"{r['peak_mb']:.0f}",
            f"{r['valid_share']:.1%}",
            f"{r['step_share']:.1%}",
            f"{r['prompt_tokens']:.0f}",
        )
    console.print(table)
    console.print(
        f"throughput ratio constrained / unconstrained: {con['users_per_s'] / unc['users_per_s']:.2f}"
    )
    _, tok = build_tiny()
    tries = [trie_build(n, tok) for n in (10_000, 100_000)]
    t2 = Table(title="item trie build (BERT WordPiece ids, 'ml-1m <id>')")
    for col in ("items", "tokenize s", "build s", "nodes", "depth"):
        t2.add_column(col, justify="right")
    for r in tries:
        t2.add_row(
            f"{r['items']:,}",
            f"{r['tokenize_s']:.2f}",
            f"{r['build_s']:.2f}",
            f"{r['nodes']:,}",
            str(r["depth"]),
        )
    console.print(t2)
    if args.json:
        console.print(json.dumps({"constrained": con, "unconstrained": unc, "tries": tries}, indent=1))


if __name__ == "__main__":
    main()

"""CLLM4Rec (seed 001): the mechanism on planted reviews, frozen parts, stages, heads, variants, bad input.

The planted data: 4 clusters with 6 word lexicons; each user likes one cluster and has 4 of its 6 head items
in train. Every cluster also has 10 rare items whose *only* training interaction comes from a user of another
cluster (so interactions alone point the wrong way), while their reviews use their own cluster's words.
Valid/test rows are rare items of the user's own cluster. CLLM4Rec can place them through the content LLM
and mutual regularisation; LLM-CF (no content, no MR) cannot; shuffling the review-to-item assignment (the
negative control) removes the gain.

The backbone is a real GPT-2 model folder with a word-level vocabulary, written by the test and loaded by
path, pretrained for 300 steps on topic sentences (a prompt naming a topic word, then words of the topic):
the frozen LM's "knowledge" that CLLM4Rec relies on. A random-init LM carries no signal from a prompt token
to the review words (measured: no separation of content embeddings), which is why the ``tiny`` preset only
tests the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchbed.api import RunContext, TaskSetup
from benchbed.data.enrich import add_flags, add_histories
from benchbed.data.schema import InteractionData, Split
from benchbed.errors import ConfigError
from benchbed.llm.backbone.tiny_gpt2 import build_tiny_gpt2
from benchbed.methods import build_method
from benchbed.methods.cllm4rec.docs import CONTENT_PROMPT, REC_PROMPT, Corpus, DocBatch
from benchbed.methods.cllm4rec.method import CLLM4Rec
from benchbed.methods.cllm4rec.model import COLLAB, CLLM4RecCore
from benchbed.methods.cllm4rec.training import frozen_digest
from benchbed.tasks.topk import TopKTask

LEX = [
    "apple cherry lemon grape melon peach".split(),
    "river ocean lake rain water wave".split(),
    "guitar piano drum song music violin".split(),
    "soccer tennis golf hockey race team".split(),
]
NOISE = "very good item really nice with the and".split()
TEMPLATE_WORDS = "has interacted with writes following review for will interact thing : , .".split()
HEAD, RARE = 6, 10
PER = HEAD + RARE
TOPK = TaskSetup(task="topk", feedback="interactions")
# mechanism budget: the paper's lr x 10 (1e-2 / 1e-3) so 35 epochs in all move rows seen once per epoch
FAST = {
    "warmup_epochs": 10,
    "pretrain_epochs": 20,
    "finetune_epochs": 5,
    "lr_pretrain": 1e-2,
    "lr_finetune": 1e-3,
    "batch_size": 40,
}


def _frames_to_split(frames: dict[str, pd.DataFrame], items: pd.DataFrame, n_users: int) -> Split:
    t = 0
    for f in frames.values():
        f["rating"], f["label"] = 5.0, np.int8(1)
        f["timestamp"] = np.arange(t, t + len(f), dtype=np.int64)
        t += len(f)
    cols = ["user", "item", "rating", "label", "timestamp", "review"]
    frames = {k: f[cols].astype({"user": "int64", "item": "int64"}) for k, f in frames.items()}
    inter = pd.concat(frames.values(), ignore_index=True)
    users = pd.DataFrame({"raw_id": [str(u) for u in range(n_users)]})
    data = InteractionData(name="planted-reviews", interactions=inter, items=items, users=users).validate()
    add_histories(frames, 10)
    for part in ("valid", "test"):
        add_flags(frames[part], frames["train"], data, 3)
    split = Split(data=data, protocol="planted", params={}, **frames)
    split.hash = split.compute_hash()
    return split


def planted_reviews(seed: int = 0, users_per_cluster: int = 20) -> Split:
    rng = np.random.default_rng(seed)
    k = len(LEX)
    n_users = k * users_per_cluster
    cluster = np.arange(n_users) % k

    def review(c: int) -> str:
        words = [*rng.choice(LEX[c], 4), *rng.choice(NOISE, 2)]
        rng.shuffle(words)
        return " ".join(words)

    rows: dict[str, list[tuple[int, int, str]]] = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        c = int(cluster[u])
        for j in rng.choice(HEAD, 4, replace=False):
            rows["train"].append((u, c * PER + int(j), review(c)))
        v, te = rng.choice(RARE, 2, replace=False) + HEAD
        rows["valid"].append((u, c * PER + int(v), ""))
        rows["test"].append((u, c * PER + int(te), ""))
    for c in range(k):  # each rare item: one training interaction, by a user of another cluster
        for r in range(RARE):
            rows["train"].append(
                (int(rng.choice(np.flatnonzero(cluster != c))), c * PER + HEAD + r, review(c))
            )
    frames = {p: pd.DataFrame(r, columns=["user", "item", "review"]) for p, r in rows.items()}
    n_items = k * PER
    items = pd.DataFrame({"raw_id": [str(i) for i in range(n_items)], "title": ["thing"] * n_items})
    return _frames_to_split(frames, items, n_users)


def word_gpt2(path: Path, *, pretrain_steps: int = 300, tie: bool = True, extra_tokens: int = 0) -> str:
    """A 2-layer GPT-2 (32-d) with a word-level tokenizer, saved as a real model folder (optionally with
    a short LM pretraining on topic sentences)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", *sorted({w for lex in LEX for w in lex} | set(NOISE) | set(TEMPLATE_WORDS))]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]")
    config = GPT2Config(
        vocab_size=len(words),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    rng = np.random.default_rng(1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(pretrain_steps):
        texts = []
        for _ in range(32):
            c = int(rng.integers(len(LEX)))
            words_c = [*rng.choice(LEX[c], 4), *rng.choice(NOISE, 2)]
            rng.shuffle(words_c)
            texts.append(f"thing writes the following review for {rng.choice(LEX[c])} : " + " ".join(words_c))
        ids = torch.tensor(tok(texts)["input_ids"])
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    if extra_tokens:
        tok.add_tokens([f"extra{i}" for i in range(extra_tokens)])
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def ctx_at(cache: Path, log=None) -> RunContext:
    return RunContext(setup=TOPK, seed=0, cache_dir=cache, log=log)


def rank_percentile(method: CLLM4Rec, rows: pd.DataFrame) -> float:
    """Mean share of rankable items scored above the held-out item (0 = first, 0.5 = random)."""
    users = rows["user"].to_numpy()
    scores = method.score_all(users, [[] for _ in users])
    target = scores[np.arange(len(users)), rows["item"].to_numpy()]
    return float(((scores > target[:, None]).sum(1) / np.isfinite(scores).sum(1)).mean())


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cllm4rec")
    split = planted_reviews()
    backbone = word_gpt2(root / "gpt2-words")
    fits = {}
    for name, params in {
        "cllm4rec": {},
        "llm-cf": {"variant": "llm-cf"},
        "shuffled": {"shuffle_content": True},
    }.items():
        method = CLLM4Rec(backbone=backbone, **FAST, **params)
        method.fit(split, ctx_at(root / f"cache-{name}"))
        fits[name] = method
    return split, backbone, root, fits


def test_reviews_place_rare_items_that_interactions_mislead_and_shuffled_reviews_remove_it(planted):
    split, _, _, fits = planted
    pct = {name: rank_percentile(m, split.test) for name, m in fits.items()}
    assert pct["cllm4rec"] < 0.47, pct  # better than random (0.5): the content LLM reached the item rows
    assert pct["llm-cf"] - pct["cllm4rec"] > 0.15, pct  # LLM-CF only has the misleading interaction
    assert pct["shuffled"] - pct["cllm4rec"] > 0.1, pct  # negative control: the gain needs the right reviews
    assert fits["cllm4rec"].record_info()["content_source"] == "reviews (review)"
    assert fits["llm-cf"].record_info()["content_source"] == "none"


def test_frozen_parts_are_bit_identical_and_training_items_are_never_ranked(planted):
    split, backbone, _, fits = planted
    method = fits["cllm4rec"]
    info = method.record_info()
    from transformers import AutoModelForCausalLM

    fresh = frozen_digest(AutoModelForCausalLM.from_pretrained(backbone))
    for name in ("cllm4rec-warmup", "cllm4rec-pretrain", "cllm4rec-finetune"):
        before, after = info[name]["frozen_sha256"]
        assert before == after == fresh, name
    assert frozen_digest(method.core.model) == fresh
    task = TopKTask(ks=[10], metrics=["recall", "ndcg"], exclude="none")  # the method masks by itself
    result = task.evaluate(method, split, ctx_at(Path(info["cllm4rec-finetune"]["dir"]).parent))
    train = split.train.groupby("user")["item"].apply(set).to_dict()
    for user, ranked in zip(result.predictions["user"], result.predictions["ranked"], strict=True):
        ranked = [i for i in ranked if i >= 0]
        assert len(ranked) >= 10 and all(0 <= i < split.n_items for i in ranked)
        assert not set(ranked) & train[user]
    scores = method.score_all(np.arange(split.n_users), [[] for _ in range(split.n_users)])
    for u in range(split.n_users):  # every non-training item is rankable: no invalid outputs by construction
        assert np.isneginf(scores[u, list(train[u])]).all()
        assert np.isfinite(np.delete(scores[u], list(train[u]))).all()


def test_stages_load_from_the_cache_and_prerec_shares_stages_0_1(planted):
    split, backbone, root, fits = planted
    said: list[str] = []
    again = CLLM4Rec(backbone=backbone, **FAST)
    again.fit(split, ctx_at(root / "cache-cllm4rec", said.append))
    info = again.record_info()
    assert all(info[s]["loaded"] for s in ("cllm4rec-warmup", "cllm4rec-pretrain", "cllm4rec-finetune"))
    users = np.arange(split.n_users)
    empty: list[list[int]] = [[] for _ in users]
    np.testing.assert_array_equal(again.score_all(users, empty), fits["cllm4rec"].score_all(users, empty))
    prerec = CLLM4Rec(backbone=backbone, variant="llm-prerec", **FAST)
    prerec.fit(split, ctx_at(root / "cache-cllm4rec"))
    pinfo = prerec.record_info()
    assert pinfo["cllm4rec-warmup"]["loaded"] and pinfo["cllm4rec-pretrain"]["loaded"]
    assert "cllm4rec-finetune" not in pinfo
    assert np.isfinite(prerec.score_all(users[:5], empty[:5])).any(axis=1).all()


def test_templates_match_the_extension_and_the_prompt_cache_equals_one_pass():
    model, tok = build_tiny_gpt2()
    model.eval()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied GPT-2 head
    split = planted_reviews(users_per_cluster=2)
    from benchbed.methods.cllm4rec.method import _extension

    class _BB:
        name, tokenizer = "tiny", tok

    ext = _extension(model, _BB(), split, 0)  # type: ignore[arg-type]
    assert ext.head == "tied"
    corpus = Corpus(ext, tok, max_length=1024, pad_id=tok.pad_token_id)
    items = np.array([3, 1, 7])
    rec_text = REC_PROMPT.format(
        user=ext.token("user", 2), items=" ".join(ext.token("item", i) for i in items)
    )
    assert corpus.rec_prompt(2, items) == ext.encode(tok, [rec_text]).ids[0].tolist()
    content_text = CONTENT_PROMPT.format(user=ext.token("user", 2), item=ext.token("item", 5))
    assert corpus.content_prompt(2, 5) == ext.encode(tok, [content_text]).ids[0].tolist()
    core = CLLM4RecCore(model, ext, code_shift=False, mr_form="code")
    batch = corpus.collab_batch(np.array([0, 1]), [np.array([4, 2, 9]), np.array([5])])
    states, _ = core._main_states(batch, COLLAB)
    full_ids = torch.cat([batch.prompt, batch.main], dim=1)
    full_mask = torch.cat([batch.prompt_mask, batch.main_mask], dim=1)
    body = model.base_model
    full = body(inputs_embeds=ext.embed(model, full_ids, COLLAB), attention_mask=full_mask).last_hidden_state
    lp = batch.prompt.shape[1]
    torch.testing.assert_close(states, full[:, lp - 1 : lp - 1 + states.shape[1]])
    shifted = CLLM4RecCore(model, ext, code_shift=True, mr_form="code")
    s2, t2 = shifted._main_states(batch, COLLAB)
    assert s2.shape[1] == states.shape[1] - 1 and t2.shape[1] == batch.main.shape[1] - 1
    assert isinstance(batch, DocBatch)


def test_untied_backbone_learns_a_separate_item_head(tmp_path: Path):
    split = planted_reviews(users_per_cluster=4)
    backbone = word_gpt2(tmp_path / "untied", pretrain_steps=0, tie=False)
    method = CLLM4Rec(backbone=backbone, warmup_epochs=1, pretrain_epochs=1, finetune_epochs=1)
    method.fit(split, ctx_at(tmp_path / "cache"))
    ext = method.core.ext
    assert ext.head == "separate" and method.record_info()["head"] == "separate"
    head = method.core.rec_head.matrix()
    assert head is ext.out["collab__item"] and head is not ext.type_rows("item", "collab")
    from benchbed.llm.backbone.loader import load_backbone
    from benchbed.methods.cllm4rec.method import _extension

    bb = load_backbone(backbone)
    init = _extension(bb.model, bb, split, 0)  # the same seeded initialisation as the fit's
    assert torch.equal(init.out["content__item"], ext.out["content__item"])  # never trained
    assert not torch.equal(init.out["collab__item"], head)  # the separate item head learned


def test_variants_train_what_they_say(tmp_path: Path):
    split = planted_reviews(users_per_cluster=3)
    backbone = word_gpt2(tmp_path / "bb", pretrain_steps=0)
    one = {"warmup_epochs": 1, "pretrain_epochs": 1, "finetune_epochs": 1}
    from transformers import AutoModelForCausalLM

    fresh = frozen_digest(AutoModelForCausalLM.from_pretrained(backbone))
    ftall = CLLM4Rec(backbone=backbone, variant="llm-ftall", **one)
    ftall.fit(split, ctx_at(tmp_path / "c1"))
    assert frozen_digest(ftall.core.model) != fresh  # the whole LM trained
    assert ftall.trainable_parameters() > sum(p.numel() for p in ftall.core.ext.parameters())
    cf = CLLM4Rec(backbone=backbone, variant="llm-cf", **one)
    cf.fit(split, ctx_at(tmp_path / "c2"))
    assert "cllm4rec-warmup" not in cf.record_info() and frozen_digest(cf.core.model) == fresh
    fixord = CLLM4Rec(backbone=backbone, variant="llm-fixord", **one)
    fixord.fit(split, ctx_at(tmp_path / "c3"))
    batches = fixord.batches().documents(
        0, 1, fixord.train_items, None, reorder=fixord.eff["reorder_pretrain"]
    )
    for b in batches:  # item-id order: the documents' main items ascend
        for row, mask in zip(b.main, b.main_mask, strict=True):
            ids = row[mask.bool()].tolist()
            assert ids == sorted(ids)
    assert list(fixord.prompt_items(0)) == sorted(fixord.train_items[0].tolist())


def test_bad_inputs_are_one_line_errors_or_recorded_fallbacks(tmp_path: Path):
    with pytest.raises(ConfigError, match="encoder-only"):
        build_method("cllm4rec", {"backbone": "minilm"})
    from benchbed.llm.backbone.loader import minilm_dir

    with pytest.raises(ConfigError, match="encoder-only"):  # the same encoder given by path: refused at fit
        CLLM4Rec(backbone=str(minilm_dir())).fit(planted_reviews(users_per_cluster=1), ctx_at(tmp_path / "e"))
    with pytest.raises(ConfigError, match="variant"):
        CLLM4Rec(variant="llm-best")
    with pytest.raises(ConfigError, match="mask_ratio"):
        CLLM4Rec(mask_ratio=1.5)
    split = planted_reviews(users_per_cluster=2)
    big = word_gpt2(tmp_path / "big", pretrain_steps=0, extra_tokens=3)
    with pytest.raises(ConfigError, match="tokenizer has"):
        CLLM4Rec(backbone=big).fit(split, ctx_at(tmp_path / "c0"))
    small = word_gpt2(tmp_path / "small", pretrain_steps=0)
    one = {"backbone": small, "warmup_epochs": 1, "pretrain_epochs": 1, "finetune_epochs": 1}
    no_reviews = planted_reviews(users_per_cluster=2)
    for f in no_reviews.frames().values():
        f["review"] = ""
    with pytest.raises(ConfigError, match="no review column"):
        CLLM4Rec(content="reviews", **one).fit(no_reviews, ctx_at(tmp_path / "c1"))
    no_reviews.data.items["title"] = ""
    said: list[str] = []
    method = CLLM4Rec(**one)
    method.fit(no_reviews, ctx_at(tmp_path / "c2", said.append))
    info = method.record_info()
    assert info["ran_as"] == "llm-cf" and "ran as LLM-CF" in info["content_source"]
    assert any("running as LLM-CF" in m for m in said)
    # a user with no training items: counted in the record, and still scored (prompt without history)
    lonely = planted_reviews(users_per_cluster=2)
    lonely.train = lonely.train[lonely.train["user"] != 0].reset_index(drop=True)
    method = CLLM4Rec(**one)
    said.clear()
    method.fit(lonely, ctx_at(tmp_path / "c3", said.append))
    assert method.record_info()["users_without_train_items"] == 1
    assert any("1 user(s) without training items" in m for m in said)
    assert np.isfinite(method.score_all(np.array([0]), [[]])).all()


def test_board_metrics_equal_the_authors_util_formulas_on_random_scores():
    """recall_min@K and ndcg@K (benchbed.metrics) against src/libs/util.py's Recall_at_k / NDCG_at_k,
    rewritten here from their definitions: hits / min(K, |T|) and DCG over IDCG of min(K, |T|) positions,
    mean over users, training items at -inf before the cut."""
    from benchbed.metrics import hits_from_rankings, resolve
    from benchbed.metrics.ranking import top_k

    rng = np.random.default_rng(3)
    n_users, n_items = 50, 300
    scores = rng.random((n_users, n_items))
    truth = rng.random((n_users, n_items)) < 0.05
    truth[:, 0] = True  # every user has a test item
    train = (rng.random((n_users, n_items)) < 0.1) & ~truth
    scores[train] = -np.inf
    ranked, _ = top_k(scores, 100)
    hits = hits_from_rankings(ranked, [np.flatnonzero(t) for t in truth])
    n_pos = truth.sum(1)
    for k in (20, 40, 100):
        top = np.argsort(-scores, axis=1)[:, :k]
        got = truth[np.arange(n_users)[:, None], top]
        recall = (got.sum(1) / np.minimum(k, n_pos)).mean()
        w = 1.0 / np.log2(np.arange(2, k + 2))
        ndcg = ((got * w).sum(1) / np.array([w[: min(k, n)].sum() for n in n_pos])).mean()
        assert resolve(f"recall_min@{k}").fn(hits, n_pos, k).value == pytest.approx(recall, rel=1e-12)
        assert resolve(f"ndcg@{k}").fn(hits, n_pos, k).value == pytest.approx(ndcg, rel=1e-12)


def micro_setting(session_cache) -> tuple[Split, dict]:
    """The micro CLLM4Rec setting of the stage-identity conformance test (12 users, an untrained word GPT-2,
    one epoch per stage: seconds per fit), built once per session."""

    def build() -> tuple[Split, dict]:
        backbone = word_gpt2(session_cache.dir("cllm4rec-micro") / "gpt2-words", pretrain_steps=0)
        params = {"backbone": backbone, "warmup_epochs": 1, "pretrain_epochs": 1, "finetune_epochs": 1}
        return planted_reviews(users_per_cluster=3), {**params, "batch_size": 8, "max_valid_users": 4}

    return session_cache.get("cllm4rec-micro", build)


def test_a_stage_is_reused_only_under_the_settings_that_trained_it(session_cache, tmp_path: Path):
    """code_shift changes the warm-up's loss and mask_train the fine-tuning's validation metric: on a cache
    that holds the default fit's stages, neither may load the default's stage (issue 22, item 2). Whether a
    stage loads depends on its key alone, so the micro setting tells as much as the mechanism budget."""
    split, micro = micro_setting(session_cache)
    cache = tmp_path / "cache"
    default = CLLM4Rec(**micro)
    default.fit(split, ctx_at(cache))
    assert not any(default.record_info()[s]["loaded"] for s in ("cllm4rec-warmup", "cllm4rec-finetune"))
    shifted = CLLM4Rec(**micro, code_shift=True)
    shifted.fit(split, ctx_at(cache))
    assert not shifted.record_info()["cllm4rec-warmup"]["loaded"]
    unmasked = CLLM4Rec(**micro, mask_train=False)
    unmasked.fit(split, ctx_at(cache))
    info = unmasked.record_info()
    assert info["cllm4rec-warmup"]["loaded"] and info["cllm4rec-pretrain"]["loaded"]
    assert not info["cllm4rec-finetune"]["loaded"]

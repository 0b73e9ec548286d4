"""CoLLM's DIN (``din`` on ctr): its history rule, its forward pass, and target attention on planted data.

1. History: CoLLM's files give a row the user's earlier positives in *file* order, so a positive rated in the
   same second but earlier in the file counts (the split's own ``history`` column keeps only earlier
   timestamps). Hand-worked on a tiny pre-split directory in RecBole's atomic format.
2. Forward pass: the authors' shapes (three 64-dim tables, attention 256-64-16-1, MLP 192-200-80-1), Dice
   starting as ``sigmoid(bn(x)) * x``, unnormalised attention with padding at 0, separate history table.
3. Planted data where only target attention can work: a row is positive exactly when its target's partner
   item is in its history; no user or item carries the label. DIN separates the test rows; the same trained
   model scored with histories shuffled across rows falls to chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from benchbed.api import RunContext, ScoreRequests, TaskSetup
from benchbed.baselines.collm_din import CoLLMDIN, Dice
from benchbed.baselines.collm_history import RowHistories, file_order_histories
from benchbed.baselines.recbole_files import DataPlan, write_atomic_files
from benchbed.data.prepare import prepare_split
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.methods import build_method

CTR = TaskSetup(task="ctr", feedback="labels")
HEADER = "user_id:token\titem_id:token\tlabel:float\ttimestamp:float"


def write_presplit(root: Path, name: str, parts: dict[str, list[tuple[str, str, int, int]]]) -> str:
    d = root / name
    d.mkdir()
    for part, rows in parts.items():
        lines = [HEADER] + [f"{u}\t{i}\t{lab}\t{t}" for u, i, lab, t in rows]
        (d / f"{name}.{part}.inter").write_text("\n".join(lines) + "\n")
    return str(d)


# u1 rates b, c, d in the same second (in that file order), f and g in one second, h, i, j in one second;
# z is listed last in train but is the oldest row. u2 shares a second with u1 and must never leak into u1.
TINY = {
    "train": [
        ("u1", "a", 1, 10),
        ("u1", "b", 1, 20),
        ("u1", "c", 0, 20),
        ("u1", "d", 1, 20),
        ("u2", "x", 1, 20),
        ("u1", "e", 1, 30),
        ("u1", "z", 1, 5),
    ],
    "valid": [("u1", "f", 1, 40), ("u1", "g", 1, 40)],
    "test": [("u1", "h", 0, 50), ("u1", "i", 1, 50), ("u1", "j", 1, 50)],
}
# (user, item) -> earlier positives in file order, worked by hand (z first: time decides before the file)
EXPECTED = {
    ("u1", "z"): [],
    ("u1", "a"): ["z"],
    ("u1", "b"): ["z", "a"],
    ("u1", "c"): ["z", "a", "b"],  # b: same second, earlier in the file
    ("u1", "d"): ["z", "a", "b"],  # c is a negative
    ("u2", "x"): [],
    ("u1", "e"): ["z", "a", "b", "d"],
    ("u1", "f"): ["z", "a", "b", "d", "e"],
    ("u1", "g"): ["z", "a", "b", "d", "e", "f"],
    ("u1", "h"): ["z", "a", "b", "d", "e", "f", "g"],
    ("u1", "i"): ["z", "a", "b", "d", "e", "f", "g"],  # h is a negative
    ("u1", "j"): ["z", "a", "b", "d", "e", "f", "g", "i"],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return prepare_split(write_presplit(tmp_path_factory.mktemp("tiny"), "tiny", TINY)).split


def _raw(split: Split, kind: str, ids: Any) -> list[str]:
    table = split.data.users if kind == "user" else split.data.items
    return [str(table["raw_id"].iloc[int(i)]) for i in ids]


def test_history_counts_same_second_positives_earlier_in_the_file(tiny: Split, tmp_path: Path) -> None:
    width = 6
    hist = file_order_histories(tiny.frames(), width)
    got, strict = {}, {}
    for stage, frame in tiny.frames().items():
        for k, (u, i) in enumerate(zip(frame["user"], frame["item"], strict=True)):
            key = (_raw(tiny, "user", [u])[0], _raw(tiny, "item", [i])[0])
            got[key] = _raw(tiny, "item", hist[stage][k])
            strict[key] = _raw(tiny, "item", frame["history"].iloc[k])
    assert got == {key: h[-width:] for key, h in EXPECTED.items()}
    # the split's own column keeps only earlier seconds: d does not see b, j does not see i
    assert strict[("u1", "d")] == ["z", "a"] and strict[("u1", "j")][-2:] == ["f", "g"]

    # what RecBole trains on (the atomic files of history='file') and what scoring looks up are the same lists
    plan = DataPlan(feedback="labels", pointwise=True, sequential=True, max_len=width, history_rule="file")
    files = write_atomic_files(tiny, plan, tmp_path / "atomic")
    train = pd.read_csv(files.root / files.name / f"{files.name}.train.inter", sep="\t", dtype=str)
    written = {
        (_raw(tiny, "user", [u])[0], _raw(tiny, "item", [i])[0]): _raw(tiny, "item", str(h).split())
        for u, i, h in zip(
            train["user_id:token"],
            train["item_id:token"],
            train["item_id_list:token_seq"].fillna(""),
            strict=True,
        )
    }
    assert written == {k: got[k] for k in written} and len(written) == len(TINY["train"])
    test = tiny.test
    looked_up = RowHistories(tiny.frames(), width).lookup(
        test["user"].to_numpy(), test["item"].to_numpy(), [list(h) for h in test["history"]]
    )
    assert [_raw(tiny, "item", h) for h in looked_up] == [EXPECTED[("u1", i)][-width:] for i in "hij"]
    # a pair that is no row of the split keeps the history its request carries
    assert RowHistories(tiny.frames(), width).lookup(np.array([1]), np.array([0]), [[7]]) == [[7]]


class _Items:
    def __init__(self, n_users: int, n_items: int) -> None:
        self.n = {"user_id": n_users, "item_id": n_items}

    def num(self, field: str) -> int:
        return self.n[field]


def _model(n_users: int = 7, n_items: int = 11, dim: int = 192) -> CoLLMDIN:
    config = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "LIST_SUFFIX": "_list",
        "ITEM_LIST_LENGTH_FIELD": "item_length",
        "NEG_PREFIX": "neg_",
        "MAX_ITEM_LIST_LENGTH": 10,
        "LABEL_FIELD": "label",
        "device": torch.device("cpu"),
        "embedding_size": dim,
        "mlp_hidden_size": [200, 80],
        "dropout_prob": 0.2,
    }
    torch.manual_seed(0)
    return CoLLMDIN(config, _Items(n_users, n_items))


def test_forward_has_the_authors_shapes_and_behaviour() -> None:
    model = _model()
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(256, 64), (64, 16), (16, 1), (192, 200), (200, 80), (80, 1)]
    tables = [model.user_embedding, model.item_embedding, model.history_embedding]
    assert [tuple(t.weight.shape) for t in tables] == [(7, 64), (11, 64), (11, 64)]
    assert model.history_embedding.weight.data_ptr() != model.item_embedding.weight.data_ptr()
    assert all(
        float(m.bias.detach().abs().max()) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    dices = [m for m in model.modules() if isinstance(m, Dice)]
    assert [d.alpha.numel() for d in dices] == [64, 200, 80]
    assert all(float(d.alpha.detach().abs().sum()) == 0 for d in dices)
    assert [m.p for m in model.scorer if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2]

    model.eval()
    user, item = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    seq = torch.tensor([[1, 2, 3, 0, 0, 0, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0] * 10])
    with torch.no_grad():
        feats = model.features(user, item, seq)
        assert feats.shape == (3, 192) and model(user, item, seq).shape == (3,)
        assert torch.equal(feats[:, :64], model.item_embedding(item))
        assert torch.equal(feats[:, 128:], model.user_embedding(user))
        # unnormalised attention: the pooled history is sum(score * h) over real positions, 0 if none
        h = model.history_embedding(seq)
        scores = model.attention.scores(model.item_embedding(item), h, seq == 0)
        assert torch.allclose(feats[:, 64:128], (scores.unsqueeze(-1) * h).sum(1), atol=1e-6)
        assert float(scores[seq == 0].abs().max()) == 0 and float(feats[2, 64:128].abs().max()) == 0
        assert not torch.allclose(scores[0, :3].sum(), torch.tensor(1.0))  # no softmax
        # Dice with alpha 0 is sigmoid(bn(x)) * x (eval mode: running statistics)
        x = torch.randn(5, 200)
        dice = dices[1]
        assert torch.allclose(dice(x), torch.sigmoid(dice.bn(x)) * x)
        # the history table, not the item table, feeds the pooling; padding rows change nothing
        before = model(user, item, seq)
        model.history_embedding.weight[0] += 5.0
        assert torch.allclose(model(user, item, seq), before)
        model.history_embedding.weight[2] += 1.0
        changed = model(user, item, seq)
        assert not torch.allclose(changed[0], before[0]) and torch.allclose(changed[1:], before[1:])


def planted_partners(rng: np.random.Generator, rows: int, n_pairs: int = 10) -> tuple[torch.Tensor, ...]:
    """Items 1..2P come in pairs; a row is positive iff its target's partner is among its 5 history items.
    Users, targets and history items are drawn independently of the label: only target x history tells."""
    items = rng.integers(1, 2 * n_pairs + 1, rows)
    partner = ((items - 1) ^ 1) + 1
    label = rng.random(rows) < 0.5
    seq = np.zeros((rows, 10), dtype=np.int64)  # 0 = padding (left), as RecBole pads
    for r in range(rows):
        pool = [i for i in range(1, 2 * n_pairs + 1) if i not in (items[r], partner[r])]
        hist = list(rng.choice(pool, 5 - int(label[r]), replace=False)) + ([partner[r]] if label[r] else [])
        seq[r, 10 - len(hist) :] = rng.permutation(hist)
    users = rng.integers(1, 30, rows)
    return (
        torch.tensor(users),
        torch.tensor(items),
        torch.tensor(seq),
        torch.tensor(label, dtype=torch.float32),
    )


def test_target_attention_separates_planted_partners() -> None:
    rng = np.random.default_rng(0)
    train, test = planted_partners(rng, 1500), planted_partners(rng, 500)
    model = _model(n_users=30, n_items=21, dim=48)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.nn.BCEWithLogitsLoss()
    order = torch.Generator().manual_seed(0)
    for _ in range(6):
        model.train()
        for batch in torch.randperm(1500, generator=order).split(128):
            opt.zero_grad()
            loss(model(*(x[batch] for x in train[:3])), train[3][batch]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        auc = roc_auc_score(test[3], model(*test[:3]))
        shuffled = test[2][torch.randperm(500, generator=order)]  # each row gets another row's history
        control = roc_auc_score(test[3], model(test[0], test[1], shuffled))
    assert auc > 0.9, f"planted AUC {auc:.3f}"
    assert 0.35 < control < 0.65, f"shuffled-history AUC {control:.3f}"


def test_din_on_ctr_is_collms_and_scores_the_file_order_history(tiny: Split, tmp_path: Path) -> None:
    """``din`` on ctr trains CoLLMDIN through RecBole on file-order histories and scores with them; RecBole's
    DIN stays reachable."""
    method = build_method("din", {"epochs": 1, "dim": 12, "batch_size": 4}, task="ctr")
    assert method.params["arch"] == "collm" and method.params["mlp_hidden"] == [200, 80]
    ctx = RunContext(setup=CTR, seed=0, cache_dir=tmp_path / "cache", work_dir=tmp_path / "work")
    method.fit(tiny, ctx)
    assert method.backbone_info["recbole_model"] == "CoLLMDIN" and method.backbone_info["loss"] == "BCE"
    assert method.backbone_info["data_plan"].endswith("-filehist")
    test = tiny.test
    requests = ScoreRequests(
        test["user"].to_numpy(), test["item"].to_numpy(), [list(h) for h in test["history"]]
    )
    own = method.score(requests)
    split_rule = method.row_histories
    method.row_histories = None  # the split's column: j no longer sees i (same second, earlier in the file)
    strict = method.score(requests)
    method.row_histories = split_rule
    assert own[:2].tolist() == strict[:2].tolist() and own[2] != strict[2]
    emb = method.embeddings()
    assert emb["user"].shape == (tiny.n_users, 12) and emb["item"].shape == (tiny.n_items, 12)
    assert build_method("din", {"arch": "recbole"}, task="ctr").params["arch"] == "recbole"
    assert build_method("din", {}, task="topk").params["arch"] == "recbole"
    assert build_method("recbole:DIN", {}, task="ctr").params["mlp_hidden_size"] == [256, 256, 256]
    with pytest.raises(ConfigError, match=r"arch='collm' gives .* dim must be >= 3, got 2"):
        build_method("din", {"dim": 2}, task="ctr")
    topk_setup = TaskSetup(task="topk", feedback="interactions")
    topk = RunContext(setup=topk_setup, seed=0, cache_dir=tmp_path / "c2")
    with pytest.raises(ConfigError, match=r"history='file' \(CoLLM's CTR history rule\) needs labeled rows"):
        build_method("sasrec", {"history": "file"}, task="topk").fit(tiny, topk)

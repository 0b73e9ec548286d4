"""The item2text task: item split, templates, batches handed to `generate`, bad input, and the planted check
that a trained CF method beats the floor (mismatched references) on held-out items.

Planted data (``benchbed.item2text.synthetic``): titles are nonsense, genres follow the item's cluster and so
does behaviour; the ``tiny`` backbone is randomly initialised, so this tests the pipeline and that the item
vector reaches the LM, not the method at scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchbed.api import GenerateRequests, RunContext
from benchbed.data.schema import InteractionData
from benchbed.errors import BenchbedError, ConfigError, DataError
from benchbed.item2text.facts import item_facts
from benchbed.item2text.itemsplit import _MEMO
from benchbed.item2text.prompts import to_pieces
from benchbed.item2text.setup import Item2TextProtocol, Item2TextSetup
from benchbed.item2text.synthetic import planted_data, planted_split
from benchbed.item2text.templates import load_item2text_bank
from benchbed.methods import build_method
from benchbed.methods.item2text_baselines import I2TCopy
from benchbed.orchestration.embeddings import RegistryEmbeddings
from benchbed.prompts import Slot
from benchbed.tasks import build_task


@pytest.fixture(scope="module")
def planted():
    return planted_split(planted_data())


def _ctx(task, split, tmp: Path) -> RunContext:
    ctx = RunContext(setup=task.method_setup(split), cache_dir=tmp / "cache", work_dir=tmp / "work")
    ctx.embeddings = RegistryEmbeddings(ctx)
    return ctx


def test_split_by_item_holds_and_is_cached(planted, isolated_settings) -> None:
    proto = Item2TextProtocol.build(planted, Item2TextSetup())
    held = set(proto.items.test.tolist()) | set(proto.items.valid.tolist())
    assert held and not held & set(proto.items.train.tolist())
    assert all(not set(e.items) & held for e in proto.train)  # neither item of a pair
    assert {e.items[0] for e in proto.valid} <= set(proto.items.valid.tolist())
    assert proto.tasks == ("describe", "genres", "common", "differ", "common_nn", "differ_nn")  # no year
    files = list((isolated_settings.cache_dir / "item2text" / planted.hash).glob("items-*.json"))
    assert len(files) == 1
    _MEMO.clear()  # the disk copy gives the same split
    again = Item2TextProtocol.build(planted, Item2TextSetup())
    assert again.items.hash == proto.items.hash
    other = Item2TextProtocol.build(planted, Item2TextSetup(item_seed=1))
    assert other.items.hash != proto.items.hash and len(other.items.test) == len(proto.items.test)


def test_nn_pairs_follow_behaviour(planted) -> None:
    proto = Item2TextProtocol.build(planted, Item2TextSetup(tasks="common_nn"))
    cluster = planted.data.items["cluster"].to_numpy()
    pairs = [e.items for e in proto.train] + [
        e.items for e in proto.eval_examples(proto.items.test, "seen:0")
    ]
    assert pairs and np.mean([cluster[a] == cluster[b] for a, b in pairs]) > 0.95
    assert all(e.reference.startswith("Both are ") for e in proto.train)


def test_templates_seen_for_training_unseen_held_out(planted) -> None:
    proto = Item2TextProtocol.build(planted, Item2TextSetup(templates_per_example=2))
    bank = load_item2text_bank()
    assert {e.template.split(":")[0] for e in proto.train} == {"seen"}
    per_item: dict[tuple, set] = {}
    for e in proto.train:
        per_item.setdefault((e.task, e.items), set()).add(e.template)
    assert all(len(v) == 2 for v in per_item.values())  # distinct seen templates
    unseen = proto.eval_examples(proto.items.test, "unseen:0")
    train_prompts = {e.prompt for e in proto.train}
    assert unseen and not {e.prompt for e in unseen} & train_prompts
    assert len(bank.unseen["describe"]) == 1 and len(bank.seen["describe"]) >= 5


def test_markers_to_pieces() -> None:
    titles = ["Toy Story", "Heat"]
    assert to_pieces("Compare {item1} with {item2}.", [0, 1]) == [
        "Compare ",
        Slot("item1"),
        " with ",
        Slot("item2"),
        ".",
    ]
    assert to_pieces("Describe {item1}.", [1], mode="title", titles=titles) == ['Describe "Heat".']
    assert to_pieces("Describe {item1}.", [0], mode="title+slot", titles=titles) == [
        'Describe "Toy Story"',
        Slot("item1"),
        ".",
    ]
    with pytest.raises(ConfigError, match="no item"):
        to_pieces("Compare {item1} with {item2}.", [0])


class Recording(I2TCopy):
    name = "recording"

    def fit(self, split, ctx) -> None:
        super().fit(split, ctx)
        self.calls: list[GenerateRequests] = []

    def generate(self, requests: GenerateRequests) -> list[str]:
        self.calls.append(requests)
        return super().generate(requests)


def test_generate_batches_one_sub_task_and_arity(planted, tmp_path) -> None:
    task = build_task("item2text", {"batch_size": 7, "max_new_tokens": 9, "max_test_items": 20})
    task.check_split(planted)
    method = Recording()
    method.fit(planted, _ctx(task, planted, tmp_path))
    result = task.evaluate(method, planted, _ctx(task, planted, tmp_path))
    assert method.calls and all(len(c.prompts) <= 7 and c.max_new_tokens == 9 for c in method.calls)
    for call in method.calls:
        items = np.asarray(call.items)
        pair = "{item2}" in call.prompts[0]
        assert items.shape == (len(call.prompts), 2 if pair else 1)
        assert all(("{item2}" in p) == pair and "{item1}" in p for p in call.prompts)
        assert len({method.task_of(p) for p in call.prompts}) == 1
    m = result.metrics
    assert {"all", "describe", "common_nn"} <= set(m) and "unseen" not in m  # copy is not a prompt method
    assert m["all"]["sc"] == pytest.approx(np.mean([m[t]["sc"] for t in result.info["sub_tasks"]]))
    assert result.info["encoder"]["revision"] and result.info["item_split"]["hash"]
    assert m["describe"]["sc"] > m["genres"]["sc"]  # the title is in the describe reference only
    again, _ = task.compute_metrics(result.predictions)  # rescore from the predictions alone
    assert again["all"] == pytest.approx(m["all"])


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_bad_input(planted, tmp_path) -> None:
    with pytest.raises(DataError, match="'year'") as err:  # planted items have no year
        Item2TextProtocol.build(planted, Item2TextSetup(tasks="decade"))
    _one_line(err)
    with pytest.raises(ConfigError, match="unknown sub-task"):
        Item2TextSetup(tasks="describe,plot").task_list(
            Item2TextProtocol.build(planted, Item2TextSetup()).facts
        )
    one = InteractionData(
        name="one",
        interactions=pd.DataFrame(
            {"user": [0, 0], "item": [0, 0], "rating": [1.0, 1.0], "label": [-1, -1], "timestamp": [0, 1]}
        ).astype({"label": "int8"}),  # fmt: skip
        items=pd.DataFrame({"raw_id": ["a"], "title": ["A"], "genres": ["Drama"]}),
        users=pd.DataFrame({"raw_id": ["u"]}),
    )
    with pytest.raises(DataError, match="pair sub-task 'common' needs 2") as err:
        Item2TextSetup(tasks="common").task_list(item_facts(one))
    _one_line(err)
    task = build_task("item2text", {"encoder": "no-such/encoder", "max_test_items": 2})
    method = I2TCopy()
    method.fit(planted, _ctx(task, planted, tmp_path))
    with pytest.raises(ConfigError, match="not installed") as err:
        task.evaluate(method, planted, _ctx(task, planted, tmp_path))
    _one_line(err)
    with pytest.raises(BenchbedError, match="n_tokens"):
        build_method("i2t-mlpn", {"n_tokens": 0})
    bad = tmp_path / "bank.yaml"
    raw = load_item2text_bank()
    tasks = {t: {"seen": list(raw.seen[t]), "unseen": list(raw.unseen[t])} for t in raw.seen}
    tasks["common"]["seen"][0] = "What does {item1} share?"
    bad.write_text(yaml.safe_dump({"tasks": tasks}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"common.seen\[0\] must use exactly"):
        load_item2text_bank(bad)


def test_trained_cf_method_beats_the_floor_on_held_out_items(planted, tmp_path) -> None:
    """i2t-mlp1 reads ALS vectors of the planted interactions; held-out items' genres come only from them."""
    task = build_task("item2text", {"tasks": "genres", "templates_per_example": 5, "max_new_tokens": 10})
    task.check_split(planted)
    scores = {}
    # 4 epochs (issue 23): sc 100.0 / attr_f1 100.0 against the floor's 45.8 / 0.0, as with 8 at 1.8x the time
    for name, params in (("i2t-floor", {}), ("i2t-mlp1", {"epochs": 4, "lr": 3e-3, "batch_size": 16})):
        method = build_method(name, params)
        method.fit(planted, _ctx(task, planted, tmp_path))
        scores[name] = task.evaluate(method, planted, _ctx(task, planted, tmp_path)).metrics
    floor, mlp = scores["i2t-floor"], scores["i2t-mlp1"]
    assert mlp["all"]["sc"] > floor["all"]["sc"] + 10, (mlp["all"], floor["all"])
    assert mlp["all"]["attr_f1"] > floor["all"]["attr_f1"] + 20
    assert {"seen", "unseen", "genres", "unseen:genres"} <= set(mlp)
    assert mlp["unseen"]["sc"] > floor["all"]["sc"]  # the held-out template too

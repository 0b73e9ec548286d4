"""Micro settings of every registered method for the conformance suite: tiny backbones, a few dozen rows,
one epoch. The LLM methods' settings are those of the stage-identity harness
(``tests/test_stage_identity_conformance.py``); the data is built once per group and session.

A ``World`` is one task's data: the split, the run context a fit gets (its cache is the group's) and
``outputs(method)``, what the task asks of a fitted method, as numpy arrays: ``score`` on CTR test rows,
``rank`` (full ranking, training items masked) on top-K, the generative task's own decoding, and
``generate`` on item-to-text prompts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from generative_synth import save_word_backbone, write_synthetic  # noqa: E402
from test_baselines_support import leave_last_out, planted_blocks  # noqa: E402
from test_stage_identity_conformance import CTR_MICRO, GEN_MICRO, I2T_MICRO, ILM_MICRO  # noqa: E402

from benchbed.api import GenerateRequests, RankRequests, RunContext, ScoreRequests, TaskSetup  # noqa: E402
from benchbed.data.schema import Split  # noqa: E402

TOPK = TaskSetup(task="topk", feedback="interactions")
K = 5


@dataclass
class World:
    """One task's micro data and how a fitted method is asked for its answers."""

    task: str
    split: Split
    setup: TaskSetup
    root: Path
    outputs: Callable[[Any], dict[str, np.ndarray]]
    extra: dict[str, Any] = field(default_factory=dict)

    def context(self, cache: str = "cache") -> RunContext:
        from benchbed.orchestration.embeddings import RegistryEmbeddings

        ctx = RunContext(
            setup=self.setup, seed=0, cache_dir=self.root / cache, work_dir=self.root / f"{cache}-work"
        )
        ctx.embeddings = RegistryEmbeddings(ctx)
        return ctx


def _ctr_outputs(split: Split, n: int = 24) -> Callable[[Any], dict[str, np.ndarray]]:
    test = split.test.iloc[:n]
    req = ScoreRequests(
        test["user"].to_numpy(np.int64), test["item"].to_numpy(np.int64), [list(h) for h in test["history"]]
    )
    return lambda method: {"score": np.asarray(method.score(req), dtype=np.float64)}


def _topk_outputs(split: Split, n: int = 12) -> Callable[[Any], dict[str, np.ndarray]]:
    users = np.sort(split.test["user"].unique())[:n].astype(np.int64)
    past = split.train.sort_values("timestamp", kind="stable").groupby("user")["item"].apply(list)
    histories = [list(past.get(u, [])) for u in users]
    req = RankRequests(
        users=users, histories=histories, k=K, exclude=[np.asarray(h, dtype=np.int64) for h in histories]
    )

    def outputs(method: Any) -> dict[str, np.ndarray]:
        ranked = method.rank(req)
        return {"items": np.asarray(ranked.items), "scores": np.asarray(ranked.scores, dtype=np.float64)}

    return outputs


def ctr_world(root: Path) -> World:
    from benchbed.llm.synthetic import planted_split

    split = planted_split(n_users=24, n_items=16, rows_per_user=8)
    return World("ctr", split, TaskSetup(), root, _ctr_outputs(split))


def topk_world(root: Path) -> World:
    data, _, _ = planted_blocks(n_blocks=2, users_per_block=8, items_per_block=6, per_user=5)
    split = leave_last_out(data)
    return World("topk", split, TOPK, root, _topk_outputs(split))


def cllm4rec_world(root: Path) -> World:
    from test_method_cllm4rec import planted_reviews, word_gpt2

    split = planted_reviews(users_per_cluster=3)
    world = World("topk", split, TOPK, root, _topk_outputs(split))
    world.extra["backbone"] = word_gpt2(root / "gpt2-words", pretrain_steps=0)
    return world


def rarec_world(root: Path) -> World:
    from test_method_rarec import planted

    split = leave_last_out(planted(n_users_per_sub=2))
    return World("topk", split, TOPK, root, _topk_outputs(split))


def generative_world(root: Path) -> World:
    from benchbed.data.prepare import prepare_split
    from benchbed.tasks.generative import GenerativeTask

    data = write_synthetic(root / "data", n_users=40, n_clusters=2, cluster_size=6, min_len=5, max_len=7)
    split = prepare_split(str(data), "leave-one-out").split
    task = GenerativeTask(history_len=4, max_users=6, beams=K, ks=[K])
    task.check_split(split)
    world = World("generative", split, task.method_setup(split), root, lambda m: {})

    def outputs(method: Any) -> dict[str, np.ndarray]:
        pred = task.evaluate(method, split, world.context()).predictions
        assert pred is not None
        return {"ranked": np.asarray([list(r) for r in pred["ranked"]], dtype=np.int64)}

    world.outputs = outputs
    world.extra["backbone"] = str(
        save_word_backbone(root / "model", extra_words=("syn",), hidden=16, layers=1)
    )
    return world


def item2text_world(root: Path) -> World:
    from benchbed.item2text.synthetic import GENRE_WORDS, SYLLABLES, planted_data
    from benchbed.item2text.synthetic import planted_split as i2t_split
    from benchbed.tasks.item2text import Item2TextTask

    data = planted_data(n_items=60, n_clusters=3, n_users=60, per_user=8, noise=0.1, seed=0)
    split = i2t_split(data)
    task = Item2TextTask(tasks="genres", test_items=0.5, valid_items=0.1, max_new_tokens=4)
    task.check_split(split)
    proto = task.protocol(split)
    examples = proto.eval_examples(np.sort(proto.items.test)[:6], "seen:0")
    req = GenerateRequests(
        prompts=[e.prompt for e in examples],
        items=np.asarray([e.items for e in examples], dtype=np.int64),
        max_new_tokens=4,
    )

    def outputs(method: Any) -> dict[str, np.ndarray]:
        texts = method.generate(req)
        assert len(texts) == len(examples) and all(isinstance(t, str) for t in texts)
        return {"texts": np.asarray(texts, dtype=object)}

    world = World("item2text", split, task.method_setup(split), root, outputs)
    extra = tuple(sorted({w.lower() for w in GENRE_WORDS} | set(SYLLABLES)))
    world.extra["backbone"] = str(save_word_backbone(root / "model", extra_words=extra, hidden=16, layers=1))
    return world


WORLDS: dict[str, Callable[[Path], World]] = {
    "ctr": ctr_world,
    "topk": topk_world,
    "cllm4rec": cllm4rec_world,
    "rarec": rarec_world,
    "generative": generative_world,
    "item2text": item2text_world,
}

ONE_EPOCH_ID = {"epochs": 1, "stopping_step": 100, "batch_size": 64}
ALS = {"cf_params": {"dim": 8, "iterations": 2}}


@dataclass(frozen=True)
class MicroCase:
    """A registered method on one micro world with its micro parameters (``backbone`` from the world when
    ``world_backbone``)."""

    method: str
    world: str
    params: dict[str, Any] = field(default_factory=dict)
    world_backbone: bool = False


CASES: dict[str, MicroCase] = {
    # reference rows and ID baselines: top-K on planted blocks, one epoch
    "random": MicroCase("random", "topk"),
    "pop": MicroCase("pop", "topk"),
    "mf-bpr": MicroCase("mf-bpr", "topk", {**ONE_EPOCH_ID, "dim": 8}),
    "mf": MicroCase("mf", "topk", {**ONE_EPOCH_ID, "dim": 8}),
    "lightgcn": MicroCase("lightgcn", "topk", {**ONE_EPOCH_ID, "dim": 8}),
    "multivae": MicroCase("multivae", "topk", {**ONE_EPOCH_ID}),
    "sasrec": MicroCase("sasrec", "topk", {**ONE_EPOCH_ID, "dim": 8, "n_layers": 1, "max_len": 5}),
    "din": MicroCase("din", "topk", {**ONE_EPOCH_ID, "dim": 8, "mlp_hidden": [8]}),
    "als": MicroCase("als", "topk", {"dim": 8, "iterations": 2}),
    "comirec": MicroCase("comirec", "topk", {"dim": 8, "hidden": 8, "max_iter": 20, "eval_every": 20}),
    "ease": MicroCase("ease", "topk"),
    # LLM methods: the stage-identity harness's micro settings
    "icl": MicroCase("icl", "ctr", {"history_len": 2, "eval_unseen": False}),
    "tallrec": MicroCase("tallrec", "ctr", {**CTR_MICRO, "eval_unseen": False}),
    "collm": MicroCase("collm", "ctr", {**CTR_MICRO, "eval_unseen": False, "cf_params": {"epochs": 2}}),
    "cllm4rec": MicroCase(
        "cllm4rec",
        "cllm4rec",
        {
            "warmup_epochs": 1,
            "pretrain_epochs": 1,
            "finetune_epochs": 1,
            "batch_size": 8,
            "max_valid_users": 4,
        },
        world_backbone=True,
    ),
    "rarec": MicroCase(
        "rarec",
        "rarec",
        {
            "id_params": {"max_iter": 20, "eval_every": 20, "dim": 8, "hidden": 8},
            "train_samples": 8,
            "batch_size": 4,
            "epochs": 1,
        },
    ),
    "p5-random": MicroCase("p5-random", "generative", dict(GEN_MICRO), world_backbone=True),
    "embedproj": MicroCase("embedproj", "generative", {**GEN_MICRO, **ALS}, world_backbone=True),
    "ilm": MicroCase("ilm", "generative", {**GEN_MICRO, **ALS, **ILM_MICRO}, world_backbone=True),
    # ILM's item-to-text path (ILMItem2Text subclasses the item-to-text recipe): the same checks
    "ilm-item2text": MicroCase("ilm", "item2text", {**I2T_MICRO, **ALS, **ILM_MICRO}, world_backbone=True),
    "i2t-text": MicroCase("i2t-text", "item2text", dict(I2T_MICRO), world_backbone=True),
    "i2t-mlp1": MicroCase("i2t-mlp1", "item2text", {**I2T_MICRO, **ALS}, world_backbone=True),
    "i2t-mlpn": MicroCase("i2t-mlpn", "item2text", {**I2T_MICRO, **ALS}, world_backbone=True),
    "i2t-elm": MicroCase(
        "i2t-elm",
        "item2text",
        {**I2T_MICRO, **ALS, "stage1_epochs": 1, "stage2_epochs": 1},
        world_backbone=True,
    ),
    "i2t-floor": MicroCase("i2t-floor", "item2text"),
    "i2t-const": MicroCase("i2t-const", "item2text"),
    "i2t-copy": MicroCase("i2t-copy", "item2text"),
}

"""Item-to-text generation scored by semantic consistency (ILM §4.2 on ELM-style tasks).

The substitute for ELM's 24 MovieLens tasks (not public): sub-tasks built from item metadata
(``benchbed.item2text.subtasks``: describe, genres, decade, common, differ, common_nn, differ_nn), each a
template bank with seen paraphrases for training and one unseen template. Items are split (seeded, cached,
hashed: ``benchbed.item2text.itemsplit``); test items never appear in a training example, so only what the
method gets from the item's embedding can name its facts (ELM's "unseen embedding" regime).

The task hands methods ``Item2TextProtocol`` (training examples, item split, facts, neighbours, decoding) in
``RunContext.setup`` and asks ``generate(GenerateRequests)`` for every test example, one sub-task per call,
``batch_size`` prompts at a time (``items`` (n, 1) or (n, 2)). Scores (``benchbed.metrics.semantic``):
``sc`` = 100 x cosine of sentence embeddings (MiniLM by default; ``encoder`` = any sentence-transformers name
or path) of generated and reference text, mean per sub-task, ``all`` = macro mean over sub-tasks; ``attr_f1``
= attribute-set F1 x100. Subsets: ``all``/``warm``/``cold`` (item warm = train interactions >= the split's
``warm_threshold``, or ``warm_min_item_count``), ``seen``/``unseen``/``unseen:warm``/``unseen:cold`` for
prompt methods, and one subset per sub-task (``describe``, ``unseen:describe``, ...). Every macro mean is
over the sub-tasks with rows in that subset.

Every record also says how far it is above what an item-blind answer reaches on its own rows
(``benchbed.item2text.controls``): ``sc_const`` (the sub-task's most frequent training answer for every row),
``sc_floor`` (another test item's different reference), ``sc_gap`` = ``sc`` minus the stronger of the two,
and ``distinct`` = the share of distinct generated texts (x100; a model writing one string for every item
has ``sc_gap`` <= 0 whatever its ``sc``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from benchbed.api import BaseRecommender, GenerateRequests, RunContext, TaskSetup
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.item2text.controls import constant_answers, distinct_share, mismatch_by_item
from benchbed.item2text.examples import Example
from benchbed.item2text.setup import Item2TextProtocol, Item2TextSetup
from benchbed.item2text.subtasks import SUB_TASKS
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param
from benchbed.tasks.base import Task, TaskResult
from benchbed.tasks.subsets import batches, subset_masks, subset_name, templates_for

SETUP_KEYS = tuple(Item2TextSetup().as_dict())
METRIC_KEYS = ("sc", "attr_f1")
CONTROL_KEYS = ("sc_const", "sc_floor")  # per-row SC of the two controls (predictions of newer records)
ITEM_SHARE = Param(kind="float", min=0, max=1, exclusive_max=True, help="share of titled items")


@dataclass(frozen=True)
class Item2TextTaskParams(Item2TextSetup, ParamSet):
    """The settings every method shares with the task, first (``Item2TextSetup``: tasks, test_items,
    valid_items, item_seed, templates_per_example, bank, num_beams, max_new_tokens; declared there, once),
    then the task's own."""

    # redeclared only to give their specs (a redeclared field keeps its place and Item2TextSetup's default)
    tasks: str = param(
        Item2TextSetup.tasks,
        Param(kind="str", pattern=r"[\w\-]+(\s*,\s*[\w\-]+)*", help="'auto' or a comma list of sub-tasks"),
    )
    test_items: float = param(Item2TextSetup.test_items, ITEM_SHARE)
    valid_items: float = param(Item2TextSetup.valid_items, ITEM_SHARE)
    encoder: str = "all-minilm-l6-v2"  # MiniLM substitute for ILM's Sentence-T5-11B (offline)
    batch_size: int = 32  # prompts per `generate` call
    max_test_items: int | None = None  # evaluate only the first N test items by id (smoke runs); None = all
    warm_min_item_count: int | None = None  # None: the split's warm_threshold (item train interactions)


class Item2TextTask(Task):
    name: ClassVar[str] = "item2text"
    Params: ClassVar[type[ParamSet]] = Item2TextTaskParams
    p: Item2TextTaskParams
    validation_metric: ClassVar[str] = "sc"
    default_split: ClassVar[str] = "leave-one-out"  # every interaction a positive; ILM's OpenP5 split

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # checks every parameter against the specs of Item2TextTaskParams
        self.setup = Item2TextSetup(**{k: self.params[k] for k in SETUP_KEYS})
        self.setup.check()
        self._protocol: tuple[str, Item2TextProtocol] | None = None

    def protocol(self, split: Split) -> Item2TextProtocol:
        key = split.key
        if self._protocol is None or self._protocol[0] != key:
            self._protocol = (key, Item2TextProtocol.build(split, self.setup))
        return self._protocol[1]

    def accepts_method(self, method: BaseRecommender) -> bool:
        return "item2text" in method.tasks

    def check_split(self, split: Split) -> None:
        """Facts for the chosen sub-tasks, an item split with test items, training examples."""
        proto = self.protocol(split)
        if not len(proto.items.test):
            raise DataError("task 'item2text': the item split has no test items (test_items > 0)")
        if not proto.train:
            raise DataError("task 'item2text': no training examples (too few train items with text)")

    def method_setup(self, split: Split) -> TaskSetup:
        return TaskSetup(task=self.name, feedback=self.feedback, protocol=self.protocol(split))

    def _encoder(self) -> Any:
        from benchbed.metrics.semantic import load_encoder

        return load_encoder(self.p.encoder)

    # --- evaluation -----------------------------------------------------------------------------------
    def evaluate(
        self, method: BaseRecommender, split: Split, ctx: RunContext, *, stage: str = "test"
    ) -> TaskResult:
        if stage not in ("test", "valid"):
            raise ConfigError(f"evaluation stage must be 'test' or 'valid', got {stage!r}")
        proto = self.protocol(split)
        encoder = self._encoder()  # fails before decoding when the encoder is not installed
        items = proto.items.test if stage == "test" else proto.items.valid
        if self.p.max_test_items is not None:
            items = np.sort(items)[: self.p.max_test_items]
        warm = self._warm_items(split)
        parts: list[pd.DataFrame] = []
        decode: dict[str, Any] = {}
        for template in templates_for(method, stage):
            key = "seen:0" if template == "seen" else "unseen:0"
            examples = proto.eval_examples(items, key)
            start = time.perf_counter()
            texts = self._generate(method, examples, ctx, f"item2text {stage} ({template})")
            seconds = time.perf_counter() - start
            decode[template] = {"rows": len(examples), "seconds": round(seconds, 3)}
            parts.append(self._frame(examples, texts, template, warm))
        predictions = pd.concat(parts, ignore_index=True)
        add_controls(predictions, proto, proto.items.test if stage == "test" else proto.items.valid)
        start = time.perf_counter()
        self._score(predictions, encoder)
        score_s = time.perf_counter() - start
        metrics, counts = self.compute_metrics(predictions)
        info = {
            "stage": stage,
            "protocol": "item2text (item split; SC = 100 x cosine of sentence embeddings, ILM 4.2)",
            "setup": self.setup.as_dict(),
            "sub_tasks": list(proto.tasks),
            "item_split": proto.items.info(),
            "templates": proto.template_info(),
            "encoder": {**encoder.info(), "note": "ILM used Sentence-T5-11B; only differences compare"},
            "decoding": {
                "num_beams": proto.decoding.num_beams,
                "max_new_tokens": proto.decoding.max_new_tokens,
                **decode,
            },
            "scoring": {"rows": len(predictions), "seconds": round(score_s, 3)},
            "warm_definition": f"item train interactions >= {self._threshold(split)}",
        }
        return TaskResult(metrics, counts, predictions, info=info)

    def _generate(
        self, method: BaseRecommender, examples: list[Example], ctx: RunContext, what: str
    ) -> list[str]:
        """One sub-task per call, ``batch_size`` prompts each; the answers in example order."""
        out: list[str] = [""] * len(examples)
        by_task: dict[str, list[int]] = {}
        for r, ex in enumerate(examples):
            by_task.setdefault(ex.task, []).append(r)
        max_new = self.p.max_new_tokens
        for task, rows in by_task.items():
            for sl in batches(len(rows), self.p.batch_size, ctx, f"{what} {task}"):
                idx = rows[sl]
                req = GenerateRequests(
                    prompts=[examples[r].prompt for r in idx],
                    items=np.asarray([examples[r].items for r in idx], dtype=np.int64),
                    max_new_tokens=max_new,
                    num_beams=self.p.num_beams,
                )
                got = method.generate(req)
                if len(got) != len(idx) or not all(isinstance(t, str) for t in got):
                    raise DataError(
                        f"method {method.name!r} returned {len(got)} texts for {len(idx)} prompts "
                        "(expected one string per prompt)"
                    )
                for r, text in zip(idx, got, strict=True):
                    out[r] = text
        return out

    def _threshold(self, split: Split) -> int:
        given = self.p.warm_min_item_count
        return given if given is not None else int(split.params.get("warm_threshold", 3))

    def _warm_items(self, split: Split) -> np.ndarray:
        counts = np.bincount(split.train["item"].to_numpy(dtype=np.int64), minlength=split.n_items)
        return counts >= self._threshold(split)

    @staticmethod
    def _frame(examples: list[Example], texts: list[str], template: str, warm: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "template": template,
                "task": [e.task for e in examples],
                "item": [e.items[0] for e in examples],
                "item2": [e.items[1] if len(e.items) > 1 else -1 for e in examples],
                "warm": [bool(warm[e.items[0]]) for e in examples],
                "generated": texts,
                "reference": [e.reference for e in examples],
                "attributes": [sorted(e.attributes) for e in examples],
            }
        )

    def _score(self, frame: pd.DataFrame, encoder: Any) -> None:
        """Adds per-row ``sc`` and ``attr_f1`` (what ``compute_metrics`` averages)."""
        from benchbed.metrics.semantic import find_attributes, sc_scores, set_f1

        proto = self._protocol[1] if self._protocol else None
        vocab = sorted(proto.facts.vocabulary if proto else set(), key=len, reverse=True)
        gen, ref = frame["generated"].tolist(), frame["reference"].tolist()
        both = encoder.encode([*gen, *ref])
        frame["sc"] = sc_scores(both[: len(gen)], both[len(gen) :])
        ref_emb = both[len(gen) :]
        for column, key in (("const", "sc_const"), ("floor", "sc_floor")):
            if column not in frame:
                continue
            texts = frame[column].tolist()
            unique = sorted({t for t in texts if isinstance(t, str)})
            emb = dict(zip(unique, encoder.encode(unique), strict=True)) if unique else {}
            frame[key] = [
                float(sc_scores(emb[t][None, :], ref_emb[r][None, :])[0]) if isinstance(t, str) else np.nan
                for r, t in enumerate(texts)
            ]
        found = [find_attributes(g, vocab) for g in gen]
        frame["attr_f1"] = [
            100.0 * set_f1(f, frozenset(a)) for f, a in zip(found, frame["attributes"], strict=True)
        ]
        frame["vocabulary_hit"] = [sorted(f) for f in found]

    def compute_metrics(
        self, predictions: pd.DataFrame
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
        """Per subset: each sub-task's mean and the macro mean over sub-tasks (``benchbed rescore`` too)."""
        metrics: dict[str, dict[str, float]] = {}
        counts: dict[str, dict[str, int]] = {}
        templates = predictions["template"].unique().tolist()
        order = [t for t in SUB_TASKS if t in set(predictions["task"])]
        for template, part in predictions.groupby("template", sort=False):
            warm = part["warm"].to_numpy(dtype=bool)
            for subset, mask in subset_masks(warm, len(part)).items():
                rows = part[mask]
                if not len(rows):
                    continue
                per_task = {t: group_metrics(g) for t, g in rows.groupby("task") if len(g)}
                keys = list(next(iter(per_task.values()))) if per_task else list(METRIC_KEYS)
                macro = {k: float(np.nanmean([m[k] for m in per_task.values()])) for k in keys}
                name = subset_name(str(template), subset)
                metrics[name] = macro if per_task else {k: float("nan") for k in METRIC_KEYS}
                counts[name] = {"rows": int(mask.sum()), "items": int(rows["item"].nunique())}
                if template == "seen" and subset == "all" and "unseen" in templates:
                    metrics["seen"], counts["seen"] = dict(metrics[name]), dict(counts[name])
            for task in order:
                g = part[part["task"] == task]
                if not len(g):
                    continue
                name = subset_name(str(template), task)
                metrics[name] = group_metrics(g)
                counts[name] = {"rows": len(g), "items": int(g["item"].nunique())}
        return metrics, counts


def add_controls(frame: pd.DataFrame, proto: Item2TextProtocol, pool: np.ndarray) -> None:
    """Adds the texts of the two controls per row: ``const`` (the sub-task's most frequent training answer)
    and ``floor`` (the reference of another item of ``pool``, the evaluated split's items, that differs from
    the row's; None where none does), as the ``i2t-const`` and ``i2t-floor`` rows answer."""
    const = constant_answers(proto.train)
    frame["const"] = [const.get(t) for t in frame["task"]]
    other = mismatch_by_item(proto.eval_examples(pool, "seen:0"))
    frame["floor"] = [other.get((t, int(i))) for t, i in zip(frame["task"], frame["item"], strict=True)]


def group_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """The means of one group of rows (a sub-task in a subset): SC and attribute F1 (rows whose F1 is
    undefined, both attribute sets empty, do not count), and where the rows carry them the controls' SC,
    the gap over the stronger control and the share of distinct outputs."""
    out = {k: float(rows[k].mean()) if rows[k].notna().any() else float("nan") for k in METRIC_KEYS}
    if all(k in rows for k in CONTROL_KEYS):
        controls = [float(rows[k].mean()) for k in CONTROL_KEYS if rows[k].notna().any()]
        out["sc_const"] = float(rows["sc_const"].mean())
        out["sc_floor"] = float(rows["sc_floor"].mean()) if rows["sc_floor"].notna().any() else float("nan")
        out["sc_gap"] = out["sc"] - max(controls) if controls else float("nan")
        out["distinct"] = distinct_share(rows["generated"].astype(str).tolist())
    return out

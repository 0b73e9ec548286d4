"""The generative recipe's parameters (``GenerativeLM.Params``): what every generative method reads
(p5-random, embedproj, ilm); each method subclasses them with its own (``P5RandomParams``, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from benchbed.param_sets import ParamSet, param
from benchbed.params import Param


@dataclass(frozen=True)
class GenerativeParams(ParamSet):
    """What every generative method reads (p5-random, embedproj, ilm): backbone, training loop, budget,
    beam-search batching."""

    backbone: str = "tiny"  # preset, alias, hub id or local path
    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    batch_size: int = 32
    grad_accum: int = 1
    eval_batch_size: int = 32  # users per beam-search batch
    # CPU budget (seeded sample of all examples); None = all (the paper)
    max_train_examples: int | None = 20000
    max_seconds: float | None = None  # time budget per stage
    # OpenP5 / seed 003 train one model on both sub-tasks; "eval" = only one
    train_sub_tasks: str = param(
        "both", Param(kind="str", choices=("both", "eval"), help="both sub-tasks, or the evaluated one")
    )
    valid_users: int = 0  # >0: early stopping on valid NDCG@10 of that many users; 0: keep the last state
    max_length: int | None = None  # prompt tokens (oldest history cut first); None = no cap
    exclude_extra_beams: int = 20  # with the task's filter_history: beams = k + min(earlier items, this)

"""The parameters of ``ilm``, declared once (``benchbed.param_sets``): what both task paths share
(``ILMParams``: the encoder, its inputs, stage 1, stage 2 and how the LLM trains), and each path's set, the
shared one on top of its recipe's (``ILMGenerativeParams``, ``ILMItem2TextParams``). Sources: protocols/ilm.md
§1f/§1i; T7/T8 = App. B."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchbed.llm.recipes.generative_params import GenerativeParams
from benchbed.llm.recipes.item2text import Item2TextParams
from benchbed.llm.train import SCHEDULES
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param

ITEM_ENCODERS = ("qformer", "mlp", "none")
INPUTS = ("behavioral", "semantic", "combined")  # the encoder's input embedding (inputs.build_inputs)


@dataclass(frozen=True)
class ILMParams(ParamSet):
    """Every ILM parameter both task paths accept, with its source."""

    # CPU budget (seeded sample); None = all. ILM's cap is at least 1 (the recipes accept 0)
    max_train_examples: int | None = param(
        20000, Param(kind="int", min=1, nullable=True, help="seeded sample; null = all")
    )
    n_queries: int = 4  # §5.5 best at 4-8; protocols/ilm.md §1i.1 default 4
    # qformer = ILM; mlp = Fig. 5's "MLP to N tokens" baseline (n_queries=1: CoLLM's 1-token MLP, §4.3), no
    # stage 1; none = text only (item2text: the title in the prompt instead of tokens)
    item_encoder: str = param("qformer", Param(kind="str", choices=ITEM_ENCODERS))
    # CPU scale (protocols/ilm.md §1h: 2 layers, d=64); the paper: 8 layers, 168M
    encoder_layers: int = param(2, Param(kind="int", min=1))
    encoder_width: int = param(64, Param(kind="int", min=1))
    encoder_heads: int = param(4, Param(kind="int", min=1))
    # e -> a 1-token cross-attention memory (protocols/ilm.md §1i.10, inferred)
    memory_tokens: int = param(1, Param(kind="int", min=1, help="cross-attention memory tokens of e"))
    encoder_dropout: float = 0.1  # BERT / BLIP-2 hidden dropout
    max_text_len: int = param(64, Param(kind="int", min=1))  # stage-1 text tokens
    # behavioral | semantic | combined (§5.1); OpenP5 uses iALS vectors (§4.1)
    input: str = param("behavioral", Param(kind="str", choices=INPUTS))
    cf_model: str = "als"  # WALS / iALS matrix factorisation (§4.1), benchbed's `als` export
    cf_params: dict[str, Any] | None = None
    semantic_encoder: str = "minilm"  # sentence encoder of the semantic input (the paper: PaLM2-XS, ELM data)
    # item fields the semantic input embeds (the ELM embeddings describe items)
    semantic_fields: str = "title"
    shuffle_input: bool = False  # negative control (protocols/ilm.md §1h): item/user input rows permuted
    stage1: bool = True  # False = no stage-1 training (ILM-R*, §5.3 / T15): a random encoder into stage 2
    # none (ILM-IT) | ii (ILM-IT-II) | ui (ILM, OpenP5 default, App. H) | ii+ui
    stage1_pairs: str = param("ui", Param(kind="str", choices=("none", "ii", "ui", "ii+ui")))
    # §3.2; weights all 1 (protocols/ilm.md §1i.4)
    stage1_text_losses: str = param(
        "itc,itm,itg",
        Param(
            kind="str", pattern=r"(itc|itm|itg)(\s*,\s*(itc|itm|itg))*", help="comma list of itc, itm, itg"
        ),
    )
    stage1_symmetric: bool = False  # Eq. 3 is item -> text only (protocols/ilm.md §1i.2)
    # item fields of the stage-1 text; None = all (ML: title + genres, §4.4)
    stage1_text_fields: str | None = param(
        None,
        Param(
            kind="str",
            nullable=True,
            pattern=r"[\w\-]+(\s*,\s*[\w\-]+)*",
            help="comma list of item fields; null = all",
        ),
    )
    stage1_epochs: int = 2  # CPU budget (the paper: 40K steps of 256 on ML1M, T8)
    stage1_lr: float = 1e-3  # CPU (a random tiny encoder); the paper: 3e-5 with AdaFactor, batch 256 (T7/T8)
    stage1_batch_size: int = 64  # the paper: 256 (T7/T8)
    # micro-batches per stage-1 step (data parallel: a multiple of the processes; each micro-batch keeps
    # its own in-batch negatives, so batch_size x grad_accum is not one contrastive batch). Not in the paper
    stage1_grad_accum: int = 1
    # pair batches per item-text batch: alternate 1:1 (protocols/ilm.md §1i.4)
    stage1_pair_ratio: int = param(1, Param(kind="int", min=1, help="pair batches per item-text batch"))
    # CPU budget: seeded sample per pair kind; None = all (the paper)
    stage1_max_pairs: int | None = param(
        20000, Param(kind="int", min=1, nullable=True, help="per pair kind; null = all")
    )
    freeze_llm: bool = False  # §4.3: encoder and LLM are both trained; True = ILM-F (§5.2, T15)
    stage2_epochs: int = 1
    stage2_lr: float = 1e-3  # CPU; the paper: 5e-4, AdaFactor, batch 32 (T7/T8)
    compare_with: str = "none"  # methods run first for the board (a comma list; per task: ILM.task_defaults)
    # auto: a text stage first on a random backbone (generative: p5-random's, App. B; item2text: the titles
    # in the prompt, protocols/ilm.md §1h); text | none
    warm_start: str = "auto"
    tuning: str = "full"  # how the LLM trains in the warm start and stage 2: full (the paper) | lora
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"  # as embedproj


@dataclass(frozen=True)
class ILMGenerativeParams(ILMParams, GenerativeParams):
    """``ilm`` on the generative task: the generative recipe's settings, ILM's, and stage 2's checkpoint
    selection. The item-to-text path's parameters are a subset of these (same defaults), so the registered
    ``ilm`` declares this set (tests/test_method_ilm.py checks the subset)."""

    # T8 (OpenP5) and T7: stage-2 linear decay (§4.3's text says cosine)
    stage2_schedule: str = param(
        "linear", Param(kind="str", choices=SCHEDULES, help="stage-2 lr decay after the warmup")
    )
    # §4.4: the checkpoint with the best dev NDCG@10; CPU budget: 200 users (the paper: every user), 0 =
    # keep the last state; dev evaluations per stage-2 epoch (the paper's checkpoint interval: not given)
    stage2_valid_users: int = param(
        200, Param(kind="int", min=0, help="dev users for the best-NDCG@10 checkpoint; 0 = last")
    )
    stage2_evals_per_epoch: int = param(4, Param(kind="int", min=1, help="dev evaluations per stage-2 epoch"))


@dataclass(frozen=True)
class ILMItem2TextTraining(Item2TextParams):
    """The item-to-text recipe's settings as ILM's item-to-text path sets them, and its prompt cap."""

    epochs: int = 1  # the warm-start stage
    batch_size: int = 32  # the paper's stage-2 batch (T7)
    eval_batch_size: int = 32
    max_length: int | None = None  # prompt tokens (oldest text cut first); None = no cap


@dataclass(frozen=True)
class ILMItem2TextParams(ILMParams, ILMItem2TextTraining):
    """``ilm`` on the item-to-text task: the recipe's settings (``lr``/``epochs``: the warm-start stage,
    CPU scale) and ILM's."""

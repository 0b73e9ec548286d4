"""A plan: the run's stages priced in FLOPs, memory per GPU and wall time on the named GPUs.

Wall time = FLOPs / (processes that work at once x the GPU's dense bf16 peak x MFU). Processes that work at
once: under data parallel every micro-batch of an accumulation group runs on its own rank
(``benchbed.llm.train``), so a training stage speeds up by min(N, grad_accum), and scoring by N under ddp
(sharded) and not at all under fsdp (every process runs every batch). Memory fits
when it leaves ``RESERVE_GB`` of the card free (CUDA context, allocator fragmentation). When it does not, the
plan names the smallest strategy and process count that fits (ddp on 1, then fsdp on 2, 4, ... 64).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchbed.api import BaseRecommender
from benchbed.config import RunConfig
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.backbone.facts import is_encoder
from benchbed.llm.backbone.loaded import minilm_dir
from benchbed.plan.configs import PRESET_CONFIGS, backbone_config, meta_model
from benchbed.plan.flops import Arch, BatchShape, Trainable, arch_of, forward_flops, train_step_flops
from benchbed.plan.gpus import GPU, GPUS, get_gpu
from benchbed.plan.memory import Memory, score_memory, train_memory
from benchbed.plan.shaped import ShapedStage
from benchbed.plan.stages import StagePlan
from benchbed.tasks.base import Task
from benchbed.tasks.ctr import CTRParams

DEFAULT_MFU = 0.4
RESERVE_GB = 2.0
PROCESS_COUNTS = (1, 2, 4, 8, 16, 32, 64)
STRATEGIES = ("ddp", "fsdp")
OWN_STAGES = ("cllm4rec", "rarec", "ilm")  # methods whose planners build their own (shaped) stages
# a method's own meaning of a preset name: cllm4rec's "tiny" is the tiny GPT-2 (its tied-head default)
PLAN_BACKBONE = {
    ("cllm4rec", "tiny"): "tiny-gpt2",
    ("cllm4rec", "tiny-llama"): "tiny",
    ("rarec", "minilm"): str(minilm_dir()),  # the bundled all-MiniLM-L6-v2 folder: its config and tokenizer
    ("tallrec", "minilm"): str(minilm_dir()),  # the CTR methods on the encoder (yesno.masked_head)
    ("collm", "minilm"): str(minilm_dir()),
}


def stage_flops(arch: Arch, st: StagePlan) -> float:
    """FLOPs of the whole stage: every batch of every epoch (train) or pass (eval)."""
    if isinstance(st, ShapedStage):  # two-segment documents, own heads (CLLM4Rec): the stage prices itself
        return st.flops(arch)
    total = 0.0
    frozen = Trainable("none", st.train.targets, st.train.r) if st.train else None
    for rows, length in st.batches():
        shape = BatchShape(rows, length, st.kept)
        if st.kind == "train":
            assert st.train is not None
            total += train_step_flops(arch, shape, st.train)
        else:
            total += forward_flops(arch, shape, frozen)
        total += st.extra_flops_per_row * rows
    return total * (st.epochs if st.kind == "train" else st.passes)


def stage_memory(arch: Arch, st: StagePlan, dtype: str, strategy: str, processes: int) -> Memory:
    """Memory per process at the stage's largest batch (rows x padded length)."""
    rows, length = max(st.batches(), key=lambda b: b[0] * b[1])
    if st.kind == "train":
        assert st.train is not None
        return train_memory(
            arch,
            dtype=dtype,
            rows=rows,
            length=length,
            kept=st.kept,
            trainable_in_backbone=st.trainable_in_backbone,
            trainable_outside=st.trainable_outside,
            full=st.train.mode == "full",
            strategy=strategy,
            processes=processes,
        )
    return score_memory(
        arch,
        dtype=dtype,
        rows=rows * st.kv_rows,
        length=length + st.kv_extra_tokens,
        strategy=strategy,
        processes=processes,
    )


def fits(memory: float, gpu: GPU) -> bool:
    return memory <= gpu.memory_bytes - RESERVE_GB * 1e9


@dataclass
class Plan:
    config: dict[str, Any]
    backbone: dict[str, Any]
    dtype: str
    strategy: str
    processes: int
    mfu: float
    mfu_source: str
    stages: list[dict[str, Any]]
    gpus: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def smallest_fit(arch: Arch, stages: list[StagePlan], dtype: str, gpu: GPU) -> tuple[str, int] | None:
    for strategy, n in [("ddp", 1), *(("fsdp", k) for k in PROCESS_COUNTS[1:])]:
        peak = max(stage_memory(arch, st, dtype, strategy, n).total for st in stages)
        if fits(peak, gpu):
            return strategy, n
    return None


def price(
    arch: Arch,
    stages: list[StagePlan],
    *,
    dtype: str,
    strategy: str,
    processes: int,
    gpus: list[GPU],
    mfu: float,
    strict: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per stage facts and per GPU totals; ``strict``: a strategy that fits no process count is an error."""
    rows = [_stage_row(arch, st, dtype, strategy, processes) for st in stages]
    out = []
    for gpu in gpus:
        peak = max(r["memory_bytes"]["total"] for r in rows)
        seconds = {r["stage"]: r["flops"] / (r["speedup"] * gpu.bf16_tflops * 1e12 * mfu) for r in rows}
        ok = fits(peak, gpu)
        entry: dict[str, Any] = {
            "gpu": gpu.name,
            "memory_gb": gpu.memory_gb,
            "bf16_tflops": gpu.bf16_tflops,
            "peak_memory_gb": peak / 1e9,
            "fits": ok,
            "seconds": seconds,
            "total_seconds": sum(seconds.values()),
        }
        if not ok:
            entry["fits_with"] = _fits_with(arch, stages, dtype, strategy, gpu, peak, strict)
        out.append(entry)
    return rows, out


def _stage_row(arch: Arch, st: StagePlan, dtype: str, strategy: str, processes: int) -> dict[str, Any]:
    """The facts of one stage: its data, steps, FLOPs, memory per process and data-parallel speed-up."""
    mem = stage_memory(arch, st, dtype, strategy, processes)
    return {
        "stage": st.name,
        "kind": st.kind,
        "examples": st.examples,
        "tokens": st.tokens,
        "mean_tokens": round(st.tokens / max(1, st.examples), 1),
        "max_tokens": int(st.lengths.max()) if st.examples else 0,
        "batch_size": st.batch_size,
        "epochs": st.epochs if st.kind == "train" else None,
        "passes": st.passes if st.kind == "eval" else None,
        "optimizer_steps": st.optimizer_steps,
        "trainable_parameters": st.trainable_in_backbone + st.trainable_outside,
        "flops": stage_flops(arch, st),
        "memory_bytes": mem.as_dict(),
        # evaluation: sharded over the processes under ddp, replicated under fsdp (README)
        "speedup": (
            min(processes, st.grad_accum) if st.kind == "train" else (processes if strategy == "ddp" else 1)
        ),
        "notes": st.notes,
    }


def _fits_with(
    arch: Arch, stages: list[StagePlan], dtype: str, strategy: str, gpu: GPU, peak: float, strict: bool
) -> dict[str, Any] | None:
    """The smallest process count of ``strategy`` that fits ``gpu``, else the smallest strategy that does;
    ``strict``: none of ``strategy`` fitting is an error."""
    same = [n for n in PROCESS_COUNTS if fits(_peak(arch, stages, dtype, strategy, n), gpu)]
    alt = smallest_fit(arch, stages, dtype, gpu)
    if strict and not same:
        where = f"; {alt[0]} on {alt[1]} fits" if alt else "; nothing up to fsdp on 64 fits"
        raise ConfigError(
            f"--strategy {strategy}: needs {peak / 1e9:.1f} GB per GPU, more than a {gpu.name} "
            f"({gpu.memory_gb:g} GB, {RESERVE_GB:g} GB kept free) holds on any process count{where}"
        )
    return (
        {"strategy": strategy, "processes": same[0]}
        if same
        else ({"strategy": alt[0], "processes": alt[1]} if alt else None)
    )


def _peak(arch: Arch, stages: list[StagePlan], dtype: str, strategy: str, n: int) -> float:
    return max(stage_memory(arch, st, dtype, strategy, n).total for st in stages)


def make_plan(
    config: RunConfig,
    *,
    strategy: str = "ddp",
    processes: int = 1,
    gpu_names: list[str] | None = None,
    mfu: float = DEFAULT_MFU,
    mfu_source: str = "default",
) -> Plan:
    """Read and prepare the data as ``run`` does (cached), build the stages, price them; train nothing."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if processes < 1:
        raise ConfigError(f"--num-processes {processes}: expected >= 1")
    if not 0 < mfu <= 1:
        raise ConfigError(f"--mfu {mfu}: expected a fraction in (0, 1]")
    gpus = [get_gpu(g) for g in gpu_names] if gpu_names else list(GPUS.values())
    from benchbed.data.prepare import prepare_split
    from benchbed.plan.tokens import tokenizer_for

    method, task = _modelled_method(config)
    name = str(method.params["backbone"])
    source = PLAN_BACKBONE.get((config.method, name), name)
    name = name if Path(source).is_absolute() else source  # shown: the preset's name, not its folder
    hf_config = backbone_config(source)
    arch = _arch(config, hf_config)
    dtype = config.dtype or "bfloat16"
    dtype = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}.get(dtype, dtype)
    tokenizer, tok_note = tokenizer_for(source)
    prepared = prepare_split(config.dataset, config.split or task.default_split, dict(config.split_params))
    split = prepared.split
    arch, stages = _stages(config, method, task, split, tokenizer, hf_config, arch, name)
    rows, per_gpu = price(
        arch,
        stages,
        dtype=dtype,
        strategy=strategy,
        processes=processes,
        gpus=gpus,
        mfu=mfu,
        strict=bool(gpu_names),
    )
    notes = [tok_note] if tok_note else []
    notes.append(f"data: {split.data.name} {split.protocol} split {split.key}")
    return Plan(
        config=asdict(config),
        backbone={"name": name, **describe_arch(arch)},
        dtype=dtype,
        strategy=strategy,
        processes=processes,
        mfu=mfu,
        mfu_source=mfu_source,
        stages=rows,
        gpus=per_gpu,
        notes=notes,
    )


def _modelled_method(config: RunConfig) -> tuple[BaseRecommender, Task]:
    """The method and task as ``run`` builds them; a method the planner does not model is an error."""
    from benchbed.orchestration.runner import setup
    from benchbed.plan.ctr import CTR_METHODS
    from benchbed.plan.generative import GENERATIVE_METHODS
    from benchbed.plan.item2text import ITEM2TEXT_METHODS

    # an alias's config is carried here, so the method need not find its weights (offline, not downloaded)
    requested = config.method_params.get("backbone")
    probe = config
    if requested in PRESET_CONFIGS:
        probe = config.with_updates(method_params={**config.method_params, "backbone": "tiny"})
    method, task = setup(probe)
    if requested is not None:  # the dict and the typed view say the same
        method.params["backbone"] = requested
        method.p = method.Params.view(method.params)
    modelled = (*CTR_METHODS, *GENERATIVE_METHODS, *OWN_STAGES, *ITEM2TEXT_METHODS)
    if config.method not in modelled:
        raise ConfigError(
            f"benchbed plan: method {config.method!r} is not modelled yet (modelled: {', '.join(modelled)})"
        )
    return method, task


def _arch(config: RunConfig, hf_config: Any) -> Arch:
    """The backbone's shape: rarec reads the bare encoder (AutoModel), the others a causal LM."""
    from benchbed.plan.rarec import encoder_arch

    encoder = config.method == "rarec" or is_encoder(hf_config)
    return encoder_arch(hf_config)[0] if encoder else arch_of(meta_model(hf_config))


def _stages(
    config: RunConfig,
    method: BaseRecommender,
    task: Task,
    split: Split,
    tokenizer: Any,
    hf_config: Any,
    arch: Arch,
    name: str,
) -> tuple[Arch, list[StagePlan]]:
    """The method's stages by its planner (rarec's planner also gives the arch it prices)."""
    from benchbed.plan.cllm4rec import cllm4rec_stages
    from benchbed.plan.ctr import ctr_stages
    from benchbed.plan.generative import GENERATIVE_METHODS, generative_stages
    from benchbed.plan.ilm import ilm_stages
    from benchbed.plan.item2text import ITEM2TEXT_METHODS, item2text_stages
    from benchbed.plan.rarec import rarec_stages
    from benchbed.tasks.subsets import templates_for

    if config.method == "cllm4rec":
        return arch, cllm4rec_stages(method, split, tokenizer, hf_config, arch, seed=config.seed)
    if config.method == "ilm":
        return arch, ilm_stages(method, task, split, tokenizer, hf_config, arch, seed=config.seed)
    if config.method in ITEM2TEXT_METHODS:
        return arch, item2text_stages(method, task, split, tokenizer, hf_config, arch, seed=config.seed)
    if config.method == "rarec":
        return rarec_stages(method, task, split, tokenizer, hf_config, seed=config.seed)
    if config.method in GENERATIVE_METHODS:
        return arch, generative_stages(method, task, split, tokenizer, hf_config, arch, seed=config.seed)
    test = split.test
    max_rows = task.p.max_rows if isinstance(task.p, CTRParams) else None
    if max_rows is not None:
        test = test.iloc[:max_rows]
    return arch, ctr_stages(
        method,
        split,
        tokenizer,
        hf_config,
        backbone_name=name,
        seed=config.seed,
        test_frame=test,
        templates=tuple(templates_for(method, "test")),
    )


def describe_arch(arch: Arch) -> dict[str, Any]:
    return {
        "parameters": arch.parameters,
        "layers": arch.layers,
        "hidden": arch.hidden,
        "intermediate": arch.intermediate,
        "vocab": arch.vocab,
    }

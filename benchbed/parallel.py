"""The data-parallel world this process belongs to, and the few collectives benchbed needs.

``accelerate launch`` (or ``torchrun``) starts N copies of ``benchbed run`` with ``WORLD_SIZE``/``RANK`` in
the environment; :func:`world` joins them through accelerate's ``PartialState`` (gloo on CPU, NCCL on CUDA,
the current CUDA device set to the local rank) and says who is who. Without them it is a world of one
and nothing here touches ``torch.distributed``, so single-process runs are unchanged to the bit.

Three places use it, so sharding lives here and nowhere else (FSDP, a fourth, is at the end):

- the tasks' batching loops (:func:`map_batches`): batch ``b`` is computed by rank ``b % N``, the results
  are gathered once per loop, in batch order, on every rank;
- the training loop (``benchbed.llm.train``): micro-batch ``j`` of an accumulation group runs on rank
  ``j % N`` and :func:`all_reduce_grads` sums the gradients, so an optimizer step sees the same gradient
  as one process stepping over the whole group (DDP's semantics, written out because the kit's loss
  functions call the model directly rather than through one wrapped ``forward``);
- the runner: only :attr:`World.is_main` writes records and stage files; :func:`from_main` hands the main
  process's decisions (a record already exists) to the others so that every rank takes the same path.

``--strategy fsdp`` (FSDP2, ``torch.distributed.fsdp.fully_shard``) is for a backbone that does not fit one
device. :func:`shard_backbone` shards the parameters of its transformer blocks (the classes the model lists in
``_no_split_modules``, the blocks accelerate's transformer auto-wrap policy wraps) over the ranks, right after
loading and before any adapter is added; embeddings, final norm and LM head stay whole on every rank (a few
per cent of a 7B model), so the kit's injectors, which call the input embeddings directly, work unchanged.
Adapters (LoRA), projectors and new token rows are added afterwards as ordinary replicated parameters, so
training, gradient sums, checkpoints and stage blobs are DDP's. What changes is that every block forward is a
collective (an all-gather of the block's weights), so the ranks must run the same number of forwards in the
same order (:attr:`World.lockstep`):

- training: an accumulation group at an epoch's end that does not split evenly gets zero-loss forward and
  backward passes on the ranks that have no micro-batch left (``benchbed.llm.train``);
- evaluation (:func:`map_batches`) runs every batch on every rank instead of sharding them: a method may split
  a batch into token-budget chunks, so sharded batches would give the ranks different numbers of forwards;
- decoding loops stop only when every rank has finished (:func:`finished_everywhere`).
A method that fine-tunes the blocks themselves (a full fine-tune) trains sharded parameters: FSDP sums their
gradients by reduce-scatter (divide factor 1: a sum, as :func:`all_reduce_grads` for the others), each rank
keeps the optimizer state of its shard, and checkpoints, the best state and stage blobs hold full tensors
(:func:`gather_full`, :func:`assign`), so they load under any strategy and number of processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from benchbed.errors import ConfigError

T = TypeVar("T")

STRATEGY_ENV = "BENCHBED_DP_STRATEGY"  # ddp | fsdp, set by ``benchbed run --launcher accelerate``
LAUNCHER_ENV = "BENCHBED_LAUNCHER"
STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class World:
    size: int = 1
    rank: int = 0
    local_rank: int = 0
    launcher: str = "none"  # accelerate | torchrun | none
    backend: str | None = None  # gloo | nccl | None (one process)
    strategy: str = "ddp"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def lockstep(self) -> bool:
        """FSDP over several processes: every forward is a collective, so the ranks run the same ones."""
        return self.distributed and self.strategy == "fsdp"

    def info(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a record states: world size, launcher, backend, and the effective batch of a method with
        ``batch_size`` x ``grad_accum`` (the same for every world size: see ``benchbed.llm.train``)."""
        out: dict[str, Any] = {
            "world_size": self.size,
            "launcher": self.launcher,
            "backend": self.backend,
            "strategy": self.strategy if self.distributed else None,
            # ddp: batch b on rank b % N, gathered once; fsdp: every batch on every rank (module doc)
            "evaluation": ("replicated" if self.lockstep else "sharded") if self.distributed else None,
        }
        if params and "batch_size" in params and "grad_accum" in params:
            try:
                bs, ga = int(params["batch_size"]), int(params["grad_accum"])
            except (TypeError, ValueError):
                return out
            out["effective_batch"] = bs * ga
            out["micro_batches_per_process"] = ga // self.size if ga % self.size == 0 else None
        return out


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)  # type: ignore[arg-type]
    return default


def _launcher() -> str:
    if os.environ.get(LAUNCHER_ENV):
        return os.environ[LAUNCHER_ENV]
    if any(k.startswith("ACCELERATE_") for k in os.environ):
        return "accelerate"
    return "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else "env"


@lru_cache(maxsize=1)
def world() -> World:
    """This process's world; joins the process group on first call when launched with N > 1."""
    size = _env_int("WORLD_SIZE", default=1)
    strategy = os.environ.get(STRATEGY_ENV, "ddp")
    if strategy not in STRATEGIES:
        raise ConfigError(f"{STRATEGY_ENV}={strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if size <= 1:
        return World()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return World(
        size=int(state.num_processes),
        rank=int(state.process_index),
        local_rank=int(state.local_process_index),
        launcher=_launcher(),
        backend=str(state.backend) if state.backend else None,
        strategy=strategy,
    )


def check_divides(grad_accum: int, size: int, where: str) -> None:
    """With N processes each optimizer step's ``grad_accum`` micro-batches are split N ways, so N must
    divide it (the effective batch stays ``batch_size x grad_accum`` whatever N is)."""
    if size > 1 and grad_accum % size:
        raise ConfigError(
            f"{where}: grad_accum={grad_accum} is not divisible by the world size {size}; the effective "
            f"batch is batch_size x grad_accum, split over the processes: set grad_accum to a multiple of "
            f"{size} (and divide batch_size by the same factor to keep the effective batch)"
        )


def barrier() -> None:
    if world().distributed:
        import torch.distributed as dist

        dist.barrier()


def from_main(value: T) -> T:
    """The main process's ``value`` on every rank (a pickled broadcast; identity in a world of one)."""
    if not world().distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(value: T) -> list[T]:
    """Every rank's ``value``, in rank order."""
    w = world()
    if not w.distributed:
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, value)
    return out


def map_batches(slices: Iterable[slice], fn: Callable[[slice], T]) -> list[tuple[slice, T]]:
    """``[(slice, fn(slice)) ...]`` in the order of ``slices``; with N processes batch ``b`` runs on rank
    ``b % N`` and the results are gathered once at the end, so each batch is computed exactly once.

    ``slices`` is iterated in full on every rank (a progress bar over it advances everywhere). Under FSDP
    (:attr:`World.lockstep`) every rank computes every batch: the same inputs give every rank the same
    forwards, which a sharded model needs (module doc)."""
    w = world()
    if not w.distributed or w.lockstep:
        return [(sl, fn(sl)) for sl in slices]
    order: list[slice] = []
    mine: dict[int, T] = {}
    for b, sl in enumerate(slices):
        order.append(sl)
        if b % w.size == w.rank:
            mine[b] = fn(sl)
    merged: dict[int, Any] = {}
    for part in all_gather(mine):
        merged.update(part)
    if sorted(merged) != list(range(len(order))):
        raise RuntimeError(f"sharded evaluation gathered batches {sorted(merged)[:8]} of {len(order)}")
    return [(sl, merged[b]) for b, sl in enumerate(order)]


def all_reduce_grads(params: Iterable[Any], bucket: int = 1 << 24) -> None:
    """Sum ``.grad`` over the ranks in place. A parameter that got no gradient on any rank keeps
    ``grad=None`` (as in one process, where AdamW then skips it); one that got one on some rank only gets
    the sum. Gradients go in flat buckets of ``bucket`` elements to keep the number of calls small."""
    if not world().distributed:
        return
    plist = [p for p in params if not is_sharded(p)]  # FSDP's reduce-scatter has summed the sharded ones
    for p, g in zip(plist, _summed([p.grad for p in plist], plist, bucket), strict=True):
        p.grad = g


def summed_grads(named: dict[str, Any]) -> dict[str, Any]:
    """The pending gradients summed over ranks, as CPU copies (for a checkpoint; the live ones stay
    per-rank partial sums). Collective: every rank calls it at the same point."""
    out: dict[str, Any] = {}
    if any(is_sharded(p) for p in named.values()):  # summed by reduce-scatter already: gather the shards
        out = {n: gather_full(p.grad).cpu() for n, p in named.items() if is_sharded(p) and p.grad is not None}
        named = {n: p for n, p in named.items() if not is_sharded(p)}
    plist = list(named.values())
    grads = [None if p.grad is None else p.grad.detach().clone() for p in plist]
    if world().distributed:
        grads = _summed(grads, plist, 1 << 24)
    out.update({n: g.cpu() for n, g in zip(named, grads, strict=True) if g is not None})
    return out


def _summed(grads: list[Any], like: list[Any], bucket: int) -> list[Any]:
    """``grads`` summed over ranks (None where no rank has one); the tensors are reduced in place."""
    import torch
    import torch.distributed as dist

    if not like:
        return []
    flags = torch.tensor([0.0 if g is None else 1.0 for g in grads], device=like[0].device)
    dist.all_reduce(flags)
    out: list[Any] = []
    group: list[Any] = []
    size = 0
    for g, p, flag in zip(grads, like, flags.tolist(), strict=True):
        if flag == 0:
            out.append(None)
            continue
        g = torch.zeros_like(p) if g is None else g
        out.append(g)
        group.append(g)
        size += g.numel()
        if size >= bucket:
            _reduce_flat(group)
            group, size = [], 0
    if group:
        _reduce_flat(group)
    return out


def _reduce_flat(group: list[Any]) -> None:
    import torch
    import torch.distributed as dist

    flat = torch.cat([g.reshape(-1) for g in group])
    dist.all_reduce(flat)
    offset = 0
    for g in group:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


# --- FSDP ---------------------------------------------------------------------------------------------------
def block_classes(model: Any) -> set[str]:
    """The class names of ``model``'s transformer blocks: what Hugging Face models list as
    ``_no_split_modules`` (the unit accelerate's FSDP auto-wrap policy shards)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard_backbone(model: Any, device: str) -> dict[str, Any]:
    """Shard the parameters of ``model``'s transformer blocks over the world (FSDP2 ``fully_shard``, one unit
    per block, on ``device``'s type); everything else stays whole. Call it before adapters are added. Returns
    what a record states: blocks, sharded and replicated parameter counts."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    w = world()
    classes = block_classes(model)
    # the kit calls the input embeddings directly (injection); a block holding them (BERT lists its
    # embeddings module) stays whole, as do embeddings and head everywhere
    keep_whole = {id(e) for e in _embedding_modules(model)}
    blocks = [
        m
        for m in model.modules()
        if type(m).__name__ in classes and not any(id(sub) in keep_whole for sub in m.modules())
    ]
    if not blocks:
        raise ConfigError(
            f"--strategy fsdp: {type(model).__name__} lists no transformer block classes "
            f"(_no_split_modules) to shard; use --strategy ddp"
        )
    kind = torch.device(device).type
    mesh = init_device_mesh(kind, (w.size,))
    sharded = sum(p.numel() for b in blocks for p in b.parameters())
    block_names = sorted({type(b).__name__ for b in blocks})  # before fully_shard renames them FSDP<name>
    for block in blocks:
        fully_shard(block, mesh=mesh)
        # gradients summed, as all_reduce_grads (a plain SUM: gloo has no pre-multiplied sum)
        block.set_gradient_divide_factor(1.0)  # type: ignore[operator]
        block.set_force_sum_reduction_for_comms(True)  # type: ignore[operator]
    total = sum(p.numel() for p in model.parameters())
    return {
        "strategy": "fsdp",
        "blocks": len(blocks),
        "block_class": block_names,
        "sharded_parameters": int(sharded),
        "replicated_parameters": int(total - sharded),
        "sharded_per_rank": int(-(-sharded // w.size)),
    }


def _embedding_modules(model: Any) -> list[Any]:
    out = []
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        try:
            module = getattr(model, getter)()
        except (AttributeError, NotImplementedError):
            module = None
        if module is not None:
            out.append(module)
    return out


def local_part(tensor: Any) -> Any:
    """This rank's shard of a sharded tensor, else the tensor (for per-rank checks such as digests)."""
    return tensor.to_local() if is_sharded(tensor) else tensor


def is_sharded(tensor: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def finished_everywhere(done_here: bool, keep_in_step: Callable[[], Any]) -> bool:
    """For a decoding loop: may this rank stop? Outside FSDP, ``done_here``. Under FSDP a rank that is done
    runs ``keep_in_step`` (one throw-away forward) for every step another rank still takes, then all stop
    together; so every rank calls this once per step, the last step included."""
    w = world()
    if not w.lockstep:
        return done_here
    while True:
        if _all_true(done_here):
            return True
        if not done_here:
            return False
        keep_in_step()


def _all_true(flag: bool) -> bool:
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _collective_device() -> Any:
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if world().backend == "nccl" else "cpu"


def micro_batches_short(group_size: int) -> int:
    """Under FSDP, the zero-loss passes this rank owes in an accumulation group of ``group_size``
    micro-batches (micro-batch j on rank j % N): the most any rank runs minus this rank's own."""
    w = world()
    if not w.lockstep:
        return 0
    most = -(-group_size // w.size)
    mine = len(range(w.rank, group_size, w.size))
    return most - mine


def gather_full(obj: T) -> T:
    """``obj`` (a tensor, or dicts/lists/tuples of them) with every sharded tensor replaced by the full one.
    Collective when there is a sharded tensor: every rank calls it with the same structure."""
    if is_sharded(obj):
        return obj.full_tensor()  # type: ignore[attr-defined, no-any-return]
    if isinstance(obj, dict):
        return type(obj)((k, gather_full(v)) for k, v in obj.items())  # type: ignore[call-arg, return-value]
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(gather_full(v) for v in obj)  # type: ignore[return-value]
    return obj


def assign(param: Any, value: Any) -> None:
    """``param.copy_(value)`` where ``value`` is a full tensor and ``param`` may be a shard (each rank takes
    its own slice of ``value``, which every rank holds: no communication)."""
    value = value.to(param.device, param.dtype)
    if is_sharded(param):
        from torch.distributed.tensor import distribute_tensor

        value = distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=None)
    param.copy_(value)


def shard_like(param: Any, value: Any) -> Any:
    """``value`` (full, shaped like ``param``) as a tensor that fits ``param``: its shard when sharded."""
    if not is_sharded(param):
        return value
    from torch.distributed.tensor import distribute_tensor

    value = value.to(param.device)
    return distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=None)


def clip_grad_norm(params: list[Any], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for a mix of sharded and whole parameters: the total norm counts
    each shard once (squares summed over the ranks) and each replicated gradient once."""
    import torch

    if not any(is_sharded(p) for p in params):
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    local = [g.to_local() for g in grads if is_sharded(g)]
    whole = [g for g in grads if not is_sharded(g)]
    device = local[0].device if local else whole[0].device
    sharded_sq = torch.zeros((), dtype=torch.float32, device=device)
    for g in local:
        sharded_sq += g.detach().float().pow(2).sum()
    dist.all_reduce(sharded_sq)
    whole_sq = sum((g.detach().float().pow(2).sum() for g in whole), torch.zeros((), device=device))
    total = torch.sqrt(sharded_sq + whole_sq)
    coef = float(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    for g in grads:
        g.mul_(coef)


def load_full_state(module: Any, state: dict[str, Any]) -> None:
    """``module.load_state_dict(state)`` for a state of whole tensors, also when ``module`` holds shards."""
    import torch

    if not any(is_sharded(p) for p in module.parameters()):
        module.load_state_dict(state)
        return
    own = dict(module.named_parameters())
    own.update(dict(module.named_buffers()))
    missing = sorted(set(own) - set(state))
    if missing:
        raise ConfigError(f"saved state lacks {missing[0]} (and {len(missing) - 1} more)")
    with torch.no_grad():
        for name, tensor in own.items():
            assign(tensor, state[name])

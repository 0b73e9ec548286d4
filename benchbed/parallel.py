"""The data-parallel world this process belongs to, and the few collectives benchbed needs.

``accelerate launch`` (or ``torchrun``) starts N copies of ``benchbed run`` with ``WORLD_SIZE``/``RANK`` in
the environment; :func:`world` joins them through accelerate's ``PartialState`` (gloo on CPU, NCCL on CUDA,
the current CUDA device set to the local rank) and says who is who. Without them it is a world of one
and nothing here touches ``torch.distributed``, so single-process runs are unchanged to the bit.

Three places use it, so the sharding of work over the ranks lives here and nowhere else (the sharding of
weights, FSDP, is :mod:`benchbed.sharding`):

- the tasks' batching loops (:func:`map_batches`): batch ``b`` is computed by rank ``b % N``, the results
  are gathered once per loop, in batch order, on every rank;
- the training loop (``benchbed.llm.train``): micro-batch ``j`` of an accumulation group runs on rank
  ``j % N`` and :func:`all_reduce_grads` sums the gradients, so an optimizer step sees the same gradient
  as one process stepping over the whole group (DDP's semantics, written out because the kit's loss
  functions call the model directly rather than through one wrapped ``forward``);
- the runner: only :attr:`World.is_main` writes records and stage files; :func:`from_main` hands the main
  process's decisions (a record already exists) to the others so that every rank takes the same path.

``--strategy fsdp``: the backbone's blocks are sharded (:mod:`benchbed.sharding`); every block forward is then
a collective, so the ranks run the same forwards in the same order (:attr:`World.lockstep`): the training
loop evens out accumulation groups, :func:`map_batches` runs every batch on every rank, and decoding loops
stop together (:func:`finished_everywhere`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from benchbed.errors import ConfigError
from benchbed.sharding import gather_full, is_sharded

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


def check_divides(grad_accum: int, size: int, where: str, key: str = "grad_accum") -> None:
    """With N processes each optimizer step's ``grad_accum`` micro-batches are split N ways, so N must
    divide it (the effective batch stays ``batch_size x grad_accum`` whatever N is). ``key``: the
    parameter's name in the error (a stage's own, e.g. ``stage1_grad_accum``)."""
    if size > 1 and grad_accum % size:
        raise ConfigError(
            f"{where}: {key}={grad_accum} is not divisible by the world size {size}; the effective "
            f"batch is batch_size x {key}, split over the processes: set {key} to a multiple of "
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


# --- FSDP lock-step ---------------------------------------------------------------------------------------
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

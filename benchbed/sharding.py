"""FSDP2 sharding of a backbone and the tensor helpers that let the rest of the kit not care about shards.

``--strategy fsdp`` (FSDP2, ``torch.distributed.fsdp.fully_shard``) is for a backbone that does not fit one
device. :func:`shard_backbone` shards the parameters of its transformer blocks (the classes the model lists in
``_no_split_modules``, the blocks accelerate's transformer auto-wrap policy wraps) over the ranks, right after
loading and before any adapter is added; embeddings, final norm and LM head stay whole on every rank (a few
per cent of a 7B model), so the kit's injectors, which call the input embeddings directly, work unchanged.
Adapters (LoRA), projectors and new token rows are added afterwards as ordinary replicated parameters, so
training, gradient sums, checkpoints and stage blobs are DDP's. What changes is that every block forward is a
collective (an all-gather of the block's weights), so the ranks must run the same number of forwards in the
same order (``benchbed.parallel.World.lockstep``):

- training: an accumulation group at an epoch's end that does not split evenly gets zero-loss forward and
  backward passes on the ranks that have no micro-batch left (``benchbed.llm.train``);
- evaluation (``benchbed.parallel.map_batches``) runs every batch on every rank instead of sharding them: a
  method may split a batch into token-budget chunks, so sharded batches would give the ranks different
  numbers of forwards;
- decoding loops stop only when every rank has finished (``benchbed.parallel.finished_everywhere``).

A method that fine-tunes the blocks themselves (a full fine-tune) trains sharded parameters: FSDP sums their
gradients by reduce-scatter (divide factor 1: a sum, as ``benchbed.parallel.all_reduce_grads`` does for the
others), each rank keeps the optimizer state of its shard, and checkpoints, the best state and stage blobs
hold full tensors (:func:`gather_full`, :func:`assign`), so they load under any strategy and number of
processes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from benchbed.errors import ConfigError

T = TypeVar("T")


def block_classes(model: Any) -> set[str]:
    """The class names of ``model``'s transformer blocks: what Hugging Face models list as
    ``_no_split_modules`` (the unit accelerate's FSDP auto-wrap policy shards)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard_backbone(model: Any, device: str, world_size: int) -> dict[str, Any]:
    """Shard the parameters of ``model``'s transformer blocks over the world (FSDP2 ``fully_shard``, one unit
    per block, on ``device``'s type); everything else stays whole. Call it before adapters are added. Returns
    what a record states: blocks, sharded and replicated parameter counts."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

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
    mesh = init_device_mesh(kind, (world_size,))
    sharded = sum(p.numel() for b in blocks for p in b.parameters())
    block_names = sorted({type(b).__name__ for b in blocks})  # before fully_shard renames them FSDP<name>
    for block in blocks:
        # every block is its own FSDP root (the kit enters the model at different modules), and a root
        # keeps its weights gathered after forward unless told otherwise: told, so a block between forwards
        # (evaluation, the layer-prefix injector's K/V projections) holds only its shard
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
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
        "sharded_per_rank": int(-(-sharded // world_size)),
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
    param.copy_(shard_like(param, value.to(param.device, param.dtype)))


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
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConfigError(f"saved state lacks {missing[0]}{more}; delete the stage to retrain it")
    with torch.no_grad():
        for name, tensor in own.items():
            assign(tensor, state[name])


def call_whole(module: Any, *args: Any) -> Any:
    """``module(*args)`` for a piece of a sharded block called outside the block's forward (the layer-prefix
    injector runs each layer's K/V projections on the prefix): its parameters are gathered for the call
    (differentiable, a collective: every rank makes the same calls). Without shards: ``module(*args)``."""
    params = dict(module.named_parameters())
    if not any(is_sharded(p) for p in params.values()):
        return module(*args)
    from torch.func import functional_call

    return functional_call(module, {n: gather_full(p) for n, p in params.items()}, args)

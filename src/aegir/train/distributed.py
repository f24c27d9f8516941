"""Data-parallel wiring for `torchrun`: process-group setup, DDP/FSDP wrapping, batch sharding.

Under `torchrun --nproc-per-node N -m aegir ...` every process sees RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT in its environment; without them everything runs as a single process and
no process group is created. Backend: nccl on CUDA, gloo on CPU (so the same path runs in CPU tests).

Equal results for N processes and 1 process on the same global batch need two things handled here:
each rank takes a fixed contiguous slice of the global batch (`shard_range`), and losses are summed
over the *global* token count (`all_reduce_sum`) instead of averaging per-rank means, because DDP
averages gradients across ranks and per-rank means weight ranks with fewer tokens too heavily.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: no process group

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def init_distributed(device: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the torchrun process group if the environment defines one; else single-process info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world, timeout=_dt.timedelta(seconds=timeout_s)
        )
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def teardown(info: DistInfo) -> None:
    if info.is_distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.is_distributed:
        dist.barrier()


def shard_range(global_batch: int, rank: int, world_size: int) -> range:
    """Rank `rank`'s contiguous slice of a global batch of `global_batch` sample slots.

    Plays the role of `DistributedSampler` for the corpus, whose samples are addressed by a global
    index: step s uses indices [s*B, (s+1)*B) and each rank takes its slice of them.
    """
    if global_batch % world_size != 0:
        raise ValueError(
            f"global batch size {global_batch} is not divisible by the number of processes {world_size}"
        )
    per = global_batch // world_size
    return range(rank * per, (rank + 1) * per)


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a (detached) tensor over ranks; identity for a single process."""
    if not info.is_distributed:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def broadcast_object(obj, info: DistInfo):
    """Rank 0's Python object on every rank (e.g. the run folder path)."""
    if not info.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: nn.Module, info: DistInfo, strategy: str = "ddp") -> nn.Module:
    """Wrap for data parallelism: "ddp" (default), "fsdp" (shards parameters; for base), "none".

    Single-process runs are returned unwrapped whatever the strategy.
    """
    if strategy not in ("ddp", "fsdp", "none"):
        raise ValueError(f"unknown parallel strategy {strategy!r} (use ddp, fsdp or none)")
    if not info.is_distributed or strategy == "none":
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP(model, device_id=info.device if info.device.type == "cuda" else None, use_orig_params=True)
    ids = [info.device.index] if info.device.type == "cuda" else None
    # find_unused_parameters: routing can leave a stage's pad_dimension or a head unused in a step.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def full_state_dict(model: nn.Module, info: DistInfo) -> dict[str, torch.Tensor]:
    """A full (unsharded) CPU state dict; under FSDP every rank must call this together."""
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    except ImportError:  # pragma: no cover
        FSDP = None
    if FSDP is not None and isinstance(model, FSDP):
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType

        cfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, cfg):
            return model.state_dict()
    return unwrap(model).state_dict()

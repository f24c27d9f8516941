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
    y = x.detach().to(info.device).clone()  # nccl reduces only CUDA tensors
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y.to(x.device)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's Python object on every rank (e.g. the run folder path)."""
    if not info.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def is_fsdp(model: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - old torch
        return False
    return isinstance(model, FSDPModule)


def wrap_model(model: nn.Module, info: DistInfo, strategy: str = "ddp") -> nn.Module:
    """Wrap for data parallelism: "ddp" (default), "fsdp" (shards parameters, gradients and
    optimizer state; meant for base), "none". Single-process runs are returned unwrapped.

    FSDP is PyTorch's `fully_shard` (FSDP2): every submodule whose class name ends in "Block" is
    its own shard group (the RWKV-7 blocks; the benchmark Transformer's blocks), the rest goes to
    the root group. FSDP2 also runs on CPU with gloo, so the same path is testable without GPUs
    (the older FullyShardedDataParallel class refuses CPU-only machines).
    """
    if strategy not in ("ddp", "fsdp", "none"):
        raise ValueError(f"unknown parallel strategy {strategy!r} (use ddp, fsdp or none)")
    if not info.is_distributed or strategy == "none":
        return model
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(info.device.type, (info.world_size,))
        for m in list(model.modules()):
            if m is not model and type(m).__name__.endswith("Block"):
                fully_shard(m, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    # find_unused_parameters: routing can leave a stage's pad_dimension or a head unused in a step.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (FSDP2 shards in place: the module is itself)."""
    return getattr(model, "module", model)


def _sd_options(full: bool = True):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=True)


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A full, unsharded CPU state dict (collective under FSDP: call on every rank)."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_sd_options())
    return unwrap(model).state_dict()


def optimizer_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """The optimizer's state with full tensors (collective under FSDP)."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, opt, options=_sd_options())
    return opt.state_dict()


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(model, state, options=_sd_options())
    else:
        unwrap(model).load_state_dict(state)


def load_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict) -> None:
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, opt, state, options=_sd_options())
    else:
        opt.load_state_dict(state)
        _fit_row_slices(opt)


def _fit_row_slices(opt: torch.optim.Optimizer) -> None:
    """Optimizer moments saved for a larger table whose leading rows this parameter now is.

    Checkpoints written before the tied embedding was split (model/embedding.py) hold AdamW state for
    all 65,536 rows of `embedding.weight`; the trainable parameter is now its first n_active rows, at
    the same place in the same group. Keep those rows, so such runs still resume."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if (isinstance(v, torch.Tensor) and v.dim() == p.dim() and v.dim() >= 1 and v.shape != p.shape
                        and v.shape[1:] == p.shape[1:] and v.shape[0] > p.shape[0]):
                    opt.state[p][k] = v[: p.shape[0]].clone()


def local_value(x: torch.Tensor) -> float:
    """float() of a tensor that may be a DTensor (FSDP2 gradient norms are)."""
    return float(x.full_tensor() if hasattr(x, "full_tensor") else x)

"""torchrun support shared by the modes that scale out (sa, finetune)."""
import os

import torch
import torch.distributed as dist


def distributed_context(device: str | torch.device) -> tuple:
    """(rank, world size) under torchrun, after joining the process group (NCCL on CUDA, gloo on CPU);
    (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return dist.get_rank(), world


def local_device(device: str | torch.device) -> str | torch.device:
    """Each torchrun process on its own GPU: cuda -> cuda:LOCAL_RANK."""
    if str(device) == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device

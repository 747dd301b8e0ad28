"""HRank (Lin et al., 2020): the average rank of each channel's feature maps over a few batches, computed in the
tool and cached under --rank_path by a hash of the weights."""
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from compression_tool.commen_utils.atomic import atomic_path
from compression_tool.commen_utils.batching import batches as batch_iter, device_of
from compression_tool.commen_utils.checkpoint import weights_digest
from compression_tool.commen_utils.hooks import forward_hooks

from .graph import ChannelGraph, PrunableGroup

log = logging.getLogger(__name__)


def feature_module(graph: ChannelGraph, group: PrunableGroup) -> str:
    """Where HRank reads a group's feature maps: the leader's activation (else its BN, else the conv)."""
    parent = group.leader.rpartition(".")[0]
    members = [edit.module for edit in graph.plan(group, [0]) if edit.module.startswith(parent)]
    for kinds in ((nn.PReLU, nn.ReLU, nn.Hardswish), (nn.BatchNorm2d,)):
        for name in members:
            if isinstance(graph.modules[name], kinds):
                return name
    return group.leader


@torch.no_grad()
def hrank_ranks(model: nn.Module, graph: ChannelGraph, images: torch.Tensor, batch_size: int,
                batches: int) -> dict:
    """{leader weight: average matrix rank of each channel's feature map} over `batches` batches."""
    watched = {feature_module(graph, g): g.param for g in graph.groups}
    totals, count = {}, 0

    def hook(name):
        def record(_, __, output):
            ranks = torch.linalg.matrix_rank(output.float()).double().sum(0)
            totals[watched[name]] = totals.get(watched[name], 0) + ranks
        return record

    with forward_hooks({graph.modules[name]: hook(name) for name in watched}):
        model.eval()
        for batch in batch_iter(images[:batches * batch_size], batch_size, device_of(model)):
            model(batch)
            count += len(batch)
    return {param: (total / count).cpu() for param, total in totals.items()}


def load_or_compute_ranks(loaded, images: torch.Tensor, batch_size: int, batches: int, rank_path: str | Path) -> dict:
    """HRank ranks on the first `batches` batches of `images`, cached as .npz under --rank_path
    (work_space/rank_conv/), keyed by a hash of the weights (not a file name: two checkpoints called best.pt are
    two models), the input size and the batch count."""
    h, w = loaded.input_size
    name = f"{Path(loaded.arch).stem}_{weights_digest(loaded.model)}_{h}x{w}_b{batches}.npz"
    cache = Path(rank_path) / name
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            return {k: torch.from_numpy(stored[k]) for k in stored.files}
    graph = ChannelGraph(loaded.model, loaded.input_size)
    ranks = hrank_ranks(loaded.model, graph, images, batch_size, batches)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v.numpy() for k, v in ranks.items()})
    log.info(f"HRank ranks cached: {cache}")
    return ranks

"""How a group's channels are ranked (lower score = removed first): a registry of criteria, each a class over
a group, like Torch-Pruning's importance objects: built once (`make_criterion`, or `measured` for one that
reads the model's feature maps), then passed to whatever prunes. L1 and FPGM score each producer's own slice of
the group's channels from its weights; HRank holds the average feature-map ranks it measured (prune_module.hrank,
cached on disk).
"""
from typing import Callable

import torch
import torch.nn as nn

from compression_tool.commen_utils.errors import UserError

from .graph import PrunableGroup

CRITERIA: dict[str, type["Criterion"]] = {}


def register_criterion(name: str) -> Callable:
    def add(cls: type) -> type:
        CRITERIA[name] = cls
        cls.name = name
        return cls
    return add


class Criterion:
    name = ""

    @classmethod
    def measured(cls, loaded, images, *, batch_size: int, batches: int, cache_folder) -> "Criterion":
        """The criterion ready for `loaded`'s model: a data-driven one measures it on `images` (its first
        `batches` batches) and caches what it measured under `cache_folder`; the others need nothing."""
        return cls()

    def scores(self, model: nn.Module, group: PrunableGroup) -> torch.Tensor:
        """One float64 score per channel of the group."""
        raise NotImplementedError


class WeightCriterion(Criterion):
    """Summed over a group's producers (one ratio for a residual stage), each scoring its own slice."""

    def filter_scores(self, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, model: nn.Module, group: PrunableGroup) -> torch.Tensor:
        modules = dict(model.named_modules())
        # A depthwise or grouped producer's filter sees a block of inputs only: ranked by the dense ones
        slices = [s for s in group.slices
                  if not (isinstance(modules[s[0]], nn.Conv2d) and modules[s[0]].groups > 1)] or group.slices[:1]
        total = torch.zeros(group.width, dtype=torch.float64)
        for name, own, channels in slices:
            total.index_add_(0, torch.tensor(channels), self.filter_scores(modules[name].weight[own]).double().cpu())
        return total


@register_criterion("l1")
class L1(WeightCriterion):
    def filter_scores(self, weight: torch.Tensor) -> torch.Tensor:
        return l1_scores(weight)


@register_criterion("fpgm")
class FPGM(WeightCriterion):
    def filter_scores(self, weight: torch.Tensor) -> torch.Tensor:
        return fpgm_scores(weight)


@register_criterion("hrank")
class HRank(Criterion):
    def __init__(self, ranks: dict | None = None):
        self.ranks = ranks  # {leader weight: average rank of each channel's feature maps}

    @classmethod
    def measured(cls, loaded, images, *, batch_size: int, batches: int, cache_folder) -> "HRank":
        from .hrank import load_or_compute_ranks
        return cls(load_or_compute_ranks(loaded, images, batch_size, batches, cache_folder))

    def scores(self, model: nn.Module, group: PrunableGroup) -> torch.Tensor:
        if self.ranks is None or group.param not in self.ranks:
            raise UserError(f"no HRank ranks for {group.param}")
        return torch.as_tensor(self.ranks[group.param], dtype=torch.float64)


def l1_scores(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().flatten(1).abs().sum(1)


def fpgm_scores(weight: torch.Tensor) -> torch.Tensor:
    """FPGM as in the paper: each signed filter's summed Euclidean distance to all others; the filters
    closest to the geometric median (smallest sum) are the most replaceable. (Torch-Pruning's FpgmImportance
    measures distances on |w|^p instead, hence our own.)"""
    flat = weight.detach().flatten(1).double()
    return torch.cdist(flat, flat).sum(0)


def check_ranking(criterion: str, reconstruct: int, bn_recalibrate: int) -> None:
    """A config's ranking and repair settings: a registered criterion, image counts >= 0 (one line if not)."""
    if criterion not in CRITERIA:
        raise UserError(f"criterion {criterion}: choose one of {', '.join(CRITERIA)}")
    for flag, count in (("reconstruct", reconstruct), ("bn_recalibrate", bn_recalibrate)):
        if count < 0:
            raise UserError(f"--{flag} {count}: a number of training images, >= 0")


def make_criterion(name: str) -> Criterion:
    """The criterion called `name`, built from nothing (HRank: `HRank.measured`, or `HRank(ranks)`)."""
    check_ranking(name, 0, 0)
    return CRITERIA[name]()


def criterion_named(name: str, criterion: Criterion | None = None) -> Criterion:
    """The criterion a run's config names: the one built for it (HRank with its measured ranks), else a new one."""
    if criterion is None:
        return make_criterion(name)
    if criterion.name != name:
        raise ValueError(f"the config names criterion {name}, the run was given {criterion.name}")
    return criterion

"""Thinning a model by a schedule: channels ranked by a criterion, removed group after group, then repaired."""
import copy
from typing import NamedTuple

import torch.nn as nn

from compression_tool.commen_utils.errors import step

from .criteria import L1, Criterion
from .graph import ChannelGraph, Edit, call_order
from .repair import Repair, following_norms, recalibrate_bn, reconstruct_sequentially, removed_channels


class Thinned(NamedTuple):
    plans: list[list[Edit]]  # what was removed, group after group
    refitted: list[str]      # the layers that lost inputs and were refitted by least squares
    not_refitted: dict       # {layer that lost inputs: why it was left as it is}


def prune_model(model: nn.Module, input_size, ratios: dict, criterion: Criterion | None = None, round_to: int = 1,
                graph: ChannelGraph | None = None) -> list[list[Edit]]:
    """Remove channels in place. ratios: {leader weight name: fraction of its group's channels to remove};
    `criterion` ranks them (default L1).
    Scores are taken before any removal, so the outcome does not depend on the schedule's order; each
    group's edits are derived after the previous group's removal (behind a concatenation they shift).
    Returns the plans applied (what reconstruction needs to know)."""
    graph = graph if graph is not None and graph.model is model else ChannelGraph(model, input_size)
    criterion = criterion or L1()
    removals = []
    for param, ratio in ratios.items():
        group = graph.group(param)
        with step(f"layer {param}"):
            idxs = group.channels_to_remove(criterion.scores(model, group), ratio, round_to)
        if idxs:
            removals.append((group, idxs))
    plans = []
    for group, idxs in removals:
        with step(f"layer {group.param}"):
            plans.append(graph.remove(group, idxs))
    return plans


def prune_and_repair(model: nn.Module, input_size, ratios: dict, criterion: Criterion | None = None,
                     round_to: int = 1, graph: ChannelGraph | None = None, repair: Repair = Repair()) -> Thinned:
    """prune_model, then the repair: least squares in forward order, then BN statistics, in place."""
    graph = graph or ChannelGraph(model, input_size)
    original = copy.deepcopy(model) if repair.reconstruct else None
    plans = prune_model(model, input_size, ratios, criterion, round_to, graph)
    not_refitted = {}
    if repair.reconstruct:
        not_refitted = reconstruct_sequentially(model, original, plans, repair.images[:repair.reconstruct],
                                                following_norms(original, input_size),
                                                call_order(original, input_size))
    if repair.bn_recalibrate:
        recalibrate_bn(model, repair.images[:repair.bn_recalibrate])
    refitted = [name for name in removed_channels(plans)[0] if repair.reconstruct and name not in not_refitted]
    return Thinned(plans, refitted, not_refitted)

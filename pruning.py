"""Channel pruning on torch-pruning's dependency graph: find the prunable groups of coupled layers, rank
channels (L1 / FPGM / HRank), remove them physically, record `keep`, and the `--mode prune` job.

A *group* is everything that must lose the same channels: a conv and its BN/PReLU, the depthwise conv that
follows it, the next conv's input channels, a flattened Linear's input blocks, or a whole residual stage
(every producer of the summed channels plus the BN-first norms that read them). A group is named by its
*leader*, the first conv (module order) whose filters it removes; the CSV and YAML name the leader's weight.
"""
import re
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning._helpers import to_plain_idxs

from commen_utils.errors import UserError
from commen_utils.model_stats import count_macs, count_params
from model_define.keep import build_graph, layer_width, out_channel_pruner


@dataclass
class PrunableGroup:
    leader: str            # module name of the first conv whose filters the group removes
    producers: list        # names of every conv/linear whose output channels go with it
    width: int

    @property
    def param(self):
        return f"{self.leader}.weight"


class ChannelGraph:
    """The dependency graph of one model plus its prunable groups, built once and reused."""

    def __init__(self, model, input_size):
        self.model, self.input_size = model, tuple(input_size)
        self.graph = build_graph(model, input_size)
        self.names = {m: n for n, m in model.named_modules()}
        self.modules = dict(model.named_modules())
        self.groups = self._find_groups()
        self.by_param = {g.param: g for g in self.groups}

    def _members(self, module, idxs):
        return self.graph.get_pruning_group(module, out_channel_pruner(module), idxs=list(idxs))

    def _find_groups(self):
        allowed = re.compile(getattr(self.model, "PRUNABLE", ".*"))
        groups, claimed = [], set()
        for name, module in self.model.named_modules():
            if not isinstance(module, nn.Conv2d) or name in claimed or not allowed.fullmatch(name):
                continue
            producers, consumed = [], False
            for dep, _ in self._members(module, [0]):
                target = dep.target.module
                if not isinstance(target, (nn.Conv2d, nn.Linear)):
                    continue
                if self.graph.is_out_channel_pruning_fn(dep.handler):
                    producers.append(self.names[target])
                elif not (isinstance(target, nn.Conv2d) and target.groups == target.in_channels > 1):
                    consumed = True
            claimed.update(producers)
            # Channels nobody reads are the model's output (the embedding): never prunable.
            if consumed and module.out_channels > 1:
                groups.append(PrunableGroup(name, producers, module.out_channels))
        return groups

    def group(self, param):
        if param not in self.by_param:
            raise UserError(f"{param}: not a prunable layer of this model (see --mode summary)")
        return self.by_param[param]

    def plan(self, group: PrunableGroup, idxs):
        """The concrete edits that remove channels `idxs` of a group: [(module name, pruning fn, indices)].
        Plans are computed on this graph once and can be replayed on any copy of the model."""
        # Members that are not modules (tp's wrappers of reshape/concat ops) hold no parameters.
        return [(self.names[dep.target.module], dep.handler, sorted(to_plain_idxs(i)))
                for dep, i in self._members(self.modules[group.leader], idxs) if dep.target.module in self.names]


def apply_plan(model, plan):
    modules = dict(model.named_modules())
    for name, handler, idxs in plan:
        handler(modules[name], idxs)
    return model


# ---------------------------------------------------------------- ranking: lower score = removed first
def l1_scores(weight):
    return weight.detach().flatten(1).abs().sum(1)


def fpgm_scores(weight):
    """FPGM as in the paper: each signed filter's summed Euclidean distance to all others; the filters
    closest to the geometric median (smallest sum) are the most replaceable. (Torch-Pruning's FpgmImportance
    measures distances on |w|^p instead, hence our own.)"""
    flat = weight.detach().flatten(1).double()
    return torch.cdist(flat, flat).sum(0)


def group_scores(model, group: PrunableGroup, criterion="l1", ranks=None):
    """Per-channel scores of a group: summed over its producers (one ratio for a residual stage)."""
    if criterion == "hrank":
        if ranks is None or group.param not in ranks:
            raise UserError(f"no HRank ranks for {group.param}")
        return torch.as_tensor(ranks[group.param], dtype=torch.float64)
    modules = dict(model.named_modules())
    score = fpgm_scores if criterion == "fpgm" else l1_scores
    weights = [modules[n].weight for n in group.producers
               if not (isinstance(modules[n], nn.Conv2d) and modules[n].groups > 1)] or \
              [modules[group.producers[0]].weight]
    return sum(score(w).double() for w in weights)


def channels_to_remove(scores, ratio, round_to=1):
    """floor(ratio * C) lowest-scoring channels (stable order on ties), always keeping at least one;
    with round_to, the kept width is rounded to a multiple of it (CPU kernels like multiples of 8)."""
    width = len(scores)
    keep = max(1, width - int(ratio * width + 1e-9))
    if round_to > 1 and keep > round_to:
        keep = max(round_to, round(keep / round_to) * round_to)
    order = torch.argsort(scores, stable=True)
    return sorted(order[:width - keep].tolist())


def prune_model(model, input_size, ratios: dict, criterion="l1", ranks=None, round_to=1):
    """Remove channels in place. ratios: {leader weight name: fraction of its group's channels to remove}.
    Scores are taken before any removal, so the outcome does not depend on the schedule's order."""
    graph = ChannelGraph(model, input_size)
    plans = []
    for param, ratio in ratios.items():
        group = graph.group(param)
        idxs = channels_to_remove(group_scores(model, group, criterion, ranks), ratio, round_to)
        if idxs:
            plans.append(graph.plan(group, idxs))
    for plan in plans:
        apply_plan(model, plan)
    return model


def summarize(loaded):
    model, size = loaded.model, loaded.input_size
    graph = ChannelGraph(model, size)
    params, macs = count_params(model), count_macs(model, size)
    print(f"{loaded.arch}: input {size[0]}x{size[1]}, {params / 1e6:.3f} M params, {macs / 1e6:.1f} M MACs")
    print(f"{len(graph.groups)} prunable layers (leader weight, width, coupled producers):")
    for g in graph.groups:
        others = [p for p in g.producers if p != g.leader]
        print(f"  {g.param:40s} {g.width:5d}  {', '.join(others[:4])}{' ...' if len(others) > 4 else ''}")
    return {"params": params, "macs": macs, "prunable_layers": [g.param for g in graph.groups]}


if __name__ == "__main__":  # the original's README ran `python pruning.py ...`: same flags as main.py
    from main import main
    sys.exit(main())

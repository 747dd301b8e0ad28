"""The channel graph: torch-pruning's dependency graph of one model plus its prunable groups, and the plans
(typed edits) that remove a group's channels from any copy of the model.

A *group* is everything that must lose the same channels: a conv and its BN/PReLU, the depthwise conv that
follows it, the next conv's input channels, a flattened Linear's input blocks, or a whole residual stage
(every producer of the summed channels plus the BN-first norms that read them). A group is named by its
*leader*, the first conv or linear layer (module order) whose outputs it removes; the CSV and YAML name the
leader's weight.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning._helpers import to_plain_idxs

from compression_tool.commen_utils.batching import device_of
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.hooks import forward_hooks
from compression_tool.model_define.dependency_graph import build_graph, out_channel_pruner
from compression_tool.model_define.keep import layer_width


@dataclass
class PrunableGroup:
    leader: str            # module name of the first conv whose filters the group removes
    producers: list        # names of every conv/linear whose output channels go with it
    width: int
    # (producer, its own channel indices, the group's channel each one is): behind a concatenation a
    # producer holds a slice of a wider tensor, at an offset
    slices: list = field(default_factory=list)
    # A grouped convolution among the members splits the channels into this many equal blocks; each block
    # must lose the same offsets, so that `groups` stays a divisor of every width (torch-pruning's way).
    channel_groups: int = 1
    renormalised: bool = False  # a LayerNorm reads the channels (see renormalised())

    @property
    def param(self) -> str:
        return f"{self.leader}.weight"

    def channels_to_remove(self, scores, ratio: float, round_to: int = 1) -> list[int]:
        return channels_to_remove(scores, ratio, round_to, self.channel_groups)


class Edit(NamedTuple):
    """One member's share of removing a group's channels: `handler(module, idxs)` on the module named
    `module`; `outputs` tells whether it removes the module's output channels (a norm's features count as
    outputs) or its input channels."""
    module: str
    handler: Callable
    idxs: list
    outputs: bool
    # `module` names a bare nn.Parameter (a layer scale) whose channels run along this dimension
    parameter_dim: int | None = None


def grouped_blocks(module: nn.Module) -> int:
    """How many channel blocks a grouped convolution splits its channels into (1: not grouped; a
    depthwise conv follows its input channel by channel and needs no blocks)."""
    return module.groups if isinstance(module, nn.Conv2d) and 1 < module.groups < module.in_channels else 1


def unsupported_member(dep, module) -> str | None:
    """Why torch-pruning's edit of this member would not give a correct, equally shaped layer, or None.
    Such groups are left out of the prunable list, with the reason (--mode summary prints it)."""
    if dep.target.type == tp.ops.OPTYPE.PARAMETER and sum(size > 1 for size in module.shape) != 1:
        return f"a bare nn.Parameter of shape {tuple(module.shape)} is applied to its channels"
    if isinstance(module, nn.GroupNorm):
        return "it is normalised by a GroupNorm, whose groups would change size"
    return None


def renormalised(module: nn.Module) -> bool:
    """A LayerNorm over the channels: once some are removed, it normalises the others by their own mean and
    variance, so thinning is not the same as zeroing there (ConvNeXt-style blocks)."""
    return isinstance(module, nn.LayerNorm)


def grouping_problem(item, module, width, outputs) -> str | None:
    """Why a grouped convolution's blocks cannot be kept equal when this group loses channels, or None: it
    must see all of the group's channels, in order (not a slice of a concatenation)."""
    own = module.out_channels if outputs else module.in_channels
    if own == width and list(item.idxs) == list(item.root_idxs) == list(range(width)):
        return None
    return f"it reaches a grouped convolution (groups={module.groups}) through a concatenation or split"


class ChannelGraph:
    """The dependency graph of one model plus its prunable groups, built once and reused."""

    def __init__(self, model: nn.Module, input_size, groups_of: "ChannelGraph | None" = None):
        """groups_of: the graph of another, unpruned copy of the same architecture, whose groups are taken
        instead of being found again (they depend on the layers, not on the weights; finding them is most of
        the cost of a graph)."""
        self.model, self.input_size = model, tuple(input_size)
        self.graph = build_graph(model, input_size)
        self.names = {m: n for n, m in model.named_modules()}
        self.modules = dict(model.named_modules())
        self.excluded = {}  # {leader weight: why the group cannot be pruned}
        if groups_of is None:
            self.groups = self._find_groups()
        else:
            self.groups, self.excluded = groups_of.groups, dict(groups_of.excluded)
        self.by_param = {g.param: g for g in self.groups}

    def _members(self, module, idxs):
        return self.graph.get_pruning_group(module, out_channel_pruner(module), idxs=list(idxs))

    def _find_groups(self):
        allowed = re.compile(getattr(self.model, "PRUNABLE", ".*"))
        groups, claimed = [], set()
        for name, module in self.model.named_modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)) or name in claimed or not allowed.fullmatch(name):
                continue
            width = layer_width(module)
            try:
                members = self._members(module, range(width))
            except Exception as error:  # one layer torch-pruning cannot follow need not stop the others
                claimed.add(name)
                self.excluded[f"{name}.weight"] = (f"torch-pruning cannot follow its channels "
                                                   f"({type(error).__name__}: {error})")
                continue
            producers, slices, consumed, problem, blocks, norms = [], [], False, None, 1, False
            for item in members:
                dep, target = item.dep, item.dep.target.module
                # the group stops at an op torch-pruning cannot follow: whatever reads it beyond is unknown
                consumed = consumed or dep.target in self.graph.untraceable
                problem = problem or self.graph.untraceable.get(dep.target) or unsupported_member(dep, target)
                norms = norms or renormalised(target)
                if grouped_blocks(target) > 1:
                    outputs = self.graph.is_out_channel_pruning_fn(dep.handler)
                    problem = problem or grouping_problem(item, target, width, outputs)
                    blocks = math.lcm(blocks, grouped_blocks(target))
                if not isinstance(target, (nn.Conv2d, nn.Linear)):
                    continue
                if self.graph.is_out_channel_pruning_fn(dep.handler):
                    producers.append(self.names[target])
                    slices.append((self.names[target], list(item.idxs), list(item.root_idxs)))
                elif not (isinstance(target, nn.Conv2d) and target.groups == target.in_channels > 1):
                    consumed = True
            claimed.update(producers)
            # Channels nobody reads are the model's output (the embedding): never prunable.
            if not consumed or width <= 1:
                continue
            if width % blocks or width == blocks:
                problem = problem or f"its {width} channels do not split into blocks of its grouped convolutions"
            if problem:
                self.excluded[f"{name}.weight"] = problem
            else:
                groups.append(PrunableGroup(name, list(dict.fromkeys(producers)), width, slices, blocks, norms))
        return groups

    def check_prunable(self, model_name: str) -> None:
        """A model none of whose layers can be pruned is one line, naming the first layer and why."""
        if self.groups:
            return
        if not self.excluded:
            raise UserError(f"{model_name}: nothing can be pruned: no conv or linear layer has outputs that another "
                            f"layer reads")
        param, why = next(iter(self.excluded.items()))
        more = f" (and {len(self.excluded) - 1} more layers: see --mode summary)" if len(self.excluded) > 1 else ""
        raise UserError(f"{model_name}: nothing can be pruned: {param}: {why}{more}")

    def group(self, param: str) -> PrunableGroup:
        if param in self.excluded:
            raise UserError(f"{param}: cannot be pruned: {self.excluded[param]} (see --mode summary)")
        if param not in self.by_param:
            raise UserError(f"{param}: not a prunable layer of this model (see --mode summary)")
        return self.by_param[param]

    def plan(self, group: PrunableGroup, idxs) -> list[Edit]:
        """The concrete edits that remove channels `idxs` of a group: [(module name, pruning fn, indices)],
        for the model as it is now. A plan can be replayed on any copy of the model in that state."""
        return self._plan(self._members(self.modules[group.leader], idxs))

    def _plan(self, members) -> list[Edit]:
        # Bare parameters are named afresh: torch-pruning replaces them when it prunes them. Other members
        # that are not modules (tp's records of concat/split/reshape ops) hold no parameters.
        parameters = {p: name for name, p in self.model.named_parameters()}
        plan = []
        for dep, idxs in members:
            target, parameter = dep.target.module, dep.target.type == tp.ops.OPTYPE.PARAMETER
            name = parameters.get(target) if parameter else self.names.get(target)
            if name is not None:
                plan.append(Edit(name, dep.handler, sorted(to_plain_idxs(idxs)),
                                 self.graph.is_out_channel_pruning_fn(dep.handler),
                                 dep.target.pruning_dim if parameter else None))
        return plan

    def remove(self, group: PrunableGroup, idxs) -> list[Edit]:
        """Remove channels `idxs` of a group from this graph's own model, and return the plan. Torch-pruning
        also updates its record of each concatenation's input widths, so that the next group's channels
        are found at their new offsets."""
        members = self._members(self.modules[group.leader], idxs)
        plan = self._plan(members)
        members.prune(record_history=False)
        return plan


def apply_plan(model: nn.Module, plan: list[Edit]) -> nn.Module:
    modules = dict(model.named_modules())
    for edit in plan:
        if edit.parameter_dim is None:
            edit.handler(modules[edit.module], edit.idxs)
        else:  # tp's parameter pruner reads its dimension from state it shares between parameters: our own
            owner, _, attribute = edit.module.rpartition(".")
            owner = model.get_submodule(owner)
            old, removed = getattr(owner, attribute), set(edit.idxs)
            keep = torch.tensor([i for i in range(old.shape[edit.parameter_dim]) if i not in removed],
                                device=old.device)
            setattr(owner, attribute, nn.Parameter(old.detach().index_select(edit.parameter_dim, keep),
                                                   requires_grad=old.requires_grad))
    return model


def channels_to_remove(scores: torch.Tensor, ratio: float, round_to: int = 1, channel_groups: int = 1) -> list[int]:
    """floor(ratio * C) lowest-scoring channels (stable order on ties), always keeping at least one;
    with round_to, the kept width is rounded to a multiple of it (CPU kernels like multiples of 8).
    With channel_groups, the same offsets go in every block, chosen on the blocks' mean score."""
    if channel_groups > 1:
        block = len(scores) // channel_groups
        per_block = round_to // math.gcd(round_to, channel_groups)
        offsets = channels_to_remove(scores.reshape(channel_groups, block).mean(0), ratio, per_block)
        return [g * block + i for g in range(channel_groups) for i in offsets]
    width = len(scores)
    keep = max(1, width - int(ratio * width + 1e-9))
    if round_to > 1 and keep > round_to:
        keep = max(round_to, round(keep / round_to) * round_to)
    order = torch.argsort(scores, stable=True)
    return sorted(order[:width - keep].tolist())


def call_order(model: nn.Module, input_size) -> list[str]:
    """Module names in the order a forward pass first calls them."""
    order = []
    hooks = {module: lambda m, _, name=name: order.append(name) for name, module in model.named_modules() if name}
    with forward_hooks(hooks, pre=True), torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_size, device=device_of(model)))
    return list(dict.fromkeys(order))

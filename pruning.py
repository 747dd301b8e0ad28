"""Channel pruning on torch-pruning's dependency graph: find the prunable groups of coupled layers, rank
channels (L1 / FPGM / HRank), remove them physically, record `keep`, and the `--mode prune` job.

A *group* is everything that must lose the same channels: a conv and its BN/PReLU, the depthwise conv that
follows it, the next conv's input channels, a flattened Linear's input blocks, or a whole residual stage
(every producer of the summed channels plus the BN-first norms that read them). A group is named by its
*leader*, the first conv or linear layer (module order) whose outputs it removes; the CSV and YAML name the
leader's weight.
"""
import copy
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning._helpers import to_plain_idxs

from commen_utils.atomic import atomic_path, write_text
from commen_utils.checkpoint import save_checkpoint, weights_digest
from commen_utils.errors import UserError
from commen_utils.model_stats import count_macs, count_params
from commen_utils.schedule import read_schedule
from commen_utils.timestamp import time_stamp
from model_define.keep import build_graph, layer_width, out_channel_pruner, record_keep


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
    def param(self):
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


def grouped_blocks(module) -> int:
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


def renormalised(module) -> bool:
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

    def __init__(self, model, input_size):
        self.model, self.input_size = model, tuple(input_size)
        self.graph = build_graph(model, input_size)
        self.names = {m: n for n, m in model.named_modules()}
        self.modules = dict(model.named_modules())
        self.excluded = {}  # {leader weight: why the group cannot be pruned}
        self.groups = self._find_groups()
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
            producers, slices, consumed, problem, blocks, norms = [], [], False, None, 1, False
            for item in self._members(module, range(width)):
                dep, target = item.dep, item.dep.target.module
                problem = problem or unsupported_member(dep, target)
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

    def group(self, param):
        if param in self.excluded:
            raise UserError(f"{param}: cannot be pruned: {self.excluded[param]} (see --mode summary)")
        if param not in self.by_param:
            raise UserError(f"{param}: not a prunable layer of this model (see --mode summary)")
        return self.by_param[param]

    def plan(self, group: PrunableGroup, idxs):
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

    def remove(self, group: PrunableGroup, idxs):
        """Remove channels `idxs` of a group from this graph's own model, and return the plan. Torch-pruning
        also updates its record of each concatenation's input widths, so that the next group's channels
        are found at their new offsets."""
        members = self._members(self.modules[group.leader], idxs)
        plan = self._plan(members)
        members.prune(record_history=False)
        return plan


def apply_plan(model, plan):
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


# ---------------------------------------------------------------- ranking: lower score = removed first
def l1_scores(weight):
    return weight.detach().flatten(1).abs().sum(1)


def fpgm_scores(weight):
    """FPGM as in the paper: each signed filter's summed Euclidean distance to all others; the filters
    closest to the geometric median (smallest sum) are the most replaceable. (Torch-Pruning's FpgmImportance
    measures distances on |w|^p instead, hence our own.)"""
    flat = weight.detach().flatten(1).double()
    return torch.cdist(flat, flat).sum(0)


SCORES = {"l1": l1_scores, "fpgm": fpgm_scores}  # criteria computed from the weights; hrank from feature maps
CRITERIA = (*SCORES, "hrank")


def group_scores(model, group: PrunableGroup, criterion="l1", ranks=None):
    """Per-channel scores of a group: summed over its producers (one ratio for a residual stage), each
    scoring its own slice of the group's channels."""
    if criterion == "hrank":
        if ranks is None or group.param not in ranks:
            raise UserError(f"no HRank ranks for {group.param}")
        return torch.as_tensor(ranks[group.param], dtype=torch.float64)
    if criterion not in SCORES:
        raise UserError(f"criterion {criterion}: choose one of {', '.join(CRITERIA)}")
    modules = dict(model.named_modules())
    slices = [s for s in group.slices
              if not (isinstance(modules[s[0]], nn.Conv2d) and modules[s[0]].groups > 1)] or group.slices[:1]
    total = torch.zeros(group.width, dtype=torch.float64)
    for name, own, channels in slices:
        total.index_add_(0, torch.tensor(channels), SCORES[criterion](modules[name].weight[own]).double().cpu())
    return total


def channels_to_remove(scores, ratio, round_to=1, channel_groups=1):
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


def prune_model(model, input_size, ratios: dict, criterion="l1", ranks=None, round_to=1, graph=None):
    """Remove channels in place. ratios: {leader weight name: fraction of its group's channels to remove}.
    Scores are taken before any removal, so the outcome does not depend on the schedule's order; each
    group's edits are derived after the previous group's removal (behind a concatenation they shift).
    Returns the plans applied (what reconstruction needs to know)."""
    graph = graph if graph is not None and graph.model is model else ChannelGraph(model, input_size)
    removals = []
    for param, ratio in ratios.items():
        group = graph.group(param)
        idxs = group.channels_to_remove(group_scores(model, group, criterion, ranks), ratio, round_to)
        if idxs:
            removals.append((group, idxs))
    return [graph.remove(group, idxs) for group, idxs in removals]


# ---------------------------------------------------------------- HRank: feature-map ranks, computed in-tool
def feature_module(graph, group):
    """Where HRank reads a group's feature maps: the leader's activation (else its BN, else the conv)."""
    parent = group.leader.rpartition(".")[0]
    members = [edit.module for edit in graph.plan(group, [0]) if edit.module.startswith(parent)]
    for kinds in ((nn.PReLU, nn.ReLU, nn.Hardswish), (nn.BatchNorm2d,)):
        for name in members:
            if isinstance(graph.modules[name], kinds):
                return name
    return group.leader


@torch.no_grad()
def hrank_ranks(model, graph, images, batch_size, batches):
    """{leader weight: average matrix rank of each channel's feature map} over `batches` batches."""
    watched = {feature_module(graph, g): g.param for g in graph.groups}
    totals, count = {}, 0

    def hook(name):
        def record(_, __, output):
            ranks = torch.linalg.matrix_rank(output.float()).double().sum(0)
            totals[watched[name]] = totals.get(watched[name], 0) + ranks
        return record

    handles = [graph.modules[name].register_forward_hook(hook(name)) for name in watched]
    try:
        model.eval()
        for start in range(0, min(len(images), batches * batch_size), batch_size):
            batch = images[start:start + batch_size]
            model(batch.to(next(model.parameters()).device))
            count += len(batch)
    finally:
        for h in handles:
            h.remove()
    return {param: (total / count).cpu() for param, total in totals.items()}


def load_or_compute_ranks(loaded, evaluator, batches, rank_path):
    """HRank ranks, cached as .npz under --rank_path (work_space/rank_conv/), keyed by a hash of the weights
    (not a file name: two checkpoints called best.pt are two models), the input size and the batch count."""
    import numpy as np
    h, w = loaded.input_size
    name = f"{Path(loaded.arch).stem}_{weights_digest(loaded.model)}_{h}x{w}_b{batches}.npz"
    cache = Path(rank_path) / name
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            return {k: torch.from_numpy(stored[k]) for k in stored.files}
    graph = ChannelGraph(loaded.model, loaded.input_size)
    ranks = hrank_ranks(loaded.model, graph, evaluator.images(), evaluator.batch_size, batches)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v.numpy() for k, v in ranks.items()})
    print(f"HRank ranks cached: {cache}")
    return ranks


# ---------------------------------------------------------------- BN recalibration (adaptive BN)
@torch.no_grad()
def recalibrate_bn(model, inputs, batch_size=32, norms=None):
    """Re-estimate BatchNorm running statistics on `inputs` (no training, no labels). `model` may be any
    callable over the inputs (e.g. the part of a network after a cached cut); `norms` limits which BNs
    are re-estimated (default: all of them)."""
    if norms is None:
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if hasattr(model, "eval"):
        model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    device = inputs.device if not norms else norms[0].running_mean.device
    for start in range(0, len(inputs), batch_size):
        model(inputs[start:start + batch_size].to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
        m.eval()
    return model


# ---------------------------------------------------------------- least-squares reconstruction (ThiNet-style)
def reconstructable(module):
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1


@torch.no_grad()
def input_grams(model, images, names, batch_size=32):
    """{conv name: E[x x^T] of its input channels, with a constant channel appended} over `images`."""
    modules = dict(model.named_modules())
    grams = {name: 0 for name in names}

    def hook(name):
        def record(_, inputs):
            x = inputs[0].detach().double().transpose(0, 1).flatten(1)
            x = torch.cat([x, torch.ones(1, x.shape[1], dtype=x.dtype, device=x.device)])
            grams[name] = grams[name] + (x @ x.T).cpu()
        return record

    handles = [modules[name].register_forward_pre_hook(hook(name)) for name in names]
    try:
        model.eval()
        device = next(model.parameters()).device
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
    return grams


def reconstruct(pruned, original, plans, grams, following_bn, ridge=1e-3):
    """Refit every 1x1 conv that lost input channels so that it reproduces its unpruned output from the
    channels left (least squares on calibration activations of the unpruned model, `grams` from
    input_grams). Exact for one pruned group, as in sensitivity analysis; prune mode refits several groups
    with reconstruct_sequentially instead."""
    removed_in, removed_out = removed_channels(plans)
    for name, gone in removed_in.items():
        if name not in grams:
            continue
        gram = grams[name]
        channels = gram.shape[0] - 1
        keep = [i for i in range(channels) if i not in gone] + [channels]
        refit(original, pruned, name, removed_out.get(name, ()), gram[keep][:, keep], gram[:channels][:, keep],
              following_bn, ridge)
    return pruned


class _Reached(Exception):
    def __init__(self, value):
        self.value = value


@torch.no_grad()
def input_of(model, name, batch):
    """What module `name` receives when `model` runs on `batch`; the forward stops there."""
    def stop(_, inputs):
        raise _Reached(inputs[0])

    handle = dict(model.named_modules())[name].register_forward_pre_hook(stop)
    try:
        model(batch)
    except _Reached as reached:
        return reached.value
    finally:
        handle.remove()
    raise RuntimeError(f"{name} is not called by the forward pass")


@torch.no_grad()
def reconstruct_sequentially(pruned, original, plans, images, following_bn, order, batch_size=32, ridge=1e-3):
    """Refit the 1x1 convs that lost input channels one after another in forward order, each on what really
    reaches it in the pruned model (the refits before it included), to reproduce the unpruned model's output
    there (He et al., "Channel pruning", 2017). Fitting each from the unpruned inputs alone ignores the
    error of every pruned layer before it, which BN re-estimation does not undo (BENCHMARKS.md compares
    the two)."""
    removed_in, removed_out = removed_channels(plans)
    pruned.eval()
    original.eval()
    device = next(pruned.parameters()).device
    modules = dict(pruned.named_modules())
    for name in sorted((n for n in removed_in if reconstructable(modules[n])), key=order.index):
        gram = cross = 0
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            unpruned = input_of(original, name, batch).double().transpose(0, 1).flatten(1)
            kept = input_of(pruned, name, batch).double().transpose(0, 1).flatten(1)
            kept = torch.cat([kept, torch.ones(1, kept.shape[1], dtype=kept.dtype, device=device)])
            gram = gram + (kept @ kept.T).cpu()
            cross = cross + (unpruned @ kept.T).cpu()
        refit(original, pruned, name, removed_out.get(name, ()), gram, cross, following_bn, ridge)
    return pruned


def removed_channels(plans):
    """({module: input channels removed}, {module: output channels removed}) over all plans."""
    removed_in, removed_out = {}, {}
    for plan in plans:
        for edit in plan:
            (removed_out if edit.outputs else removed_in).setdefault(edit.module, set()).update(edit.idxs)
    return removed_in, removed_out


def refit(original, pruned, name, removed_out, gram, cross, following_bn, ridge):
    """Least squares for one 1x1 conv: `gram` = sum of x x^T over the inputs it keeps (plus a constant
    channel), `cross` = sum of x_unpruned x^T. The fitted constant term goes into the following BN's running
    mean (or the conv's bias). A ridge of `ridge` x mean diagonal keeps the solve well posed."""
    before, conv = dict(original.named_modules())[name], dict(pruned.named_modules())[name]
    rows = [i for i in range(before.out_channels) if i not in removed_out]
    weight = before.weight.detach().double().flatten(1).cpu()[rows]
    bias = before.bias
    bias = torch.zeros(len(rows), dtype=torch.float64) if bias is None else bias.detach().double().cpu()[rows]
    # What the unpruned layer gave, correlated with the inputs left (and the constant).
    target = weight @ cross + bias[:, None] * gram[-1]
    gram = gram + ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    fitted = torch.linalg.solve(gram, target.T).T
    conv.weight.data = fitted[:, :-1].to(conv.weight).reshape(conv.weight.shape)
    bn = dict(pruned.named_modules()).get(following_bn.get(name))
    if conv.bias is not None:
        conv.bias.data = fitted[:, -1].to(conv.bias)
    elif bn is not None:
        bn.running_mean.data -= (fitted[:, -1] - bias).to(bn.running_mean)


def following_norms(model, input_size):
    """{conv name: the BatchNorm called right after it on its output}, for bias compensation."""
    order, modules = call_order(model, input_size), dict(model.named_modules())
    return {a: b for a, b in zip(order, order[1:])
            if isinstance(modules[a], nn.Conv2d) and isinstance(modules[b], nn.BatchNorm2d)
            and modules[b].num_features == modules[a].out_channels}


def call_order(model, input_size):
    """Module names in the order a forward pass first calls them."""
    order, handles = [], []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(lambda m, _, name=name: order.append(name)))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(order))


def summarize(loaded):
    model, size = loaded.model, loaded.input_size
    graph = ChannelGraph(model, size)
    params, macs = count_params(model), count_macs(model, size)
    from model_define import get_entry
    others = [f"{h}x{w}" for h, w in get_entry(loaded.arch).input_sizes if (h, w) != tuple(size)]
    also = f" (also built for {', '.join(others)})" if others else ""
    print(f"{loaded.arch}: input {size[0]}x{size[1]}{also}, {params / 1e6:.3f} M params, {macs / 1e6:.1f} M MACs")
    print(f"{len(graph.groups)} prunable layers (leader weight, width, coupled producers):")
    for g in graph.groups:
        others = [p for p in g.producers if p != g.leader]
        width = f"{g.width} = {g.channel_groups}x{g.width // g.channel_groups}" if g.channel_groups > 1 else g.width
        coupled = f"{', '.join(others[:4])}{' ...' if len(others) > 4 else ''}{' (LayerNorm)' if g.renormalised else ''}"
        print(f"  {g.param:40s} {width:>5}  {coupled}")
    if graph.excluded:
        print(f"{len(graph.excluded)} layer(s) that cannot be pruned:")
        for param, why in graph.excluded.items():
            print(f"  {param:40s} {why}")
    return {"params": params, "macs": macs, "prunable_layers": [g.param for g in graph.groups],
            "unprunable_layers": graph.excluded}


def keep_widths(model):
    """The original's printed keep list: out-channels of every conv weight, in state_dict order."""
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


@dataclass
class Repair:
    """What is done after thinning, without training: least-squares refit of the 1x1 convs that lost inputs
    on the first `reconstruct` images, then BN statistics re-estimated on the first `bn_recalibrate`."""
    images: torch.Tensor = None
    reconstruct: int = 0
    bn_recalibrate: int = 0


def prune_and_repair(model, input_size, ratios, criterion="l1", ranks=None, round_to=1, graph=None,
                     repair=Repair()):
    graph = graph or ChannelGraph(model, input_size)
    original = copy.deepcopy(model) if repair.reconstruct else None
    plans = prune_model(model, input_size, ratios, criterion, ranks, round_to, graph)
    if repair.reconstruct:
        reconstruct_sequentially(model, original, plans, repair.images[:repair.reconstruct],
                                 following_norms(original, input_size), call_order(original, input_size))
    if repair.bn_recalibrate:
        recalibrate_bn(model, repair.images[:repair.bn_recalibrate])
    return model


def consumers_of(plans, modules):
    """The 1x1 convs whose input channels these plans remove: what reconstruction can refit."""
    return sorted({edit.module for plan in plans for edit in plan
                   if not edit.outputs and reconstructable(modules[edit.module])})


@dataclass(frozen=True)
class PruneConfig:
    """`--mode prune`: which schedule, how channels are ranked, the repair after thinning, where outputs go."""
    schedule_path: str
    criterion: str = "l1"
    round_to: int = 1
    reconstruct: int = 0
    bn_recalibrate: int = 0
    save_checkpoint: bool = False
    output_folder: str = "work_space/pruned_model"
    layers_out_path: str = "work_space/layers_out/out.txt"
    overwrite: bool = False


def run_prune(config: PruneConfig, loaded, evaluator=None, calibration_images=None, ranks=None) -> dict:
    """`--mode prune`: apply a Distiller schedule, report before/after, save a self-describing checkpoint."""
    model, size = loaded.model, loaded.input_size
    checkpoint = Path(config.output_folder) / f"model_{Path(loaded.arch).stem}.pt"
    if config.save_checkpoint and checkpoint.exists() and not config.overwrite:  # refused before any work
        raise UserError(f"{checkpoint}: already exists (pass --overwrite to replace it)")
    ratios = read_schedule(config.schedule_path)
    graph = ChannelGraph(model, size)
    for param in ratios:
        graph.group(param)  # unknown or unprunable names fail here, before any work
    criterion = config.criterion
    result = {"params_before": count_params(model), "macs_before": count_macs(model, size)}
    if evaluator is not None:
        before = evaluator.outputs(model)
        result["accuracy_before"] = evaluator.score(before)["headline"]
    repair = Repair(calibration_images, config.reconstruct, config.bn_recalibrate)
    prune_and_repair(model, size, ratios, criterion, ranks, config.round_to, graph, repair)
    keep = record_keep(model)
    result.update(params_after=count_params(model), macs_after=count_macs(model, size), keep=keep,
                  criterion=criterion, bn_recalibration_images=config.bn_recalibrate,
                  reconstruction_images=config.reconstruct)
    widths = keep_widths(model)
    print(f"keep ({len(widths)} convs): {widths}")
    layers_out = Path(config.layers_out_path)
    if layers_out.exists() and not config.overwrite:  # keep the earlier list: this one gets the time in its name
        layers_out = layers_out.with_name(f"{layers_out.stem}_{time_stamp()}{layers_out.suffix}")
    write_text(layers_out, f"{widths}\n")
    print(f"keep list: {layers_out}")
    if evaluator is not None:
        after = evaluator.outputs(model)
        result["accuracy_after"] = evaluator.score(after)["headline"]
        result["cosine_after"] = torch.nn.functional.cosine_similarity(before, after, dim=1).mean().item()
    if config.save_checkpoint:
        path = save_checkpoint(checkpoint, model, loaded.arch, keep=keep, input_size=size,
                               embedding_size=loaded.embedding_size, overwrite=config.overwrite,
                               metadata={"schedule": str(config.schedule_path), "criterion": criterion,
                                         "bn_recalibration_images": config.bn_recalibrate,
                                         "reconstruction_images": config.reconstruct})
        result["checkpoint"] = str(path)
    report = [f"params {result['params_before'] / 1e6:.3f} M -> {result['params_after'] / 1e6:.3f} M",
              f"MACs {result['macs_before'] / 1e6:.1f} M -> {result['macs_after'] / 1e6:.1f} M "
              f"({result['macs_after'] / result['macs_before']:.2f}x)"]
    if evaluator is not None:
        report.append(f"{evaluator.data_source} {result['accuracy_before']:.4f} -> {result['accuracy_after']:.4f}")
    print("pruned: " + ", ".join(report))
    print(f"saved: {result['checkpoint']}" if config.save_checkpoint else "not saved (pass --save_model_pt)")
    return result


if __name__ == "__main__":  # the original's README ran `python pruning.py ...`: same flags as main.py
    from main import main
    sys.exit(main())

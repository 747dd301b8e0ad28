"""The sensitivity engine: how much does each prunable group (with everything coupled to it) lose when a fraction of
its filters is really removed?

Fast path, same numbers as the naive one: level 0.0 is the baseline, measured once; the activations entering
a layer's group are computed once per layer (torch.fx splits the model where one value is alive), walked
forward from the previous layer's, and only the part from there on is re-run for each level. The naive path
re-evaluates the whole model every time, as the original did, and exists to prove that.
"""
import copy
import logging
import os
from typing import Iterator

import torch

from compression_tool.commen_utils.checkpoint import weights_digest
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.graph_split import GraphSplitter
from compression_tool.commen_utils.model_stats import ThinnedMacs, count_params

from .criteria import L1, Criterion
from .graph import ChannelGraph, PrunableGroup, apply_plan, call_order
from .repair import following_norms, gram_bytes, input_grams, recalibrate_bn, reconstruct, refittable_consumers
from .sensitivity_csv import level_text

log = logging.getLogger(__name__)


def available_memory() -> int:
    """Bytes of memory available to this process now (Linux: MemAvailable; elsewhere free pages)."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def parse_levels(text: str) -> list[float]:
    try:
        levels = [round(float(v), 6) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sparsities {text}: expected comma-separated fractions, e.g. 0.0,0.2,0.4") from None
    if not levels or any(not 0 <= v < 1 for v in levels):
        raise UserError(f"--sparsities {text}: every level must be in [0, 1)")
    return sorted(set(levels))


class SensitivityAnalysis:
    def __init__(self, model, input_size, evaluator, criterion: Criterion | None = None, naive=False, bn_images=None,
                 reconstruction=None, cache_bytes=None):
        """criterion: how channels are ranked (default L1).
        bn_images: training images for adaptive-BN evaluation (EagleEye): after pruning, the statistics
        of every BN from the pruned group on are re-estimated on them before the pair list is scored.
        reconstruction: training images on which the layers that lose inputs are refitted, as prune
        mode's --reconstruct does, so that the curves predict what pruning will really cost.
        cache_bytes: most memory cached activations may take (default: half of what is available)."""
        self.model, self.input_size, self.evaluator = model.eval(), tuple(input_size), evaluator
        self.cache_bytes = available_memory() // 2 if cache_bytes is None else cache_bytes
        self.over_budget = {}  # {layer: bytes its cached activations would take} of those that did not fit
        self.criterion, self.naive, self.bn_images = criterion or L1(), naive, bn_images
        self.graph = ChannelGraph(model, input_size)
        self.position = {name: i for i, name in enumerate(call_order(model, input_size))}
        self.macs = ThinnedMacs(model, input_size)
        self.reconstruction_images = 0 if reconstruction is None else len(reconstruction)
        self.weights = weights_digest(model)
        self.reconstruction, self._grams = reconstruction, (None, None)
        self.following = None if reconstruction is None else following_norms(model, input_size)
        if reconstruction is not None:
            layers = refittable_consumers([self.graph.plan(g, [0]) for g in self.graph.groups], self.graph.modules)
            if sum(gram_bytes(self.graph.modules[name]) for name in layers) <= self.cache_bytes // 4:
                self._grams = ("all", input_grams(model, reconstruction, layers, evaluator.batch_size))
        self.splitter = self._cached = None
        if not naive:
            try:
                self.splitter = GraphSplitter(model)
            except Exception as e:  # untraceable user model: still correct, just slower
                log.warning(f"note: torch.fx cannot trace this model ({type(e).__name__}); every level re-runs the "
                            "whole model")

    def baseline(self) -> tuple:
        """(headline metric, outputs) of the unpruned model."""
        outputs = self.evaluator.outputs(self.model)
        return self.evaluator.score(outputs)["headline"], outputs

    def _pruned(self, group, level, scores):
        plan = self.graph.plan(group, group.channels_to_remove(scores, level))
        model = apply_plan(copy.deepcopy(self.model), plan)
        if self.reconstruction is not None:
            reconstruct(model, self.model, [plan], self.grams_of(group), self.following)
        return model

    def grams_of(self, group: PrunableGroup) -> dict:
        """The input grams of the layers that pruning `group` makes refit: those of every group, from one pass
        over the images, when they fit in memory; else one group's at a time (a model of wide k x k convs)."""
        if self._grams[0] not in ("all", group.param):
            layers = refittable_consumers([self.graph.plan(group, [0])], self.graph.modules)
            self._grams = (group.param, input_grams(self.model, self.reconstruction, layers, self.evaluator.batch_size))
        return self._grams[1]

    def _norms_from(self, members):
        """Names of the BNs called at or after a group's first member: those whose inputs pruning changes."""
        first = min(self.position[name] for name in members if name in self.position)
        return {name for name, m in self.model.named_modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and self.position.get(name, -1) >= first}

    def members(self, group: PrunableGroup) -> set[str]:
        return {edit.module for edit in self.graph.plan(group, [0])}

    def cut_of(self, group: PrunableGroup):
        """Where the part of the model that pruning `group` changes begins (None: re-run the whole model)."""
        return None if self.splitter is None else self.splitter.cut_before(self.members(group))

    def cached_bytes(self, cut) -> int:
        """What the activations at `cut` take for every image the analysis runs: while walking to the next
        cut, two such sets are alive."""
        device = next(self.model.parameters()).device
        with torch.no_grad():
            probe = self.splitter.prefix(self.model, cut)(torch.zeros(1, 3, *self.input_size, device=device))
        images = len(self.evaluator.paths) * (2 if self.evaluator.flip else 1) + \
            (0 if self.bn_images is None else len(self.bn_images))
        return probe.numel() * probe.element_size() * images

    def activations_at(self, cut) -> tuple:
        """(pair images, flipped images, BN images) as they arrive at `cut`, walked forward from the
        previous layer's cut when that one lies before it, else computed from the images."""
        if self._cached is not None and self._cached[0][0] <= cut[0]:
            start, tensors = self._cached
            runner = None if start[0] == cut[0] else self.splitter.segment(self.model, start, cut)
        else:
            tensors = (self.evaluator.images(), self.evaluator.images(flip=True) if self.evaluator.flip else None,
                       self.bn_images)
            runner = self.splitter.prefix(self.model, cut)
        if runner is not None:
            tensors = tuple(None if t is None else self.evaluator.forward(runner, inputs=t) for t in tensors)
        self._cached = (cut, tensors)
        return tensors

    def run_columns(self) -> dict:
        """The columns that are the same on every row of one run: how it repaired, ranked, and on what."""
        return {"bn_recalibration": str(0 if self.bn_images is None else len(self.bn_images)),
                "reconstruction": str(self.reconstruction_images), "criterion": self.criterion.name,
                "weights": self.weights}

    def rows(self, group: PrunableGroup, levels, baseline: tuple, progress=None) -> Iterator[dict]:
        """One CSV row per level for one group, computed as cheaply as the model allows."""
        scores = self.criterion.scores(self.model, group)
        inputs = flipped = None
        bn_images = self.bn_images
        norms = self._norms_from(self.members(group)) if bn_images is not None else set()
        cut = self.cut_of(group)
        size = 0 if cut is None else self.cached_bytes(cut)
        if 2 * size > self.cache_bytes:  # two sets are alive while walking to the next cut
            self.over_budget[group.param] = size
            cut = None
        if cut is not None:
            inputs, flipped, bn_images = self.activations_at(cut)
        reference = baseline[1]
        for level in levels:
            if level == 0.0:
                metric, model, outputs = baseline[0], self.model, reference
            else:
                model = self._pruned(group, level, scores)
                runner = model if cut is None else self.splitter.suffix(model, cut)
                if bn_images is not None:
                    recalibrate_bn(runner, bn_images, self.evaluator.batch_size,
                                   [m for name, m in model.named_modules() if name in norms])
                outputs = self.evaluator.outputs(runner, inputs, flipped)
                metric = self.evaluator.score(outputs)["headline"]
            cosine = torch.nn.functional.cosine_similarity(outputs, reference, dim=1).mean().item()
            yield {"parameter": group.param, "sparsity": level_text(level), "top1": repr(float(metric)),
                   "top5": "0", "loss": "0", "macs": str(self.macs(model)),
                   "params": str(count_params(model)), "cosine": repr(round(cosine, 7)), **self.run_columns()}
            if progress is not None:
                progress.update()


def shard_of(index: int, world: int) -> int:
    """Which process measures the index-th group. A group costs the part of the network after it, so costs
    fall with depth: dealing them out back and forth (0 1 1 0 0 1 ...) balances the shards far better
    than round robin (measured in BENCHMARKS.md)."""
    turn, seat = divmod(index, world)
    return seat if turn % 2 == 0 else world - 1 - seat



"""A latency model of one model in one deployment runtime, measured on the CPU at hand (NetAdapt/HALP-style
lookup table, per layer rather than per group).

The runtime's own per-layer profile is taken of the unpruned model and of thinned copies. In each copy
several groups are thinned at once, but never two that share a layer (a conv whose inputs one group sets and
whose outputs another sets), so every layer's change of time is caused by one group: its ratio to the
unpruned time is that group's effect on that layer at that width. A layer between two thinned groups is
predicted as its unpruned time times both ratios: a 1x1 conv's cost is a product of its input and output
widths, and so is the kernel's fall when either width leaves the sizes it is fast at.

The table is cached on disk, keyed by everything it depends on: the CPU and the instruction set its kernels
may use, the runtime and its version, threads, batch, the model's layers and the widths measured.
"""
import copy
import hashlib
import json
import math
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from compression_tool.commen_utils.atomic import write_text
from compression_tool.commen_utils.cpu_isa import read_cpu_isa

from .graph import ChannelGraph, PrunableGroup
from .runtimes import WEIGHTED, Deployment, LayerTimes, RuntimeName, median_layer_times, prepare

DEFAULT_CACHE = "work_space/latency_cache"
# Environment variables that change which kernels the runtimes use (the AVX2 path on a VNNI machine)
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "OV_CPU_MAX_ISA", "ATEN_CPU_CAPABILITY", "FBGEMM_ENABLE_INSTRUCTIONS")
RUNTIME_PACKAGES = {RuntimeName.OPENVINO_INT8: ("openvino", "nncf"), RuntimeName.OPENVINO_FP32: ("openvino",),
                    RuntimeName.ONNXRUNTIME_FP32: ("onnxruntime",), RuntimeName.TORCH_FP32: ("torch",)}


@dataclass
class GroupLatency:
    full: int                 # the group's unpruned width
    layers: list              # indices (into LatencyTable.layers) of the conv/linear layers the group changes
    ratios: dict = field(default_factory=dict)  # {width: [time ratio to unpruned of each of `layers`]}


@dataclass
class LatencyTable:
    key: dict                 # what the measurement depends on (the cache key)
    layers: list              # conv/linear module names, forward order
    base: list                # unpruned ms per layer (with the operators after it)
    other: float              # unpruned ms no layer accounts for, the wall time outside the profile included
    groups: dict              # {leader weight: GroupLatency}
    checks: list = field(default_factory=list)  # whole models measured by searches: [predicted, measured] saving

    @property
    def unpruned_ms(self) -> float:
        return self.other + sum(self.base)

    def predict(self, widths: dict) -> float:
        """Predicted ms of the model with each group in `widths` ({leader weight: width}) thinned to that width
        (the others unpruned). A width that was not measured is interpolated between its measured neighbours."""
        times = list(self.base)
        for param, width in widths.items():
            group = self.groups[param]
            if width >= group.full:
                continue
            for i, ratio in zip(group.layers, self.ratios_at(param, width)):
                times[i] *= ratio
        return self.other + sum(times)

    def ratios_at(self, param: str, width: int) -> list:
        group = self.groups[param]
        known = {group.full: [1.0] * len(group.layers), **{int(w): r for w, r in group.ratios.items()}}
        if width in known:
            return known[width]
        below = max((w for w in known if w < width), default=min(known))
        above = min(w for w in known if w > width)
        t = 0.0 if above == below else (width - below) / (above - below)
        return [a + t * (b - a) for a, b in zip(known[below], known[above])]

    def measured_widths(self, param: str) -> list:
        """The group's measured widths, widest (unpruned) first."""
        group = self.groups[param]
        return sorted({group.full, *(int(w) for w in group.ratios)}, reverse=True)

    def allowed_widths(self, param: str) -> list:
        """Widths worth pruning to, widest first: each measured faster (with the rest of the model unpruned) than
        every wider one. A width the kernels handle badly is never kept while a wider one is faster."""
        allowed, fastest = [], math.inf
        for width in self.measured_widths(param):
            ms = self.predict({param: width})
            if ms < fastest:
                allowed.append(width)
                fastest = ms
        return allowed

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text: str) -> "LatencyTable":
        data = json.loads(text)
        groups = {k: GroupLatency(g["full"], g["layers"], {int(w): r for w, r in g["ratios"].items()})
                  for k, g in data["groups"].items()}
        return LatencyTable(data["key"], data["layers"], data["base"], data["other"], groups, data.get("checks", []))


def width_grid(group: PrunableGroup, max_fraction: float, steps: int = 16) -> list:
    """Widths to measure, narrowest last: the group's width times k/steps, on multiples of 8 where the group is
    wide enough (and of its grouped convolutions' blocks), down to (1 - max_fraction) of it."""
    multiple = math.lcm(8, group.channel_groups) if group.width >= 2 * math.lcm(8, group.channel_groups) \
        else group.channel_groups
    widths = set()
    for k in range(1, steps):
        width = max(multiple, round(group.width * k / steps / multiple) * multiple)
        if width < group.width and width >= (1 - max_fraction) * group.width - 1e-9:
            widths.add(width)
    return sorted(widths, reverse=True)


class Thinner:
    """A copy of the model whose groups are cut narrower and narrower (their last channels: which channels go
    does not change the time); the copy's graph is built once."""

    def __init__(self, model: nn.Module, input_size, graph: ChannelGraph):
        self.model = copy.deepcopy(model)
        self.graph = ChannelGraph(self.model, input_size, groups_of=graph)
        self.widths = {g.param: g.width for g in graph.groups}

    def cut(self, widths: dict) -> nn.Module:
        for param, width in widths.items():
            group, now = self.graph.by_param[param], self.widths[param]
            block, kept = now // group.channel_groups, width // group.channel_groups
            if width < now:
                self.graph.remove(group, [b * block + i for b in range(group.channel_groups) for i in range(kept, block)])
                self.widths[param] = width
        return self.model


def touched_layers(graph: ChannelGraph, group: PrunableGroup, layers: list) -> list:
    names = {edit.module for edit in graph.plan(group, [group.width - 1])}
    return [i for i, name in enumerate(layers) if name in names]


def disjoint_sets(groups: dict) -> list:
    """Groups split into sets in which no two change the same layer (greedy colouring)."""
    sets = []
    for param, layers in groups.items():
        for members in sets:
            if not any(set(layers) & set(groups[other]) for other in members):
                members.append(param)
                break
        else:
            sets.append([param])
    return sets


def table_key(model_name: str, input_size, deployment: Deployment, grid: dict, repeats: int) -> dict:
    import importlib.metadata

    isa = read_cpu_isa()
    versions = {p: importlib.metadata.version(p) for p in RUNTIME_PACKAGES[deployment.runtime]}
    return {"cpu": isa.describe(), "machine": platform.machine(),
            "caps": {k: os.environ[k] for k in ISA_CAPS if k in os.environ}, "runtime": str(deployment.runtime),
            "versions": versions, "threads": deployment.threads, "batch": deployment.batch, "model": model_name,
            "input_size": list(input_size), "grid": grid, "repeats": repeats,
            "format": 2}  # 2: `other` holds the wall time outside the profiled nodes


def cache_path(cache_dir, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{key['model'].replace('/', '_').replace(':', '_')}_{key['runtime']}_{digest}.json"


def measure_latency_table(model: nn.Module, input_size, graph: ChannelGraph, deployment: Deployment, grid: dict,
                          model_name: str, repeats: int = 20, cache_dir: str | None = DEFAULT_CACHE,
                          progress: bool = True) -> LatencyTable:
    """The table for `grid` ({leader weight: [widths to measure]}), read from the cache when it was measured
    before under the same key. The model's weights do not matter, its layers do."""
    key = table_key(model_name, input_size, deployment, grid, repeats)
    path = cache_path(cache_dir, key) if cache_dir else None
    if path is not None and path.is_file():
        table = LatencyTable.from_json(path.read_text())
        if table.key == json.loads(json.dumps(key)):
            return table
    layers = [name for name in _forward_layers(model, input_size)]
    groups = {param: GroupLatency(graph.by_param[param].width, touched_layers(graph, graph.by_param[param], layers))
              for param in grid}
    sets = disjoint_sets({p: g.layers for p, g in groups.items()})
    unpruned = prepare(model, input_size, deployment)
    bases = []
    bar = tqdm(total=sum(max(len(grid[p]) for p in members) for members in sets),
               desc=f"latency table ({deployment.describe()})", disable=not progress)
    for members in sets:  # one copy per set, cut narrower at every step
        thinner = Thinner(model, input_size, graph)
        for k in range(max(len(grid[p]) for p in members)):
            widths = {p: grid[p][k] for p in members if k < len(grid[p])}
            thinned = prepare(thinner.cut(widths), input_size, deployment)
            # profiled inferences are cheap beside building a copy: twice the repeats, for steadier ratios
            # a model compiled long ago times slower than one just compiled: both fresh
            base, times = median_layer_times([unpruned.recompiled(), thinned], input_size, deployment.batch,
                                             2 * repeats)
            bases.append(base)
            for param, width in widths.items():
                groups[param].ratios[width] = [times.layers[i] / max(base.layers[i], 1e-6)
                                               for i in groups[param].layers]
            bar.update()
    bar.close()
    if not bases:
        bases = median_layer_times([unpruned], input_size, deployment.batch, repeats)
    base = LayerTimes([statistics.median(b.layers[i] for b in bases) for i in range(len(layers))],
                      statistics.median(b.other for b in bases))
    table = LatencyTable(key, layers, base.layers, base.other + wall_overhead(unpruned, base, input_size, deployment,
                                                                               repeats), groups)
    if cache_dir:
        save_table(table, cache_dir)
    return table


def save_table(table: LatencyTable, cache_dir) -> None:
    write_text(cache_path(cache_dir, table.key), table.to_json(), overwrite=True)


def wall_overhead(unpruned, base: LayerTimes, input_size, deployment: Deployment, repeats: int) -> float:
    """The ms an inference takes beyond its profiled nodes (the call, the input's copy, the request): the same
    for every width, so a constant of the table, measured on the unpruned model."""
    from compression_tool.commen_utils.latency import side_by_side_ms

    wall = side_by_side_ms([unpruned.recompiled()], input_size, deployment.batch, repeats)[0]
    return max(0.0, wall - base.other - sum(base.layers))


def _forward_layers(model: nn.Module, input_size) -> list:
    """Conv/linear module names in the order the forward pass calls them (the order runtimes execute them in a
    chain; each is counted once)."""
    from .graph import call_order

    modules = dict(model.named_modules())
    return [name for name in call_order(model, input_size) if isinstance(modules[name], WEIGHTED)]


def measure_whole(models: list, input_size, deployment: Deployment, repeats: int = 15,
                  calibration: torch.Tensor | None = None) -> list:
    """Median ms of each model in the runtime, timed in interleaved rounds in this process."""
    from compression_tool.commen_utils.latency import side_by_side_ms

    runners = [m if not isinstance(m, nn.Module) else prepare(m, input_size, deployment, calibration) for m in models]
    return side_by_side_ms(runners, input_size, deployment.batch, repeats)

"""`--mode sa`: how much does each prunable layer (with everything coupled to it) lose when a fraction of
its filters is really removed? Writes Distiller's sensitivity CSV.

Fast path, same numbers as the naive one: level 0.0 is the baseline, measured once; the activations entering
a layer's group are computed once per layer (torch.fx splits the model where one value is alive), walked
forward from the previous layer's, and only the part from there on is re-run for each level. `--sa_naive`
re-evaluates the whole model every time, as the original did, and exists to prove that.
"""
import copy
import csv
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import torch
import torch.distributed as dist
from tqdm import tqdm

from compression_tool.commen_utils.checkpoint import weights_digest
from compression_tool.commen_utils.distributed import distributed_context
from compression_tool.commen_utils.errors import UserError, step
from compression_tool.commen_utils.graph_split import GraphSplitter
from compression_tool.commen_utils.model_stats import ThinnedMacs, count_params
from compression_tool.commen_utils.results import ModeResult
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.prune_module.criteria import group_scores
from compression_tool.prune_module.graph import ChannelGraph, PrunableGroup, apply_plan, call_order
from compression_tool.prune_module.repair import (following_norms, gram_bytes, input_grams, recalibrate_bn, reconstruct,
                                 refittable_consumers)
from compression_tool.test_module.evaluate import hidden

# Distiller's five columns, then ours: the pruned model's size, the mean cosine between its outputs and the
# unpruned model's (a smooth, low-noise measure of damage that the budget search uses), how many training
# images re-estimated BN statistics and refitted the layers that lost inputs (0: none), the ranking criterion
# and a hash of the analysed weights (what --resume checks a CSV against).
CSV_COLUMNS = ["parameter", "sparsity", "top1", "top5", "loss", "macs", "params", "cosine", "bn_recalibration",
               "reconstruction", "criterion", "weights"]


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


def level_text(level: float) -> str:
    return repr(round(float(level), 6))  # 0.3, never 0.30000000000000004


class SensitivityAnalysis:
    def __init__(self, model, input_size, evaluator, criterion="l1", ranks=None, naive=False, calibration=None,
                 reconstruction=None, cache_bytes=None):
        """calibration: training images for adaptive-BN evaluation (EagleEye): after pruning, the statistics
        of every BN from the pruned group on are re-estimated on them before the pair list is scored.
        reconstruction: training images on which the layers that lose inputs are refitted, as prune
        mode's --reconstruct does, so that the curves predict what pruning will really cost.
        cache_bytes: most memory cached activations may take (default: half of what is available)."""
        self.model, self.input_size, self.evaluator = model.eval(), tuple(input_size), evaluator
        self.cache_bytes = available_memory() // 2 if cache_bytes is None else cache_bytes
        self.over_budget = {}  # {layer: bytes its cached activations would take} of those that did not fit
        self.criterion, self.ranks, self.naive, self.calibration = criterion, ranks, naive, calibration
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
                print(f"note: torch.fx cannot trace this model ({type(e).__name__}); every level re-runs the "
                      "whole model", file=sys.stderr)

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
            (0 if self.calibration is None else len(self.calibration))
        return probe.numel() * probe.element_size() * images

    def activations_at(self, cut) -> tuple:
        """(pair images, flipped images, calibration images) as they arrive at `cut`, walked forward from the
        previous layer's cut when that one lies before it, else computed from the images."""
        if self._cached is not None and self._cached[0][0] <= cut[0]:
            start, tensors = self._cached
            runner = None if start[0] == cut[0] else self.splitter.segment(self.model, start, cut)
        else:
            tensors = (self.evaluator.images(), self.evaluator.images(flip=True) if self.evaluator.flip else None,
                       self.calibration)
            runner = self.splitter.prefix(self.model, cut)
        if runner is not None:
            tensors = tuple(None if t is None else self.evaluator.forward(runner, inputs=t) for t in tensors)
        self._cached = (cut, tensors)
        return tensors

    def run_columns(self) -> dict:
        """The columns that are the same on every row of one run: how it repaired, ranked, and on what."""
        return {"bn_recalibration": str(0 if self.calibration is None else len(self.calibration)),
                "reconstruction": str(self.reconstruction_images), "criterion": self.criterion,
                "weights": self.weights}

    def rows(self, group: PrunableGroup, levels, baseline: tuple, progress=None) -> Iterator[dict]:
        """One CSV row per level for one group, computed as cheaply as the model allows."""
        scores = group_scores(self.model, group, self.criterion, self.ranks)
        inputs = flipped = None
        calibration = self.calibration
        norms = self._norms_from(self.members(group)) if calibration is not None else set()
        cut = self.cut_of(group)
        size = 0 if cut is None else self.cached_bytes(cut)
        if 2 * size > self.cache_bytes:  # two sets are alive while walking to the next cut
            self.over_budget[group.param] = size
            cut = None
        if cut is not None:
            inputs, flipped, calibration = self.activations_at(cut)
        reference = baseline[1]
        for level in levels:
            if level == 0.0:
                metric, model, outputs = baseline[0], self.model, reference
            else:
                model = self._pruned(group, level, scores)
                runner = model if cut is None else self.splitter.suffix(model, cut)
                if calibration is not None:
                    recalibrate_bn(runner, calibration, self.evaluator.batch_size,
                                   [m for name, m in model.named_modules() if name in norms])
                outputs = self.evaluator.outputs(runner, inputs, flipped)
                metric = self.evaluator.score(outputs)["headline"]
            cosine = torch.nn.functional.cosine_similarity(outputs, reference, dim=1).mean().item()
            yield {"parameter": group.param, "sparsity": level_text(level), "top1": repr(float(metric)),
                   "top5": "0", "loss": "0", "macs": str(self.macs(model)),
                   "params": str(count_params(model)), "cosine": repr(round(cosine, 7)), **self.run_columns()}
            if progress is not None:
                progress.update()


# ------------------------------------------------------------------------------------------ CSV
def read_rows(path: str | Path) -> tuple[str, list[dict]]:
    """Finished rows of an interrupted run; a torn last line (killed mid-write) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sensitivity CSV not found")
    text = path.read_text()
    complete = text if text.endswith("\n") else text[:text.rfind("\n") + 1]
    rows = list(csv.DictReader(complete.splitlines()))
    if rows and not set(CSV_COLUMNS[:5]) <= set(rows[0]):
        raise UserError(f"{path}: not a sensitivity CSV (needs columns {','.join(CSV_COLUMNS[:5])})")
    return complete, [r for r in rows if None not in r.values()]


class RowWriter:
    """Appends each finished row and flushes it to disk, so that a killed run can be resumed."""

    def __init__(self, path, existing_text=""):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w", newline="")
        except OSError as e:
            raise UserError(f"{self.path}: cannot write ({e.strerror})") from None
        self.file.write(existing_text or ",".join(CSV_COLUMNS) + "\n")
        # a resumed CSV of an older version keeps its own header, and its rows their columns
        columns = next(csv.reader([existing_text.splitlines()[0]])) if existing_text else CSV_COLUMNS
        self.writer = csv.DictWriter(self.file, columns, extrasaction="ignore")

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def check_resumed(path, rows, expected: dict, layers, levels):
    """Refuse a CSV that is not this run's, before anything is written: every row must name a prunable
    layer of this model and one of the levels, and agree with `expected` ({column: value} of this run,
    including the baseline's top1 on its level-0.0 rows). Columns an older CSV lacks are not checked."""
    flags = {"bn_recalibration": "--bn_recalibrate", "reconstruction": "--reconstruct", "criterion": "the criterion",
             "weights": "the weights' hash", "top1": "the baseline (level 0.0) top1 on this pair list"}
    allowed = {level_text(v) for v in levels}
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        if row["parameter"] not in layers:
            raise UserError(f"{where}: {row['parameter']} is not a prunable layer of this model: the CSV is another "
                            f"model's")
        if level_text(float(row["sparsity"])) not in allowed:
            raise UserError(f"{where}: level {row['sparsity']} is not one of --sparsities "
                            f"{','.join(sorted(allowed, key=float))}")
        for column, value in expected.items():
            if column == "top1" and float(row["sparsity"]) != 0.0:
                continue
            if column in row and row[column] != value:
                raise UserError(f"{where}: {flags[column]} differs: the CSV has {row[column]}, this run "
                                f"{value}")


def shard_of(index: int, world: int) -> int:
    """Which process measures the index-th group. A group costs the part of the network after it, so costs
    fall with depth: dealing them out back and forth (0 1 1 0 0 1 ...) balances the shards far better
    than round robin (measured in BENCHMARKS.md)."""
    turn, seat = divmod(index, world)
    return seat if turn % 2 == 0 else world - 1 - seat


@dataclass(frozen=True)
class SensitivityConfig:
    """`--mode sa`: the levels measured, how channels are ranked and repaired, where the CSV goes."""
    levels: str = "0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    criterion: str = "l1"
    output_folder: str = "work_space/sensitivity_data"
    resume: str | None = None
    naive: bool = False
    cache_gb: float | None = None  # None: half of the memory available, shared by the processes
    bn_recalibrate: int = 0
    reconstruct: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class SensitivityResult(ModeResult):
    csv: str
    baseline: float  # the unpruned model's headline metric
    layers: int
    levels: list[float]


def run_sensitivity(config: SensitivityConfig, loaded, evaluator, ranks=None, calibration=None) -> SensitivityResult:
    levels = parse_levels(config.levels)
    if config.cache_gb is not None and config.cache_gb < 0:
        raise UserError(f"--sa_cache_gb {config.cache_gb}: must be >= 0")
    rank, world = distributed_context(config.device)
    criterion = config.criterion
    # By default the processes of one machine share half of what is available.
    cache_bytes = available_memory() // (2 * world) if config.cache_gb is None else int(config.cache_gb * 2**30)
    analysis = SensitivityAnalysis(
        loaded.model, loaded.input_size, evaluator, criterion, ranks, config.naive,
        calibration[:config.bn_recalibrate] if config.bn_recalibrate else None,
        calibration[:config.reconstruct] if config.reconstruct else None,
        cache_bytes)
    analysis.graph.check_prunable(loaded.arch)
    csv_path = Path(config.resume) if config.resume else \
        Path(config.output_folder) / f"sensitivity_{Path(loaded.arch).stem}_{time_stamp()}.csv"
    if world > 1:  # everyone agrees on rank 0's file name
        holder = [str(csv_path)]
        dist.broadcast_object_list(holder, 0)
        csv_path = Path(holder[0])
    if csv_path.exists() and not config.resume:
        raise UserError(f"{csv_path}: already exists (use --resume {csv_path} to continue it)")
    existing_text, done = read_rows(csv_path) if config.resume else ("", [])
    finished = {(r["parameter"], r["sparsity"]) for r in done}
    mine = [g for i, g in enumerate(analysis.graph.groups) if shard_of(i, world) == rank]
    todo = [g for g in mine if any((g.param, level_text(v)) not in finished for v in levels)]
    print(f"sensitivity analysis: {len(analysis.graph.groups)} layers x {len(levels)} levels, criterion "
          f"{criterion}, {'naive' if config.naive else 'fast'} path"
          + (f", BN statistics re-estimated on {config.bn_recalibrate} training images"
             if config.bn_recalibrate else "")
          + (f", refitted on {config.reconstruct}" if config.reconstruct else "")
          + (f", shard {rank + 1}/{world}" if world > 1 else ""))
    baseline = analysis.baseline()
    print(f"baseline {evaluator.data_source} {baseline[0]:.4f}")
    if done:
        check_resumed(csv_path, done, {**analysis.run_columns(), "top1": repr(float(baseline[0]))},
                      {g.param for g in analysis.graph.groups}, levels)
    part = csv_path if world == 1 else csv_path.with_name(f"{csv_path.name}.part{rank}")
    writer = RowWriter(part, existing_text if world == 1 else "")
    total = sum(1 for g in todo for v in levels if (g.param, level_text(v)) not in finished)
    try:
        with tqdm(total=total, desc="sensitivity", unit="level", disable=hidden(rank == 0)) as bar:
            for group in todo:
                left = [v for v in levels if (group.param, level_text(v)) not in finished]
                with step(f"layer {group.param}"):
                    for row in analysis.rows(group, left, baseline, bar):
                        writer.write(row)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"every finished row is in {part}; continue with --resume {csv_path}") from None
    finally:
        writer.close()
    if analysis.over_budget:
        print(f"note: {len(analysis.over_budget)} of {len(todo)} layers re-ran the whole model for every level: "
              f"their cached activations (up to {max(analysis.over_budget.values()) / 2**30:.3g} GiB, twice that "
              f"while walking) do not fit --sa_cache_gb {analysis.cache_bytes / 2**30:.3g}", file=sys.stderr)
    if world > 1:
        dist.barrier()
        if rank == 0:
            merge_shards(csv_path, world, existing_text, [g.param for g in analysis.graph.groups], levels)
        dist.barrier()
    print(f"sensitivity CSV: {csv_path}")
    return SensitivityResult(str(csv_path), baseline[0], len(analysis.graph.groups), levels)


def merge_shards(csv_path: Path, world: int, existing_text: str, order: list, levels: list) -> None:
    rows = read_rows(csv_path)[1] if existing_text else []
    for r in range(world):
        part = csv_path.with_name(f"{csv_path.name}.part{r}")
        rows += read_rows(part)[1]
        part.unlink()
    position = {p: i for i, p in enumerate(order)}
    rows.sort(key=lambda row: (position[row["parameter"]], float(row["sparsity"])))
    writer = RowWriter(csv_path)
    for row in rows:
        writer.write(row)
    writer.close()

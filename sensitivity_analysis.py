"""`--mode sa`: how much does each prunable layer (with everything coupled to it) lose when a fraction of
its filters is really removed? Writes Distiller's sensitivity CSV. The engine lives in prune_module/sensitivity.py,
the CSV in prune_module/sensitivity_csv.py.
"""
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import torch
import torch.distributed as dist
from tqdm import tqdm

from compression_tool.commen_utils.distributed import distributed_context
from compression_tool.commen_utils.errors import UserError, step
from compression_tool.commen_utils.progress import hidden
from compression_tool.commen_utils.results import ModeResult
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.prune_module.criteria import Criterion, check_ranking, criterion_named
from compression_tool.prune_module.sensitivity import SensitivityAnalysis, available_memory, parse_levels, shard_of
from compression_tool.prune_module.sensitivity_csv import RowWriter, check_resumed, level_text, merge_shards, read_rows

log = logging.getLogger(__name__)


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

    def __post_init__(self):
        parse_levels(self.levels)
        check_ranking(self.criterion, self.reconstruct, self.bn_recalibrate)
        if self.cache_gb is not None and self.cache_gb < 0:
            raise UserError(f"--sa_cache_gb {self.cache_gb}: must be >= 0")


@dataclass(frozen=True)
class SensitivityResult(ModeResult):
    csv: str
    baseline: float  # the unpruned model's headline metric
    layers: int
    levels: list[float]


def output_csv(config: SensitivityConfig, arch: str, world: int) -> Path:
    """The CSV this run writes: --resume's, or a new one named by the model and the time (rank 0's, under
    torchrun); a new one may not overwrite an earlier run's."""
    csv_path = Path(config.resume) if config.resume else \
        Path(config.output_folder) / f"sensitivity_{Path(arch).stem}_{time_stamp()}.csv"
    if world > 1:  # everyone agrees on rank 0's file name
        holder = [str(csv_path)]
        dist.broadcast_object_list(holder, 0)
        csv_path = Path(holder[0])
    if csv_path.exists() and not config.resume:
        raise UserError(f"{csv_path}: already exists (use --resume {csv_path} to continue it)")
    return csv_path


def repair_text(config: SensitivityConfig) -> str:
    return ((f", BN statistics re-estimated on {config.bn_recalibrate} training images" if config.bn_recalibrate
             else "") + (f", refitted on {config.reconstruct}" if config.reconstruct else ""))


def run_sensitivity(config: SensitivityConfig, loaded, *, evaluator, criterion: Criterion | None = None,
                    images: torch.Tensor | None = None) -> SensitivityResult:
    """`--mode sa`: the CSV of every group at every level. `criterion`: the ranking built for config.criterion
    (HRank: measured; default: built here); `images`: training images for the repair."""
    levels = parse_levels(config.levels)
    rank, world = distributed_context(config.device)
    criterion = criterion_named(config.criterion, criterion)
    # By default the processes of one machine share half of what is available.
    cache_bytes = available_memory() // (2 * world) if config.cache_gb is None else int(config.cache_gb * 2**30)
    analysis = SensitivityAnalysis(
        loaded.model, loaded.input_size, evaluator, criterion, config.naive,
        images[:config.bn_recalibrate] if config.bn_recalibrate else None,
        images[:config.reconstruct] if config.reconstruct else None,
        cache_bytes)
    analysis.graph.check_prunable(loaded.arch)
    csv_path = output_csv(config, loaded.arch, world)
    existing_text, done = read_rows(csv_path) if config.resume else ("", [])
    finished = {(r["parameter"], r["sparsity"]) for r in done}
    mine = [g for i, g in enumerate(analysis.graph.groups) if shard_of(i, world) == rank]
    todo = [g for g in mine if any((g.param, level_text(v)) not in finished for v in levels)]
    log.info(f"sensitivity analysis: {len(analysis.graph.groups)} layers x {len(levels)} levels, criterion "
             f"{criterion.name}, {'naive' if config.naive else 'fast'} path{repair_text(config)}"
             + (f", shard {rank + 1}/{world}" if world > 1 else ""))
    baseline = analysis.baseline()
    log.info(f"baseline {evaluator.data_source} {baseline[0]:.4f}")
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
        log.warning(f"note: {len(analysis.over_budget)} of {len(todo)} layers re-ran the whole model for every level: "
                    f"their cached activations (up to {max(analysis.over_budget.values()) / 2**30:.3g} GiB, twice that "
                    f"while walking) do not fit --sa_cache_gb {analysis.cache_bytes / 2**30:.3g}")
    if world > 1:
        dist.barrier()
        if rank == 0:
            merge_shards(csv_path, world, existing_text, [g.param for g in analysis.graph.groups], levels)
        dist.barrier()
    log.info(f"sensitivity CSV: {csv_path}")
    return SensitivityResult(str(csv_path), baseline[0], len(analysis.graph.groups), levels)

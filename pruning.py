"""`--mode prune` (and `python pruning.py`, as the original ran it): apply a Distiller schedule to a model,
repair it, report before/after and save a self-describing checkpoint. The engine lives in prune_module/."""
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import torch

from compression_tool.commen_utils.atomic import write_text
from compression_tool.commen_utils.checkpoint import save_checkpoint
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.model_stats import count_macs, count_params
from compression_tool.commen_utils.results import ModeResult
from compression_tool.commen_utils.schedule import read_schedule
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.model_define.keep import record_keep
from compression_tool.prune_module.criteria import Criterion, check_ranking, criterion_named
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.repair import Repair
from compression_tool.prune_module.summary import conv_widths
from compression_tool.prune_module.thinning import Thinned, prune_and_repair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneConfig:
    """`--mode prune`: which schedule, how channels are ranked, the repair after thinning, where outputs go."""
    schedule_path: str = "yaml_file/auto_yaml.yaml"
    criterion: str = "l1"
    round_to: int = 1
    reconstruct: int = 200  # the repair pays most of all (BENCHMARKS.md, pruned accuracy)
    bn_recalibrate: int = 0
    save_checkpoint: bool = False
    output_folder: str = "work_space/pruned_model"
    layers_out_path: str = "work_space/layers_out/out.txt"
    overwrite: bool = False

    def __post_init__(self):
        check_ranking(self.criterion, self.reconstruct, self.bn_recalibrate)
        if self.round_to < 1:
            raise UserError(f"--round_to {self.round_to}: a multiple of channels, >= 1")


def refit_summary(thinned: Thinned) -> str:
    """Which layers that lost inputs the least-squares repair refitted, and why the others were not."""
    line = f"repair: {len(thinned.refitted)} layer(s) refitted by least squares"
    if thinned.not_refitted:
        line += "; not refitted: " + ", ".join(f"{n} ({why})" for n, why in thinned.not_refitted.items())
    return line


@dataclass(frozen=True)
class PruneResult(ModeResult):
    params_before: int
    macs_before: int
    params_after: int
    macs_after: int
    keep: dict[str, int]  # output width of every conv and linear layer
    criterion: str
    bn_recalibration_images: int
    reconstruction_images: int
    accuracy_before: float | None = None  # with a pair list
    accuracy_after: float | None = None
    cosine_after: float | None = None  # mean embedding cosine, pruned to unpruned, over the pair list's images
    refitted: list[str] | None = None  # with --reconstruct
    not_refitted: dict[str, str] | None = None  # layer that lost inputs -> why it was left as it is
    checkpoint: str | None = None  # with --save_model_pt


def run_prune(config: PruneConfig, loaded, *, evaluator=None, criterion: Criterion | None = None,
              images: torch.Tensor | None = None) -> PruneResult:
    """`--mode prune`: apply a Distiller schedule, report before/after, save a self-describing checkpoint.
    `criterion`: the ranking built for config.criterion (HRank: measured; default: built here); `images`: training
    images for the repair; without an evaluator nothing is scored."""
    if images is None and (config.reconstruct or config.bn_recalibrate):
        raise UserError(f"reconstruct {config.reconstruct} / bn_recalibrate {config.bn_recalibrate}: the repair needs "
                        "training images (images=...), or set both to 0")
    model, size = loaded.model, loaded.input_size
    checkpoint = Path(config.output_folder) / f"model_{Path(loaded.arch).stem}.pt"
    if config.save_checkpoint and checkpoint.exists() and not config.overwrite:  # refused before any work
        raise UserError(f"{checkpoint}: already exists (pass --overwrite to replace it)")
    ratios = read_schedule(config.schedule_path)
    graph = ChannelGraph(model, size)
    graph.check_prunable(loaded.arch)
    for param in ratios:
        graph.group(param)  # unknown or unprunable names fail here, before any work
    criterion = criterion_named(config.criterion, criterion)
    result = {"params_before": count_params(model), "macs_before": count_macs(model, size)}
    if evaluator is not None:
        before = evaluator.outputs(model)
        result["accuracy_before"] = evaluator.score(before)["headline"]
    repair = Repair(images, config.reconstruct, config.bn_recalibrate)
    thinned = prune_and_repair(model, size, ratios, criterion, config.round_to, graph, repair)
    if config.reconstruct:
        log.info(refit_summary(thinned))
        result.update(refitted=thinned.refitted, not_refitted=thinned.not_refitted)
    keep = record_keep(model)
    result.update(params_after=count_params(model), macs_after=count_macs(model, size), keep=keep,
                  criterion=criterion.name, bn_recalibration_images=config.bn_recalibrate,
                  reconstruction_images=config.reconstruct)
    widths = conv_widths(model)
    log.info(f"keep ({len(widths)} convs): {widths}")
    if evaluator is not None:
        after = evaluator.outputs(model)
        result["accuracy_after"] = evaluator.score(after)["headline"]
        result["cosine_after"] = torch.nn.functional.cosine_similarity(before, after, dim=1).mean().item()
    # the outputs are written once all the work is done: a failure on the way leaves none of them
    layers_out = Path(config.layers_out_path)
    if layers_out.exists() and not config.overwrite:  # keep the earlier list: this one gets the time in its name
        layers_out = layers_out.with_name(f"{layers_out.stem}_{time_stamp()}{layers_out.suffix}")
    write_text(layers_out, f"{widths}\n")
    log.info(f"keep list: {layers_out}")
    if config.save_checkpoint:
        path = save_checkpoint(checkpoint, model, loaded.arch, keep=keep, input_size=size,
                               embedding_size=loaded.embedding_size, overwrite=config.overwrite,
                               metadata={"schedule": str(config.schedule_path), "criterion": criterion.name,
                                         "pruned_from": loaded.pruned_from or loaded.checkpoint,
                                         "bn_recalibration_images": config.bn_recalibrate,
                                         "reconstruction_images": config.reconstruct})
        result["checkpoint"] = str(path)
    report = [f"params {result['params_before'] / 1e6:.3f} M -> {result['params_after'] / 1e6:.3f} M",
              f"MACs {result['macs_before'] / 1e6:.1f} M -> {result['macs_after'] / 1e6:.1f} M "
              f"({result['macs_after'] / result['macs_before']:.2f}x)"]
    if evaluator is not None:
        report.append(f"{evaluator.data_source} {result['accuracy_before']:.4f} -> {result['accuracy_after']:.4f}")
    log.info("pruned: " + ", ".join(report))
    log.info(f"saved: {result['checkpoint']}" if config.save_checkpoint else "not saved (pass --save_model_pt)")
    return PruneResult(**result)


if __name__ == "__main__":  # the original's README ran `python pruning.py ...`: same flags as main.py
    from compression_tool.main import main
    sys.exit(main())

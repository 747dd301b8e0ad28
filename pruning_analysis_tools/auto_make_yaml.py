"""Sensitivity CSV -> Distiller pruning schedule (YAML).

Three ways to choose each layer's sparsity:
- the original's rule (default): for every scheduled layer, the level whose metric is closest to
  --expected_acc, then moved to the highest level at least as good as that one (original_tool.md §10.1);
- a budget (--target_macs_ratio / --target_params_ratio): candidate schedules (uniform, the curves'
  equal-damage shape and halfway to it, the damage-per-MAC shape), each fitted to the budget on the real
  pruned model's counts; with --best_model_path and a pair list, each is pruned, repaired and scored, and
  the best is written;
- a target in the runtime the model will run in (--target_latency_ratio / --target_latency_ms and/or
  --max_accuracy_drop, --runtime): the model's latency table is measured there on this CPU (cached), the
  curves are traded against measured latency savings along a greedy path, and the points the target depends
  on (with the curves' shapes fitted to the same predicted latency) are pruned, repaired, put in the runtime,
  timed and scored; the most accurate that meets a latency target, or the fastest within an accuracy floor, is
  written, or, when no pruned schedule beats the unpruned model there, nothing is (exit 3).
"""
import argparse
import functools
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

from compression_tool.commen_utils.allocator import reuse_freed_memory
from compression_tool.commen_utils.cli_flags import (DEFAULT_TRAIN_DATA, add_config_flag, add_pair_list_flags,
                                                    add_repair_flags, add_round_to_flag, evaluation_settings,
                                                    mode_default, parse_flags, settings_of)
from compression_tool.commen_utils.console import report_to_console
from compression_tool.commen_utils.errors import UserError, exit_code
from compression_tool.commen_utils.results import write_result_json
from compression_tool.commen_utils.schedule import write_schedule
from compression_tool.prune_module.runtimes import RuntimeName
from compression_tool.pruning_analysis_tools.curves import Curves, read_curves, repair_text

log = logging.getLogger("compression_tool.pruning_analysis_tools.auto_make_yaml")  # also when run as __main__

if TYPE_CHECKING:  # imported where it is used, as late as possible
    from compression_tool.prune_module.latency_search import LatencyGoal
    from compression_tool.test_module.evaluate import EvaluationConfig


def original_rule(curve: dict, expected: float) -> float:
    """Closest level to `expected` (ties: the lowest), then the highest level that still scores at least as
    well as that closest one. Level 0.0 is never chosen, as in the original."""
    levels = sorted(v for v in curve if v > 0)
    closest = min(levels, key=lambda v: (abs(curve[v] - expected), v))
    return max(v for v in levels if v >= closest and curve[v] >= curve[closest])


def faithful_schedule(curves: Curves, layers: list[str], expected: float) -> dict:
    best = max(max(c.values()) for c in curves.accuracy.values())
    if expected > best:
        raise UserError(f"--expected_acc {expected}: no layer reaches it at any level (best {best:.4f})")
    return {layer: original_rule(curves.accuracy[layer], expected) for layer in layers}


@functools.lru_cache(maxsize=4)
def unpruned_graph(model_name: str, input_size: tuple, embedding_size: int | None = None):
    from compression_tool.model_define import create_model
    from compression_tool.prune_module.graph import ChannelGraph

    return ChannelGraph(create_model(model_name, input_size, embedding_size).eval(), input_size)


def measured_counts(model_name: str, input_size, ratios: dict, embedding_size: int | None = None,
                    round_to: int = 1) -> tuple[int, int]:
    """(MACs, params) of the model pruned by `ratios`: counts depend on widths only, not on weights. The
    bisections ask for many: the groups are found once."""
    from compression_tool.commen_utils.model_stats import count_macs, count_params
    from compression_tool.model_define import create_model
    from compression_tool.prune_module.graph import ChannelGraph
    from compression_tool.prune_module.thinning import prune_model

    input_size = tuple(input_size)
    model = create_model(model_name, input_size, embedding_size).eval()
    graph = ChannelGraph(model, input_size, groups_of=unpruned_graph(model_name, input_size, embedding_size))
    prune_model(model, input_size, {k: v for k, v in ratios.items() if v > 0}, round_to=round_to, graph=graph)
    return count_macs(model, input_size), count_params(model)


def budget_schedules(curves: Curves, layers: list[str], targets: dict, counts) -> dict:
    """Candidate schedules meeting a MACs or params budget (prune_module.shapes): without a measurement, the
    equal-damage schedule is the curves' own prediction. Returns {name: (ratios, reached ratios)}, uniform
    first."""
    from compression_tool.prune_module.shapes import shaped_schedules

    saving = ({k: {v: 1 - m / curves.macs[k][0.0] for v, m in curves.macs[k].items()} for k in layers}
              if curves.macs and "macs" in targets else None)
    return shaped_schedules({layer: curves.damage(layer) for layer in layers},
                            min(max(curves.accuracy[layer]) for layer in layers), targets, counts, macs_saving=saving)


def ranking(config: "ScheduleConfig", curves: Curves, loaded, evaluator):
    """The criterion the candidates are pruned with: the one the CSV's curves were measured with (so that the
    candidates lose the channels the curves predicted for, and the ones --mode prune with that criterion will
    remove). HRank's ranks are read from the cache the analysis wrote under --rank_path, or measured as main.py
    measures them: --hrank_batches batches of the pairs' images at its default batch size."""
    from compression_tool.prune_module.criteria import CRITERIA

    return CRITERIA[curves.criterion].measured(loaded, evaluator.images(), batch_size=config.evaluation.batch_size,
                                               batches=config.hrank_batches, cache_folder=config.rank_path)


def measured_choice(config: "ScheduleConfig", curves: Curves, candidates, size):
    """Prune and repair the real model with each candidate, ranking channels by the curves' criterion, and keep
    the one that scores best on the pairs (use the analysis pairs, not the final test pairs)."""
    import copy

    from compression_tool.dataloader import sample_images
    from compression_tool.model_define.loading import load_model
    from compression_tool.prune_module.repair import Repair
    from compression_tool.prune_module.thinning import prune_and_repair
    from compression_tool.test_module.evaluate import evaluator_from_config

    loaded = load_model(config.model, config.checkpoint, input_size=size, embedding_size=config.embedding_size)
    evaluator = evaluator_from_config(config.evaluation, loaded.spec, batch_size=16, cache_images=True,
                                      progress=False)
    needed = max(config.bn_recalibrate, config.reconstruct)
    repair = Repair(sample_images(config.train_root, loaded.spec, needed) if needed else None,
                    config.reconstruct, config.bn_recalibrate)
    criterion = ranking(config, curves, loaded, evaluator)
    scores = {}
    for name, (ratios, reached) in candidates.items():
        model = copy.deepcopy(loaded.model)
        prune_and_repair(model, size, {k: v for k, v in ratios.items() if v > 0}, criterion,
                         round_to=config.round_to, repair=repair)
        scores[name] = evaluator(model)["headline"]
        log.info(f"candidate {name}: MACs {reached['macs']:.3f}x, measured {scores[name]:.4f}")
    best = max(scores, key=scores.get)  # ties: the earlier candidate, uniform first
    tried = [{"schedule": name, "macs_ratio": candidates[name][1]["macs"],
              "params_ratio": candidates[name][1]["params"], "measured": scores[name]} for name in scores]
    return best, scores[best], tried


def latency_schedule(config: "ScheduleConfig", curves: Curves, layers: list[str], size) -> tuple:
    """(ratios, rule, measured points, result fields) for a latency target or accuracy floor. The points are
    built from the checkpoint's weights when there is one (and scored on the pairs); a latency target alone
    needs only the architecture."""
    from compression_tool.dataloader import sample_images
    from compression_tool.model_define.loading import load_model
    from compression_tool.prune_module.latency_search import plan_for_latency
    from compression_tool.prune_module.repair import Repair
    from compression_tool.test_module.evaluate import evaluator_from_config

    goal = config.latency
    loaded = load_model(config.model, config.checkpoint, input_size=size, embedding_size=config.embedding_size)
    evaluator = (evaluator_from_config(config.evaluation, loaded.spec, batch_size=16, cache_images=True,
                                       progress=False) if config.checkpoint else None)
    needed = max(config.bn_recalibrate, config.reconstruct)
    images = sample_images(config.train_root, loaded.spec, max(needed, 64)) if config.checkpoint else None
    # without weights only the time is measured: nothing to repair
    repair = Repair(images[:needed], config.reconstruct, config.bn_recalibrate) if needed and images is not None \
        else Repair()
    # without weights nothing is scored: which channels go changes no measured time, and HRank would have no
    # images to rank them on
    criterion = ranking(config, curves, loaded, evaluator) if evaluator is not None else None
    damage = {layer: curves.damage(layer) for layer in layers}
    plan = plan_for_latency(
        model=loaded.model, model_name=config.model, input_size=size, damage=damage,
        max_fraction={layer: max(curves.accuracy[layer]) for layer in layers}, goal=goal, repair=repair,
        criterion=criterion, evaluator=evaluator, calibration=images[:64] if images is not None else None,
        repeats=config.latency_repeats, steps=config.latency_steps,
        cache_dir=config.latency_cache, save_dir=Path(config.output).with_suffix("").as_posix() + "_points",
        info={"arch": loaded.arch, "input_size": list(size), "embedding_size": loaded.embedding_size})
    chosen = plan.chosen
    log.info(frontier_table(plan))
    scored = (f", {chosen.accuracy:.4f} on {Path(config.evaluation.pair_list).name}" if chosen.accuracy is not None
              else "")
    where = chosen.name if chosen.shape else f"{chosen.name} of the greedy path"
    rule = (f"{goal.describe()}: {where}, predicted {chosen.expected_ms:.2f} ms ({chosen.expected_ratio:.3f}x), "
            f"measured {chosen.measured_ms:.2f} ms ({chosen.ratio:.3f}x of the unpruned model){scored}")
    tried = [{"schedule": m.name, "widths": m.widths, "predicted_ms": m.expected_ms,
              "predicted_ratio": m.expected_ratio, "table_ms": m.predicted_ms, "measured_ms": m.measured_ms,
              "unpruned_ms": m.unpruned_ms, "latency_ratio": m.ratio, "measured": m.accuracy, "chosen": m is chosen,
              **m.extra} for m in plan.measured]
    extra = {"deployment": {"runtime": str(goal.deployment.runtime), "threads": goal.deployment.threads,
                            "batch": goal.deployment.batch},
             "predicted_ms": chosen.expected_ms, "predicted_ratio": chosen.expected_ratio,
             "table_ms": chosen.predicted_ms,
             "measured_ms": chosen.measured_ms, "latency_ratio": chosen.ratio,
             "unpruned_measured_ms": chosen.unpruned_ms,
             "unpruned_predicted_ms": plan.table.unpruned_ms, "unpruned_file": plan.unpruned_file,
             "baseline_measured": plan.baseline, "accuracy_floor": plan.floor}
    return plan.ratios, rule, tried, extra


def frontier_table(plan) -> str:
    lines = ["| schedule | table ms | predicted x unpruned | measured x unpruned | measured ms | accuracy | |",
             "|---|---|---|---|---|---|---|"]
    for m in plan.measured:
        accuracy = f"{m.accuracy:.4f}" if m.accuracy is not None else "-"
        lines.append(f"| {m.name} | {m.predicted_ms:.2f} | {m.expected_ratio:.3f} | {m.ratio:.3f} | "
                     f"{m.measured_ms:.2f} | {accuracy} | {'chosen' if m is plan.chosen else ''} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class ScheduleConfig:
    """What auto_make_yaml.py is asked: which curves, which rule or budget, and (budget mode) what to measure
    the candidates on."""
    csv: str
    model: str
    output: str = "yaml_file/auto_yaml.yaml"
    input_size: tuple | None = None
    embedding_size: int | None = None
    expected_acc: float | None = None
    target_macs_ratio: float | None = None
    target_params_ratio: float | None = None
    round_to: int = 1
    layers: str | None = None
    overwrite: bool = False
    checkpoint: str | None = None  # budget mode measures the candidates on this model...
    evaluation: "EvaluationConfig | None" = None  # ...scored as test_module.evaluate.EvaluationConfig says
    reconstruct: int = 0
    bn_recalibrate: int = 0
    train_root: str = DEFAULT_TRAIN_DATA
    latency: "LatencyGoal | None" = None  # latency mode: prune_module.latency_search.LatencyGoal
    latency_repeats: int = 15
    latency_steps: int = 16
    latency_cache: str | None = "work_space/latency_cache"
    hrank_batches: int = 4  # an HRank CSV: the candidates' ranks, as main.py's --hrank_batches and --rank_path
    rank_path: str = "work_space/rank_conv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_flag(p)
    p.add_argument("--csv", required=True, help="sensitivity CSV (from --mode sa)")
    p.add_argument("--model", required=True, help="the model the CSV was measured on (chooses the layers)")
    p.add_argument("--input_size", default=None, help="HxW written as the schedule's dataset (e.g. 144x122)")
    p.add_argument("--embedding_size", type=int, help="the model's embedding width, if not its default")
    p.add_argument("--expected_acc", type=float, help="original rule: per-layer target metric")
    p.add_argument("--target_macs_ratio", type=float, help="budget: MACs of the result / MACs of the model")
    p.add_argument("--target_params_ratio", type=float, help="budget: params of the result / params of the model")
    add_round_to_flag(p, "as prune mode's --round_to: budgets are fitted and candidates measured with the "
                      "widths rounded the same way")
    p.add_argument("--layers", help="regex of layers to schedule (default: the model family's choice)")
    p.add_argument("--output", default="yaml_file/auto_yaml.yaml")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists (it may hold hand edits)")
    t = p.add_argument_group("latency mode: the fastest schedule in the runtime the model will run in")
    t.add_argument("--runtime", default="openvino-int8", choices=[str(r) for r in RuntimeName],
                   help="where the model will run: its latency is measured there, on this CPU")
    t.add_argument("--threads", type=int, default=1, help="threads the runtime runs the model with")
    t.add_argument("--latency_batch", type=int, default=1, help="batch size the runtime runs the model at")
    t.add_argument("--target_latency_ratio", type=float, help="latency of the result / latency of the unpruned "
                   "model, both in --runtime")
    t.add_argument("--target_latency_ms", type=float, help="latency of the result in --runtime, in ms")
    t.add_argument("--max_accuracy_drop", type=float, metavar="POINTS", help="accuracy on the pairs (analysis "
                   "pairs, never the final ones) may fall at most this many points below the unpruned FP32 model's")
    t.add_argument("--latency_repeats", type=int, default=15, help="timed runs per measurement (medians)")
    t.add_argument("--latency_steps", type=int, default=16, help="widths measured per layer group: k/N of its "
                   "width (multiples of 8), down to the highest level of the curves")
    t.add_argument("--latency_cache", default="work_space/latency_cache",
                   help="folder of measured latency tables, keyed by CPU, runtime, threads, batch and model")
    g = p.add_argument_group("budget mode: choose among candidate schedules by measuring them")
    g.add_argument("--best_model_path", help="the model's checkpoint (enables the measurement)")
    add_pair_list_flags(g, pair_list_help="pairs to measure on: the analysis pairs, not the final test")
    add_repair_flags(g)
    g.add_argument("--hrank_batches", type=int, default=4, help="a CSV ranked by HRank: the candidates are ranked "
                   "by HRank too, on this many batches of the pairs' images (as the analysis's --hrank_batches)")
    g.add_argument("--rank_path", default="work_space/rank_conv", help="HRank rank cache folder (as the "
                   "analysis's: its ranks are reused)")
    p.add_argument("--result_json", help="write the chosen ratios and predicted/real budget here")
    return p


def reached_ratios(config: ScheduleConfig, size, ratios: dict, round_to: int) -> dict:
    """MACs and params of the model pruned by `ratios`, as fractions of the unpruned model's."""
    macs, params = measured_counts(config.model, size, ratios, config.embedding_size, round_to)
    base_macs, base_params = measured_counts(config.model, size, {}, config.embedding_size)
    return {"macs": macs / base_macs, "params": params / base_params}


def budget_schedule(config: ScheduleConfig, curves: Curves, layers: list[str], targets: dict, size) -> tuple:
    """(ratios, rule, candidates measured, reached ratios) for a MACs or params budget."""
    counted = {}  # the bisections keep landing on the same two-decimal schedules: build each once

    def counts(ratios: dict) -> dict:
        key = tuple(sorted((k, v) for k, v in ratios.items() if v > 0))
        if key not in counted:
            counted[key] = dict(zip(("macs", "params"), measured_counts(
                config.model, size, dict(key), config.embedding_size, config.round_to)))
        return counted[key]
    candidates = budget_schedules(curves, layers, targets, counts)
    rule = "budget " + ", ".join(f"{k} <= {v:g}x" for k, v in targets.items())
    tried = []
    if config.checkpoint:
        used = {"reconstruct": config.reconstruct, "bn_recalibrate": config.bn_recalibrate}
        if used != curves.repair:
            log.warning(f"note: the curves were measured with {repair_text(curves.repair)}, the candidates are "
                        f"measured with {repair_text(used)}; the same options in both predict best")
        chosen, measured, tried = measured_choice(config, curves, candidates, size)
        rule += f", {chosen} chosen by measurement ({measured:.4f} on {Path(config.evaluation.pair_list).name})"
    else:
        chosen = "equal damage"
        rule += ", equal-damage schedule (not measured)"
    ratios, reached = candidates[chosen]
    return ratios, rule, tried, reached


def make_schedule(config: ScheduleConfig) -> dict:
    import re

    from compression_tool.model_define import get_entry

    if Path(config.output).exists() and not config.overwrite:  # before any work; the file may hold hand edits
        raise UserError(f"{config.output}: already exists (pass --overwrite to replace it)")
    entry = get_entry(config.model)
    size = config.input_size or entry.spec.size
    curves = read_curves(config.csv)
    pattern = re.compile(config.layers or entry.schedule_layers)
    layers = [layer for layer in curves.layers if pattern.fullmatch(layer)]
    if not layers:
        raise UserError(f"no layer of {config.csv} matches {pattern.pattern}")
    targets = {k: v for k, v in (("macs", config.target_macs_ratio), ("params", config.target_params_ratio)) if v}
    for k, v in targets.items():
        if not 0 < v <= 1:
            raise UserError(f"--target_{k}_ratio {v}: must be in (0, 1]")
    if config.latency is not None:
        if targets or config.expected_acc is not None:
            raise UserError("a latency target or --max_accuracy_drop replaces --expected_acc and --target_*_ratio: "
                            "give one kind of target")
        ratios, rule, tried, extra = latency_schedule(config, curves, layers, size)
        reached = reached_ratios(config, size, ratios, round_to=1)
    elif targets:
        ratios, rule, tried, reached = budget_schedule(config, curves, layers, targets, size)
        extra = {}
    elif config.expected_acc is not None:
        tried, extra = [], {}
        ratios = faithful_schedule(curves, layers, config.expected_acc)
        reached = reached_ratios(config, size, ratios, config.round_to)
        rule = f"original rule, expected_acc {config.expected_acc}"
    else:
        raise UserError("give --expected_acc (original rule) or --target_macs_ratio / --target_params_ratio")
    ratios = {k: v for k, v in ratios.items() if v > 0}
    ranked = f"--criterion {curves.criterion}, " if curves.criterion != "l1" else ""
    header = [f"made by auto_make_yaml.py from {config.csv} (analysis with {ranked}{repair_text(curves.repair)})",
              f"rule: {rule}",
              f"model {config.model}: MACs {reached['macs']:.3f}x, params {reached['params']:.3f}x of the unpruned "
              f"model; baseline {curves.baseline:.4f}"]
    write_schedule(config.output, ratios, size, header, overwrite=config.overwrite)
    log.info("\n".join(header[1:]) + f"\nschedule: {config.output}")
    if curves.criterion != "l1":
        log.info(f"the curves rank channels by {curves.criterion}: prune with --criterion {curves.criterion}")
    result = {"ratios": ratios, "macs_ratio": reached["macs"], "params_ratio": reached["params"],
              "baseline": curves.baseline, "criterion": curves.criterion, "yaml": str(config.output),
              "candidates": tried, **extra}
    return result


def schedule_config(args) -> ScheduleConfig:
    from compression_tool.model_define.loading import parse_size
    from compression_tool.test_module.evaluate import EvaluationConfig

    from compression_tool.prune_module.latency_search import LatencyGoal
    from compression_tool.prune_module.runtimes import Deployment

    evaluation = EvaluationConfig(**evaluation_settings(vars(args))) if args.best_model_path else None
    wanted = (args.target_latency_ratio, args.target_latency_ms, args.max_accuracy_drop)
    latency = (LatencyGoal(Deployment(args.runtime, args.threads, args.latency_batch), *wanted)
               if any(v is not None for v in wanted) else None)
    return ScheduleConfig(csv=args.csv, model=args.model, output=args.output, input_size=parse_size(args.input_size),
                          embedding_size=args.embedding_size, expected_acc=args.expected_acc,
                          target_macs_ratio=args.target_macs_ratio, target_params_ratio=args.target_params_ratio,
                          round_to=args.round_to, layers=args.layers, overwrite=args.overwrite,
                          checkpoint=args.best_model_path, evaluation=evaluation,
                          reconstruct=mode_default(args, "reconstruct", ScheduleConfig),
                          bn_recalibrate=args.bn_recalibrate, train_root=args.train_data_path, latency=latency,
                          latency_repeats=args.latency_repeats, latency_steps=args.latency_steps,
                          latency_cache=args.latency_cache, hrank_batches=args.hrank_batches,
                          rank_path=args.rank_path)


def main(argv: list | None = None) -> int:
    args = parse_flags(build_parser(), argv)
    report_to_console()
    reuse_freed_memory()  # as main.py does by default: this CLI runs models too
    return exit_code(lambda: write_result_json(args.result_json, make_schedule(schedule_config(args)),
                                               config=settings_of(args)))


if __name__ == "__main__":
    sys.exit(main())

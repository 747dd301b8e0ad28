"""SFace accuracy (10-fold, ORL 3,600 pairs, no fine-tuning) at 0.7 / 0.5 / 0.3 of its MACs: uniform L1,
the original's per-layer rule, and budget mode; each without repair, with BN re-estimation, with
least-squares refit in forward order ("LS"), and with both (64 training images of identities 1-20).
Schedules come from a sensitivity analysis on the pairs of identities 1-20, the budget candidates are
measured there too. --repair says which repair the analysis and the budget candidates use: LS (what
demo.sh and prune.sh do), or none (the issue's setting: curves, search and result all unrepaired).

    python benchmarks/pruned_accuracy.py [--repair LS|none] [--csv SA_CSV]   # without --csv, runs the analysis
"""
import argparse
import copy
import tempfile
from pathlib import Path

import torch

from common import ORL, PAIRS, SFACE, TRAIN, TRAIN_PAIRS, machine, reuse_memory, timed_cli
from compression_tool.commen_utils.model_stats import count_macs
from compression_tool.dataloader import sample_images
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.repair import (Repair, following_norms, input_grams, recalibrate_bn, reconstruct,
                                 refittable_consumers)
from compression_tool.prune_module.thinning import prune_and_repair, prune_model
from compression_tool.pruning_analysis_tools.auto_make_yaml import budget_schedules, faithful_schedule
from compression_tool.pruning_analysis_tools.curves import read_curves
from compression_tool.test_module.evaluate import make_evaluator

TARGETS = (0.7, 0.5, 0.3)
CALIB = 64


def analysis_csv(folder, repair):
    timed_cli(["--mode", "sa", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
               "--img_list_label_path", TRAIN_PAIRS, "--sparsities", "0.0,0.2,0.4,0.6,0.8", "--device", "cpu",
               "--test_batch_size", "16", "--reconstruct", CALIB if repair == "LS" else 0,
               "--sensitivity_csv_path", folder], threads=2)
    return next(Path(folder).glob("*.csv"))


def score_previous_repair(model, size, images, ratios, evaluator) -> tuple:
    """(accuracy, MACs) of `model` pruned by `ratios` and repaired as before 2026-11-28: each conv refitted from
    the unpruned model's inputs, then BN statistics re-estimated."""
    pruned, graph = copy.deepcopy(model), ChannelGraph(model, size)
    plans = prune_model(pruned, size, ratios, graph=graph)
    grams = input_grams(model, images, refittable_consumers(plans, graph.modules))
    reconstruct(pruned, model, plans, grams, following_norms(model, size))
    recalibrate_bn(pruned, images)
    return evaluator(pruned)["headline"], count_macs(pruned, size)


def faithful_at(curves, max_macs: float, macs) -> tuple:
    """The original rule, with the expected accuracy searched so that the MACs (`macs(ratios)`) meet `max_macs`."""
    accuracies = sorted({a for c in curves.accuracy.values() for a in c.values()}, reverse=True)
    for expected in accuracies:
        ratios = faithful_schedule(curves, curves.layers, expected)
        if macs(ratios) <= max_macs:
            return ratios, expected
    return ratios, expected


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repair", choices=("LS", "none"), default="LS")
    p.add_argument("--csv", help="sensitivity CSV made with the same repair (--reconstruct 64 for LS)")
    args = p.parse_args()
    torch.set_num_threads(2)
    reuse_memory()
    with tempfile.TemporaryDirectory() as tmp:
        curves = read_curves(args.csv or analysis_csv(tmp, args.repair))
    loaded = load_model("sface", SFACE)
    model, size = loaded.model, loaded.input_size
    base_macs = count_macs(model, size)
    final = make_evaluator("lfw", ORL, PAIRS, loaded.spec, batch_size=16, cache_images=True, progress=False)
    search = make_evaluator("lfw", ORL, TRAIN_PAIRS, loaded.spec, batch_size=16, cache_images=True, progress=False)
    images = sample_images(TRAIN, loaded.spec, CALIB)
    repairs = {"none": Repair(), "BN": Repair(images, 0, CALIB), "LS": Repair(images, CALIB, 0),
               "LS+BN": Repair(images, CALIB, CALIB)}
    layers = curves.layers

    def macs(ratios):
        pruned = copy.deepcopy(model)
        prune_and_repair(pruned, size, {k: v for k, v in ratios.items() if v > 0})
        return count_macs(pruned, size)

    def counts(ratios):
        return {"macs": macs(ratios), "params": 1}

    def score(ratios, repair, evaluator=final):
        pruned = copy.deepcopy(model)
        prune_and_repair(pruned, size, {k: v for k, v in ratios.items() if v > 0}, repair=repair)
        return evaluator(pruned)["headline"], count_macs(pruned, size) / base_macs

    print(f"SFace unpruned: {final(model)['headline']:.4f}; {machine()}")
    print("| MACs target | schedule | repair | MACs | accuracy |")
    print("|---|---|---|---|---|")
    for target in TARGETS:
        candidates = budget_schedules(curves, layers, {"macs": target}, counts)
        uniform = candidates["uniform"][0]
        faithful, expected = faithful_at(curves, target * base_macs, macs)
        best = max(candidates, key=lambda b: score(candidates[b][0], repairs[args.repair], search)[0])
        shown = repairs if args.repair == "LS" else ["none"]  # unrepaired curves: unrepaired rows only
        rows = [("uniform L1", uniform, r) for r in shown] + \
               [(f"original rule (expected_acc {expected:.3f})", faithful, r) for r in shown] + \
               [(f"budget candidate: {name}" + (" (**chosen** on identities 1-20)" if name == best else ""),
                 ratios, args.repair) for name, (ratios, _) in candidates.items()]
        for name, ratios, repair in rows:
            accuracy, ratio = score(ratios, repairs[repair])
            print(f"| {target} | {name} | {repair} | {ratio:.3f} | {accuracy:.4f} |", flush=True)
        if args.repair == "none":
            continue
        accuracy, ratio = score_previous_repair(model, size, images, uniform, final)
        ratio /= base_macs
        print(f"| {target} | uniform L1 | LS, each conv from unpruned inputs, + BN (the repair before "
              f"2026-11-28) | {ratio:.3f} | {accuracy:.4f} |", flush=True)


if __name__ == "__main__":
    main()

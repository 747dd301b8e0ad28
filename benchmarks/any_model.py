"""A concatenating model through the pipeline: sensitivity-analysis time, fast path against naive (same CSV,
checked), and the pruned model at half the MACs with and without the least-squares repair.

The model is tests/inception_face.py (Inception-ResNet style: cat branches, scaled residuals, a pooled
pass-through) with RANDOM weights (no trained weights of such a face model ship offline): its 10-fold
accuracy is near chance, so the cosine of the pruned model's embeddings to the unpruned ones is the figure
that says what pruning and repair cost. The schedule is also applied with its layers listed in reverse order
(a layer thinned by several groups then sees its later groups' channels at shifted offsets: the case the
repair once crashed on). --families lists, per model family, what the engine prunes and what it leaves out.

    python benchmarks/any_model.py [--pairs 600] [--threads 1] [--families]
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from common import ORL, PAIRS, TRAIN, machine, timed_cli
from compression_tool.commen_utils.schedule import read_schedule, write_schedule
from tests.helpers import randomize
from tests.inception_face import build

MODEL = "tests/inception_face.py:build"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--levels", default="0.0,0.2,0.4,0.6,0.8")
    p.add_argument("--families", action="store_true", help="only list what each model family prunes")
    args = p.parse_args()
    if args.families:
        return families()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        weights = tmp / "w.pth"
        torch.save(randomize(build()).state_dict(), weights)
        pairs = tmp / "pairs.txt"
        pairs.write_text("\n".join(PAIRS.read_text().splitlines()[:args.pairs]) + "\n")
        model_and_data = ["--best_model_path", weights, "--test_root_path", ORL, "--img_list_label_path", pairs,
                          "--train_data_path", TRAIN]
        common = ["--model", MODEL, "--device", "cpu", *model_and_data]
        print(f"{MODEL} (random weights), {args.pairs} ORL pairs, levels {args.levels}, {args.threads} thread(s); "
              f"{machine()}")
        seconds = {}
        for path in ("fast", "naive"):
            flags = ["--sa_naive"] if path == "naive" else []
            seconds[path] = timed_cli(["--mode", "sa", *common, "--sparsities", args.levels,
                                       "--sensitivity_csv_path", tmp / path, *flags], args.threads)
        csvs = {path: next((tmp / path).glob("*.csv")).read_text() for path in seconds}
        print(f"| SA path | seconds | x naive |\n|---|---|---|")
        for path, s in seconds.items():
            print(f"| {path} | {s:.1f} | {seconds['naive'] / s:.2f} |")
        print(f"CSVs identical: {csvs['fast'] == csvs['naive']}")
        print("| at 0.5x MACs | MACs ratio | 10-fold accuracy | mean cosine to unpruned |\n|---|---|---|---|")
        for label, repair, reverse in (("no repair", [], False), ("--reconstruct 64", ["--reconstruct", "64"], False),
                                       ("--reconstruct 64, layers in reverse", ["--reconstruct", "64"], True)):
            schedule, out = tmp / f"{len(repair)}.yaml", tmp / f"{len(repair)}{reverse}.json"
            csv_path = next((tmp / "fast").glob("*.csv"))
            if not reverse:
                timed_cli(["--csv", csv_path, "--model", MODEL, "--target_macs_ratio", "0.5", "--output", schedule,
                           *model_and_data, *repair], args.threads, script="pruning_analysis_tools/auto_make_yaml.py")
            else:
                write_schedule(schedule, dict(reversed(read_schedule(schedule).items())), (112, 112))
            timed_cli(["--mode", "prune", *common, "--yaml_path", schedule, *repair, "--layers_out_path",
                       tmp / "out.txt", "--result_json", out], args.threads)
            result = json.loads(out.read_text())
            print(f"| {label} | {result['macs_after'] / result['macs_before']:.3f} | {result['accuracy_after']:.4f} | "
                  f"{result['cosine_after']:.4f} |")


def families():
    """One line per family: prunable groups, and the layers left out with the first reason given."""
    import torchvision

    from compression_tool.model_define import create_model
    from compression_tool.prune_module.graph import ChannelGraph
    from tests.shufflenet_face import build as shufflenet

    models = {"inception_face (file)": (build(), (112, 112)), "shufflenet_v2_x0_5 (file)": (shufflenet(), (112, 112))}
    for name in ("googlenet", "densenet121", "regnet_y_400mf", "convnext_tiny", "resnet50", "mobilenet_v3_large",
                 "efficientnet_b0"):
        extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        models[f"torchvision {name}"] = (getattr(torchvision.models, name)(weights=None, **extra), (64, 64))
    for name in ("sface", "mobilefacenet", "resnet50", "shufflefacenet_v2", "mobilenetv3"):
        models[f"zoo {name}"] = (create_model(name), (80, 80) if name == "mobilenetv3" else
                                 (144, 122) if name == "shufflefacenet_v2" else (112, 112))
    print("| model | prunable groups | left out | why (first) |\n|---|---|---|---|")
    for label, (model, size) in models.items():
        graph = ChannelGraph(model.eval(), size)
        why = next(iter(graph.excluded.values()), "")
        print(f"| {label} | {len(graph.groups)} | {len(graph.excluded)} | {why} |")


if __name__ == "__main__":
    main()

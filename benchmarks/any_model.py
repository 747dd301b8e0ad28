"""A concatenating model through the pipeline: sensitivity-analysis time, fast path against naive (same CSV,
checked), and the pruned model at half the MACs with and without the least-squares repair.

The model is tests/inception_face.py (Inception-ResNet style: cat branches, scaled residuals, a pooled
pass-through) with RANDOM weights (no trained weights of such a face model ship offline): its 10-fold
accuracy is near chance, so the cosine of the pruned model's embeddings to the unpruned ones is the figure
that says what pruning and repair cost.

    python benchmarks/any_model.py [--pairs 600] [--threads 1]
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from common import ORL, PAIRS, TRAIN, machine, timed_cli
from tests.helpers import randomize
from tests.inception_face import build

MODEL = "tests/inception_face.py:build"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--levels", default="0.0,0.2,0.4,0.6,0.8")
    args = p.parse_args()
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
        for label, repair in (("no repair", []), ("--reconstruct 64", ["--reconstruct", "64"])):
            schedule, out = tmp / f"{len(repair)}.yaml", tmp / f"{len(repair)}.json"
            csv_path = next((tmp / "fast").glob("*.csv"))
            timed_cli(["--csv", csv_path, "--model", MODEL, "--target_macs_ratio", "0.5", "--output", schedule,
                       *model_and_data, *repair], args.threads, script="pruning_analysis_tools/auto_make_yaml.py")
            timed_cli(["--mode", "prune", *common, "--yaml_path", schedule, *repair, "--layers_out_path",
                       tmp / "out.txt", "--result_json", out], args.threads)
            result = json.loads(out.read_text())
            print(f"| {label} | {result['macs_after'] / result['macs_before']:.3f} | {result['accuracy_after']:.4f} | "
                  f"{result['cosine_after']:.4f} |")


if __name__ == "__main__":
    main()

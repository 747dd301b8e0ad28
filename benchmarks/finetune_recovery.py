"""Fine-tuning recovery on the embedded default: SFace pruned to about half its MACs (uniform L1, no repair),
then fine-tuned by distillation from the unpruned SFace on identities 1-20 (200 images), every state scored
on the held-out pairs of identities 21-40 (never trained on).

    python benchmarks/finetune_recovery.py [--epochs 8] [--ratio 0.3] [--threads 2]
"""
import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch

from common import HELDOUT, ORL, SFACE, machine, timed_cli
from commen_utils.checkpoint import save_checkpoint
from commen_utils.model_stats import count_macs
from model_define.keep import record_keep
from model_define.loading import load_model
from pruning import ChannelGraph, prune_model
from test_module.evaluate import make_evaluator


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.3, help="fraction of every group removed (0.3: ~0.5x MACs)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model("sface", SFACE)
    evaluator = make_evaluator("lfw", ORL, HELDOUT, loaded.spec, batch_size=32, cache_images=True, progress=False)
    unpruned = evaluator(loaded.model)["accuracy"]
    pruned = copy.deepcopy(loaded.model)
    graph = ChannelGraph(pruned, (112, 112))
    prune_model(pruned, (112, 112), {g.param: args.ratio for g in graph.groups}, graph=graph)
    macs = count_macs(pruned, (112, 112)) / count_macs(loaded.model, (112, 112))
    pruned_accuracy = evaluator(pruned)["accuracy"]
    with tempfile.TemporaryDirectory() as tmp:
        student = save_checkpoint(Path(tmp) / "pruned.pt", pruned, "sface", keep=record_keep(pruned),
                                  input_size=(112, 112), embedding_size=128)
        command = ["--mode", "finetune", "--pruned_checkpoint", student, "--teacher_path", SFACE, "--head", "none",
                   "--test_root_path", ORL, "--img_list_label_path", HELDOUT, "--device", "cpu", "--epoch",
                   args.epochs, "--milestones", max(1, args.epochs - 2), "--lr", args.lr, "--train_batch_size", 32,
                   "--work_path", Path(tmp) / "runs", "--result_json", Path(tmp) / "r.json"]
        seconds = timed_cli(command, threads=args.threads)
        result = json.loads((Path(tmp) / "r.json").read_text())
    recovered = (result["accuracy"] - pruned_accuracy) / (unpruned - pruned_accuracy)
    print(f"{machine()}; {args.threads} threads; {args.epochs} epochs in {seconds:.0f} s")
    print("| state | MACs ratio | 10-fold accuracy (held-out identities 21-40) |")
    print("|---|---|---|")
    print(f"| unpruned | 1.000 | {unpruned:.4f} |")
    print(f"| pruned, uniform L1 {args.ratio:g} per group | {macs:.3f} | {pruned_accuracy:.4f} |")
    print(f"| + fine-tuned, distillation only, best of {args.epochs} epochs | {macs:.3f} | {result['accuracy']:.4f} |")
    print(f"recovered {recovered:.0%} of the accuracy the pruning lost")


if __name__ == "__main__":
    main()

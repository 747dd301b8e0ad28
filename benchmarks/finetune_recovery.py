"""Fine-tuning recovery on the embedded default: SFace pruned uniformly by L1 to about half its MACs, with and
without the least-squares repair, then fine-tuned by distillation from the unpruned SFace on identities 1-20
(200 images) with each technique the trainer offers. The epoch is chosen on the pairs of identities 1-20 (as
the pipeline does); every state is scored on the held-out pairs of identities 21-40, which nothing saw.

    python benchmarks/finetune_recovery.py [--epochs 8] [--ratio 0.3] [--threads 2] [--starts repaired,unrepaired]
"""
import argparse
import copy
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from common import HELDOUT, ORL, SFACE, TRAIN, TRAIN_PAIRS, machine, reuse_memory
from compression_tool.commen_utils.checkpoint import load_checkpoint, save_checkpoint
from compression_tool.commen_utils.model_stats import count_macs
from compression_tool.dataloader import sample_images
from compression_tool.model_define.keep import record_keep
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.repair import Repair
from compression_tool.prune_module.thinning import prune_and_repair
from compression_tool.test_module.evaluate import make_evaluator
from compression_tool.train_module.trainer import FineTuneConfig, FineTuneRun, run_finetune

# Each row: what is changed from the trainer's distillation settings of the demo (SGD, BN statistics frozen).
TECHNIQUES = {
    # what `--mode finetune` runs with nothing but the required flags (FineTuneConfig(); the teacher is the
    # checkpoint a --mode prune checkpoint was pruned from): none of the settings below apply
    "defaults": None,
    "embedding distillation": {},
    "embedding distillation + lr x10": {"lr_scale": 10},
    "embedding distillation + lr x10 + BN statistics trained": {"lr_scale": 10, "freeze_bn_stats": False},
    "+ mixup 1.0 + lr x10 + BN statistics trained": {"mixup": 1.0, "lr_scale": 10, "freeze_bn_stats": False},
    "+ mixup 1.0": {"mixup": 1.0},
    "+ mixup 1.0 + lr x10": {"mixup": 1.0, "lr_scale": 10},
    "+ mixup 1.0 + BN statistics trained": {"mixup": 1.0, "freeze_bn_stats": False},
    "+ mixup 1.0 + twice the epochs": {"mixup": 1.0, "epochs_scale": 2},
    "+ mixup 0.4": {"mixup": 0.4},
    # similarity-preserving distillation at every BN output (--feature_kd): its loss is ~1e-4 where the
    # embedding's is ~0.1 after the repair, hence weights in the hundreds
    "+ mixup 1.0 + feature maps x100": {"mixup": 1.0, "feature_kd": 100.0},
    "+ mixup 1.0 + feature maps x1000": {"mixup": 1.0, "feature_kd": 1000.0},
    "+ feature maps x1000": {"feature_kd": 1000.0},
    "+ mixup 1.0 + zoom and brightness 0.1": {"mixup": 1.0, "scale_jitter": 0.1, "brightness_jitter": 0.1},
    "+ zoom and brightness 0.1": {"scale_jitter": 0.1, "brightness_jitter": 0.1},
    # flips only: the repair was fitted on centred faces, and SFace's fc weighs every position of its 7x7 map
    "embedding distillation on flips only (no shifts)": {"shift": 0},
    "+ mixup 1.0 on flips only (no shifts)": {"mixup": 1.0, "shift": 0},
    "embedding distillation + lr x10 + BN statistics trained on flips only": {"lr_scale": 10, "freeze_bn_stats": False,
                                                                             "shift": 0},
    "embedding distillation on flips only + cosine lr": {"shift": 0, "lr_schedule": "cosine"},
    "+ mixup 1.0 on flips only + cosine lr": {"mixup": 1.0, "shift": 0, "lr_schedule": "cosine"},
    "+ mixup 1.0 + cosine lr": {"mixup": 1.0, "lr_schedule": "cosine"},
    "embedding distillation + cosine lr": {"lr_schedule": "cosine"},
    "embedding distillation on flips only + cosine lr + twice the epochs": {"shift": 0, "lr_schedule": "cosine",
                                                                            "epochs_scale": 2},
    "embedding distillation + lr x10 + BN statistics trained on flips only + cosine lr": {
        "lr_scale": 10, "freeze_bn_stats": False, "shift": 0, "lr_schedule": "cosine"},
    # patient distillation (Beyer et al. 2022, "a good teacher is patient and consistent"): two
    # recipes above run six times as long, with a cosine lr
    "+ mixup 1.0 + cosine lr x3 + six times the epochs": {"mixup": 1.0, "lr_schedule": "cosine", "lr_scale": 3,
                                                          "epochs_scale": 6},
    "embedding distillation + lr x10 + BN statistics trained + cosine lr + six times the epochs": {
        "lr_scale": 10, "freeze_bn_stats": False, "lr_schedule": "cosine", "epochs_scale": 6},
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.3, help="fraction of every group removed (0.3: ~0.5x MACs)")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--repair_images", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--starts", default="repaired,unrepaired")
    p.add_argument("--techniques", default=",".join(TECHNIQUES), help="comma-separated names from TECHNIQUES")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    reuse_memory()
    loaded = load_model("sface", SFACE)
    size = loaded.input_size
    heldout = make_evaluator("lfw", ORL, HELDOUT, loaded.spec, target_fprs=(1e-3,), batch_size=32, cache_images=True,
                             progress=False)
    choice = make_evaluator("lfw", ORL, TRAIN_PAIRS, loaded.spec, batch_size=32, cache_images=True, progress=False)
    unpruned = heldout(loaded.model)["accuracy"]
    images = sample_images(TRAIN, loaded.spec, args.repair_images)
    base = FineTuneConfig(epochs=args.epochs, lr=args.lr, milestones=(max(1, args.epochs - 2),), batch_size=32,
                          head="none", kd_weight=1.0, freeze_bn_stats=True)
    print(f"{machine()}; {args.threads} threads; {args.epochs} epochs, batch 32, lr {args.lr:g} (/10 at epoch "
          f"{base.milestones[0]}); epoch chosen on identities 1-20")
    print("| start | fine-tuning | MACs ratio | held-out accuracy | TPR@FPR=1e-3 | recovered | training s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| unpruned | - | 1.000 | {unpruned:.4f} | {heldout(loaded.model)['tpr_at_fpr'][1e-3]:.3f} | | |")
    with tempfile.TemporaryDirectory() as tmp:
        for start in args.starts.split(","):
            pruned = copy.deepcopy(loaded.model)
            graph = ChannelGraph(pruned, size)
            repair = Repair(images, args.repair_images) if start == "repaired" else Repair()
            prune_and_repair(pruned, size, {g.param: args.ratio for g in graph.groups}, graph=graph, repair=repair)
            macs = count_macs(pruned, size) / count_macs(loaded.model, size)
            start_scores = heldout(pruned)
            label = f"uniform L1 {args.ratio:g}, " + (f"repaired on {args.repair_images} images" if repair.reconstruct
                                                      else "no repair")
            print(f"| {label} | none | {macs:.3f} | {start_scores['accuracy']:.4f} | "
                  f"{start_scores['tpr_at_fpr'][1e-3]:.3f} | | |", flush=True)
            student_path = save_checkpoint(Path(tmp) / f"{start}.pt", pruned, "sface", keep=record_keep(pruned),
                                           input_size=size, embedding_size=loaded.embedding_size)
            for name in args.techniques.split(","):
                if TECHNIQUES[name] is None:
                    config = FineTuneConfig()
                else:
                    changes = dict(TECHNIQUES[name])
                    lr = base.lr * changes.pop("lr_scale", 1)
                    epochs = base.epochs * changes.pop("epochs_scale", 1)
                    config = replace(base, lr=lr, epochs=epochs, milestones=(max(1, epochs - 2),), **changes)
                student = load_model(checkpoint=student_path)
                started = time.perf_counter()
                result = run_finetune(config, student, evaluator=choice, teacher=loaded.model,
                                      run=FineTuneRun(train_root=str(TRAIN), work_path=f"{tmp}/{start}/{name}"))
                seconds = time.perf_counter() - started
                chosen = load_model(checkpoint=result.best_checkpoint)
                epoch = load_checkpoint(result.best_checkpoint)[1]["metadata"]["epoch"]
                scores = heldout(chosen.model)
                recovered = (scores["accuracy"] - start_scores["accuracy"]) / (unpruned - start_scores["accuracy"])
                print(f"| {label} | {name} (epoch {epoch} chosen) | {macs:.3f} | {scores['accuracy']:.4f} | "
                      f"{scores['tpr_at_fpr'][1e-3]:.3f} | {recovered:.0%} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()

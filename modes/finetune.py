"""--mode finetune: win back what pruning cost, by distillation from the unpruned model and/or a margin head."""
import argparse
import os

from compression_tool.commen_utils.errors import UserError
from compression_tool.train_module.config import FineTuneConfig, Head, LRSchedule

from .registry import Mode, register
from .shared import evaluator_of, load


def add_flags(p: argparse.ArgumentParser) -> None:
    d = FineTuneConfig()
    g = p.add_argument_group("finetune (also --train_data_path, --resume, --num_workers); defaults: the best recipe "
                             "BENCHMARKS.md measured (distillation from the unpruned model, BN statistics trained)")
    g.add_argument("--pruned_checkpoint", help="the model to fine-tune (same as --best_model_path)")
    g.add_argument("--teacher_path", help="unpruned checkpoint to distil embeddings from (default: the one a "
                   "--mode prune checkpoint was pruned from, where that file is still there; 'none': no teacher)")
    g.add_argument("--kd_weight", type=float, help="weight of the distillation loss (default 1 with a teacher)")
    g.add_argument("--head", default=d.head, choices=list(Head), type=Head,
                   help="margin head over the identities; none: distillation alone (no labels needed); auto: none "
                        "with a teacher, arcface without")
    g.add_argument("--margin_s", type=float, default=d.margin_s, help="head scale")
    g.add_argument("--margin_m", type=float, help="head margin (default: ArcFace 0.5, CosFace 0.35)")
    g.add_argument("--head_path", help="resume the head from this state_dict")
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight_decay", type=float, default=d.weight_decay, help="not applied to BN, biases, PReLU")
    g.add_argument("--epoch", type=int, default=d.epochs)
    g.add_argument("--milestones", default=",".join(map(str, d.milestones)),
                   help="epochs where the LR is divided by 10 (any number)")
    g.add_argument("--warmup_epochs", type=float, default=d.warmup_epochs, help="linear LR warm-up")
    g.add_argument("--lr_schedule", default=d.lr_schedule, choices=list(LRSchedule), type=LRSchedule,
                   help="step: divided by 10 at each of --milestones; cosine: down to 0 along half a cosine over "
                        "--epoch (milestones ignored)")
    g.add_argument("--train_batch_size", type=int, default=d.batch_size, help="global batch (split across processes)")
    g.add_argument("--seed", type=int, default=d.seed, help="data order, flips and shifts")
    g.add_argument("--shift", type=int, default=d.shift, help="random translation of training images, in pixels")
    g.add_argument("--scale_jitter", type=float, default=d.scale_jitter, metavar="S", help="random zoom of training "
                   "images by a factor in [1 - S, 1 + S]; 0: off")
    g.add_argument("--brightness_jitter", type=float, default=d.brightness_jitter, metavar="B", help="random "
                   "brightness factor in [1 - B, 1 + B] on training images; 0: off")
    g.add_argument("--mixup", type=float, default=d.mixup, metavar="ALPHA", help="distillation with --head none: "
                   "train on blends of two images (weights from Beta(ALPHA, ALPHA)), the teacher's embedding of "
                   "the blend as the target; 0: off")
    g.add_argument("--feature_kd", type=float, default=d.feature_kd, metavar="W", help="with a teacher: also "
                   "match, at every BN output the student shares with the teacher, how alike the batch's images are "
                   "(similarity-preserving distillation, any pruned width), at weight W; 0: off")
    g.add_argument("--best_of", choices=("all", "trained"), default="trained" if d.best_of_trained else "all",
                   help="which states best.pt is chosen from: all (the model as given too) or trained (epochs 1..N "
                        "only: after a repair fitted on the images the pair list is made of, the start scores higher "
                        "there than elsewhere)")
    g.add_argument("--freeze_bn_stats", action="store_true", default=d.freeze_bn_stats, help="keep BN running "
                   "statistics fixed (BN scales and shifts still train); helps a model repaired with "
                   "--bn_recalibrate, at a low --lr")
    g.add_argument("--work_path", default="work_space/finetune", help="run folders go here")


def config_from(args: argparse.Namespace) -> FineTuneConfig:
    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise UserError(f"--milestones {args.milestones}: expected epochs separated by commas, e.g. 12,15,18") \
            from None
    return FineTuneConfig(epochs=args.epoch, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                          milestones=milestones, warmup_epochs=args.warmup_epochs, lr_schedule=args.lr_schedule,
                          batch_size=args.train_batch_size, head=args.head, margin_s=args.margin_s,
                          margin_m=args.margin_m, kd_weight=args.kd_weight, seed=args.seed, shift=args.shift,
                          mixup=args.mixup, best_of_trained=args.best_of == "trained",
                          freeze_bn_stats=args.freeze_bn_stats, feature_kd=args.feature_kd,
                          scale_jitter=args.scale_jitter, brightness_jitter=args.brightness_jitter)


def default_teacher(loaded) -> str:
    """The unpruned model a pruned checkpoint came from, where that file is still there; else 'none'."""
    if loaded.pruned_from and os.path.isfile(loaded.pruned_from):
        print(f"teacher: {loaded.pruned_from}, the checkpoint this model was pruned from (--teacher_path none: no "
              f"teacher)")
        return loaded.pruned_from
    return "none"


def run(args: argparse.Namespace):
    from compression_tool.model_define.loading import load_model
    from compression_tool.train_module.trainer import FineTuneRun, run_finetune
    config = config_from(args)
    loaded = load(args)
    evaluator = evaluator_of(args, loaded)
    teacher_path = default_teacher(loaded) if args.teacher_path is None else args.teacher_path
    teacher = load_model(loaded.arch, teacher_path, args.from_data_parallel, loaded.input_size,
                         loaded.embedding_size, args.device).model if teacher_path != "none" else None
    run = FineTuneRun(train_root=args.train_data_path, work_path=args.work_path, resume=args.resume,
                      head_path=args.head_path, workers=args.num_workers, device=args.device, overwrite=args.overwrite)
    return run_finetune(config, loaded, evaluator=evaluator, run=run, teacher=teacher)


register(Mode("finetune", add_flags, run))

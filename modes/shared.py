"""Flags several modes read, and what those modes build from them: the model, the evaluation, training images,
the channel ranking."""
import argparse

import torch

from compression_tool.commen_utils.cli_flags import (add_config_flag, add_pair_list_flags, add_repair_flags,
                                                    evaluation_settings)
from compression_tool.commen_utils.errors import UserError
from compression_tool.prune_module.criteria import CRITERIA, Criterion



def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_shared_flags(p: argparse.ArgumentParser, modes: list) -> None:
    g = p.add_argument_group("every mode")
    g.add_argument("--mode", choices=modes, required=True)
    add_config_flag(g)
    g.add_argument("--model", help="zoo name (see --mode summary) or path/to/file.py:factory")
    g.add_argument("--best_model_path", help="checkpoint: plain state_dict or a compression_tool checkpoint")
    g.add_argument("--from_data_parallel", action="store_true", help="strip 'module.' (also detected by itself)")
    g.add_argument("--device", default=default_device(), help="cpu, cuda, cuda:1, ...")
    g.add_argument("--input_size", help="HxW, e.g. 112x112 or 144x122 (default: the model's own)")
    g.add_argument("--embedding_size", type=int, help="embedding width (default: the model's own)")
    g.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--allocator", choices=("reuse", "system"), default="reuse", help="reuse: keep freed memory "
                   "for the next batch instead of page-faulting it in again (glibc; the process keeps its peak memory; "
                   "BENCHMARKS.md measures the gain); system: the C library's default")
    g.add_argument("--result_json", help="write this mode's figures, and the settings they were computed with "
                   "(a --config file), to this JSON file")
    g.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs (checkpoints)")
    g.add_argument("--resume", help="continue an interrupted run: sa: its CSV; finetune: its run folder")

    g = p.add_argument_group("evaluation (test, sa, prune, quantization, finetune)")
    add_pair_list_flags(g, val_targets=True)
    g.add_argument("--target_fpr", type=float, nargs="+", help="FPRs for TPR@FPR (default 1e-6; 1e-3 for "
                   "classification)")
    g.add_argument("--test_batch_size", type=int, default=32)
    g.add_argument("--num_workers", type=int, default=0, help="image decoding workers")
    g.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    g.add_argument("--skip_bad_images", action="store_true",
                   help="drop the pairs whose images cannot be read (and say how many) instead of stopping")
    g.add_argument("--channel_order", choices=("RGB", "BGR"), help="override the model's channel order")
    g.add_argument("--pixel_mean", type=float, help="override: input = (pixel - mean) / std, pixels 0-255")
    g.add_argument("--pixel_std", type=float, help="override, see --pixel_mean")

    g = p.add_argument_group("channel ranking and repair (sa, prune; --train_data_path also quantization, finetune)")
    g.add_argument("--criterion", default="l1", choices=list(CRITERIA), help="how channels are ranked: l1 (filter "
                   "norm), fpgm (distance to the geometric median), hrank (average feature-map rank)")
    g.add_argument("--fpgm", action="store_true", help="the original's name for --criterion fpgm")
    g.add_argument("--hrank", action="store_true", help="the original's name for --criterion hrank")
    g.add_argument("--hrank_batches", type=int, default=4, help="batches of images for HRank ranks")
    g.add_argument("--rank_path", default="work_space/rank_conv", help="HRank rank cache folder")
    add_repair_flags(g)


def load(args: argparse.Namespace, float_only: bool = True):
    """The model the flags name; `float_only`: refuse an INT8 ONNX or OpenVINO file, which can only be scored."""
    from compression_tool.model_define.loading import load_model
    from compression_tool.quant_module import torch_fx  # noqa: F401  (it registers how INT8 checkpoints load)
    preprocess = {"channel_order": args.channel_order, "mean": args.pixel_mean, "std": args.pixel_std}
    if getattr(args, "pruned_checkpoint", None) and args.best_model_path:
        raise UserError("--pruned_checkpoint and --best_model_path name the same thing: give one")
    checkpoint = getattr(args, "pruned_checkpoint", None) or args.best_model_path
    loaded = load_model(args.model, checkpoint, args.from_data_parallel, args.input_size, args.embedding_size,
                        args.device, preprocess)
    if float_only and not isinstance(loaded.model, torch.nn.Module):
        raise UserError(f"{checkpoint}: this {loaded.precision} file can only be scored (--mode test); give its float "
                        f"checkpoint or ONNX file for --mode {args.mode}")
    return loaded


def evaluation_of(args: argparse.Namespace):
    from compression_tool.test_module.evaluate import EvaluationConfig, missing_list_flag
    evaluation = EvaluationConfig(**evaluation_settings(vars(args)))
    if missing_list_flag(evaluation):
        raise UserError(f"--{missing_list_flag(evaluation)} is required for --mode {args.mode}")
    return evaluation


def evaluator_of(args: argparse.Namespace, loaded, progress: bool = True):
    """The pair list's scorer, images decoded once and kept for the many models a mode scores."""
    from compression_tool.test_module.evaluate import evaluator_from_config
    return evaluator_from_config(evaluation_of(args), loaded.spec, cache_images=True, progress=progress)


def training_images(args: argparse.Namespace, loaded, count: int):
    """`count` images of --train_data_path, preprocessed for the model (None for none)."""
    from compression_tool.dataloader import sample_images
    return sample_images(args.train_data_path, loaded.spec, count) if count else None


def criterion_of(args: argparse.Namespace) -> str:
    """--criterion, or the original's --fpgm / --hrank (one of them)."""
    rankings = [f"--{c}" for c, flag in (("fpgm", args.fpgm), ("hrank", args.hrank)) if flag]
    rankings += [f"--criterion {args.criterion}"] if args.criterion != "l1" else []
    if len(rankings) > 1:
        raise UserError(f"{' and '.join(rankings)} are two rankings: choose one")
    return "fpgm" if args.fpgm else "hrank" if args.hrank else args.criterion


def ranking(args: argparse.Namespace, criterion: str, loaded, evaluator) -> Criterion:
    """The criterion ready to rank `loaded`'s channels: HRank measures its ranks on --hrank_batches batches of the
    pair list's images (cached under --rank_path); the others need nothing."""
    return CRITERIA[criterion].measured(loaded, evaluator.images(), batch_size=evaluator.batch_size,
                                        batches=args.hrank_batches, cache_folder=args.rank_path)

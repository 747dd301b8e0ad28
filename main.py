"""compression_tool: measure, prune, fine-tune and quantize face-recognition CNNs.

One entry with --mode, as in the original. This file only parses flags and calls one library function per
mode; every user mistake surfaces here as one line on stderr and exit code 2, any other exception as one line
naming a file with its traceback and exit code 1.
"""
import argparse
import importlib.util
import sys

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import torch

from compression_tool.commen_utils.allocator import reuse_freed_memory
from compression_tool.commen_utils.cli_flags import (add_pair_list_flags, add_repair_flags, add_round_to_flag,
                                                    evaluation_settings)
from compression_tool.commen_utils.errors import UserError, exit_code
from compression_tool.commen_utils.results import write_result_json

MODES = ("test", "summary", "sa", "prune", "quantization", "finetune", "report")
CRITERIA = ("l1", "fpgm", "hrank")  # prune_module.criteria.CRITERIA (a test keeps them equal); --help imports no engine
LR_SCHEDULES = ("step", "cosine")  # train_module.trainer.LR_SCHEDULES (a test keeps them equal)


def criterion_of(args: argparse.Namespace):
    """--criterion, or the original's --fpgm / --hrank."""
    return "fpgm" if args.fpgm else "hrank" if args.hrank else args.criterion


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def quantization_config(args: argparse.Namespace):
    from compression_tool.quantization import QuantizationConfig, default_backend
    return QuantizationConfig(backend=args.quant_backend or default_backend(), observer=args.observer, prelu=args.prelu,
                              prelu_batch=args.prelu_batch, calib_batch_size=args.calib_batch_size,
                              max_cosine_drop=args.max_cosine_drop, min_cosine=args.min_cosine, fp16=args.fp16,
                              latency_batches=tuple(args.latency_batches), latency_repeats=args.latency_repeats,
                              output_folder=args.quantized_save_model_path, overwrite=args.overwrite,
                              calibration_source=args.train_data_path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("every mode")
    g.add_argument("--mode", choices=MODES, required=True)
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
    g.add_argument("--result_json", help="write this mode's figures to this JSON file")
    g.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs (checkpoints)")

    g = p.add_argument_group("evaluation (test, sa, prune)")
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
    g.add_argument("--roc_png", help="test: where to draw the ROC curve (default work_space/report/...)")

    g = p.add_argument_group("channel ranking and BN statistics (sa, prune)")
    g.add_argument("--criterion", default="l1", choices=CRITERIA, help="how channels are ranked: l1 (filter "
                   "norm), fpgm (distance to the geometric median), hrank (average feature-map rank)")
    g.add_argument("--fpgm", action="store_true", help="the original's name for --criterion fpgm")
    g.add_argument("--hrank", action="store_true", help="the original's name for --criterion hrank")
    g.add_argument("--hrank_batches", type=int, default=4, help="batches of images for HRank ranks")
    g.add_argument("--rank_path", default="work_space/rank_conv", help="HRank rank cache folder")

    g = p.add_argument_group("sensitivity analysis (sa)")
    g.add_argument("--sparsities", default="0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                   help="levels of filters removed per layer")
    g.add_argument("--sensitivity_csv_path", default="work_space/sensitivity_data", help="CSV output folder")
    g.add_argument("--sa_naive", action="store_true", help="re-run the whole model for every level (reference)")
    g.add_argument("--sa_cache_gb", type=float, default=None,
                   help="memory the fast path may hold in cached activations, per process (default: half of "
                        "what is available, shared by torchrun's processes); a layer whose activations do not "
                        "fit re-runs the whole model (same numbers)")
    g.add_argument("--resume", help="continue an interrupted run: sa: its CSV; finetune: its run folder")

    add_repair_flags(g)

    g = p.add_argument_group("prune")
    g.add_argument("--yaml_path", default="yaml_file/auto_yaml.yaml", help="Distiller schedule to apply")
    g.add_argument("--save_model_pt", action="store_true", help="save the pruned checkpoint")
    g.add_argument("--pruned_save_model_path", default="work_space/pruned_model", help="checkpoint folder")
    g.add_argument("--layers_out_path", default="work_space/layers_out/out.txt", help="where the keep list goes")
    add_round_to_flag(g)

    g = p.add_argument_group("quantization")
    g.add_argument("--quant_backend",
                   help="openvino (NNCF; the default where OpenVINO is installed, else onnxruntime) | onnxruntime | "
                        "torch (torch.ao FX; x86 and fbgemm name its kernels) | auto (all of them: the fastest whose "
                        "mean cosine reaches --min_cosine)")
    g.add_argument("--observer", default="histogram", choices=("histogram", "minmax", "percentile"),
                   help="how activation ranges are calibrated (torch and onnxruntime; NNCF has its own)")
    g.add_argument("--calib_batches", type=int, default=4, help="batches of calibration images (from "
                   "--train_data_path, never the test pairs)")
    g.add_argument("--calib_batch_size", type=int, default=16)
    g.add_argument("--validation_images", type=int, default=64, help="further images of --train_data_path on "
                   "which settings and backends are chosen (embedding cosine to FP32)")
    g.add_argument("--max_cosine_drop", type=float, help="openvino: NNCF's accuracy control keeps the most "
                   "damaging layers in float until the mean cosine to FP32 on the validation images drops by at "
                   "most this")
    g.add_argument("--min_cosine", type=float, default=0.99, help="auto: the mean cosine a backend must reach")
    g.add_argument("--prelu", default="auto", choices=("float", "integer", "auto"),
                   help="torch backend, PReLU between integer layers: float, integer (our fix of torch's kernel), "
                        "or auto: per layer, whichever is faster here at --prelu_batch")
    g.add_argument("--prelu_batch", type=int, default=32, help="the batch size --prelu auto times at")
    g.add_argument("--fp16", action="store_true", help="also compare half precision (the original's option)")
    g.add_argument("--latency_batches", type=int, nargs="+", default=[1, 32], help="batch sizes timed")
    g.add_argument("--latency_repeats", type=int, default=20, help="timed calls per median (bs1; a quarter "
                   "of it for larger batches)")
    g.add_argument("--quantized_save_model_path", default="work_space/quantized_model", help="output folder")

    g = p.add_argument_group("finetune (also --train_data_path, --resume, --num_workers)")
    g.add_argument("--pruned_checkpoint", help="the model to fine-tune (same as --best_model_path)")
    g.add_argument("--teacher_path", help="unpruned checkpoint to distil embeddings from")
    g.add_argument("--kd_weight", type=float, help="weight of the distillation loss (default 1 with a teacher)")
    g.add_argument("--head", default="arcface", choices=("arcface", "cosface", "none"),
                   help="margin head over the identities; none: distillation alone (no labels needed)")
    g.add_argument("--margin_s", type=float, default=64.0, help="head scale")
    g.add_argument("--margin_m", type=float, help="head margin (default: ArcFace 0.5, CosFace 0.35)")
    g.add_argument("--head_path", help="resume the head from this state_dict")
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight_decay", type=float, default=5e-4, help="not applied to BN, biases, PReLU")
    g.add_argument("--epoch", type=int, default=30)
    g.add_argument("--milestones", default="12,15,18", help="epochs where the LR is divided by 10 (any number)")
    g.add_argument("--warmup_epochs", type=float, default=0.0, help="linear LR warm-up")
    g.add_argument("--lr_schedule", default="step", choices=LR_SCHEDULES, help="step: divided by 10 at each of "
                   "--milestones; cosine: down to 0 along half a cosine over --epoch (milestones ignored)")
    g.add_argument("--train_batch_size", type=int, default=64, help="global batch (split across processes)")
    g.add_argument("--seed", type=int, default=0, help="data order, flips and shifts")
    g.add_argument("--shift", type=int, default=8, help="random translation of training images, in pixels")
    g.add_argument("--scale_jitter", type=float, default=0.0, metavar="S", help="random zoom of training images "
                   "by a factor in [1 - S, 1 + S]; 0: off")
    g.add_argument("--brightness_jitter", type=float, default=0.0, metavar="B", help="random brightness factor "
                   "in [1 - B, 1 + B] on training images; 0: off")
    g.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="distillation with --head none: "
                   "train on blends of two images (weights from Beta(ALPHA, ALPHA)), the teacher's embedding of "
                   "the blend as the target; 0: off")
    g.add_argument("--feature_kd", type=float, default=0.0, metavar="W", help="with --teacher_path: also match, "
                   "at every BN output the student shares with the teacher, how alike the batch's images are "
                   "(similarity-preserving distillation, any pruned width), at weight W; 0: off")
    g.add_argument("--best_of", choices=("all", "trained"), default="all", help="which states best.pt is chosen "
                   "from: all (the model as given too) or trained (epochs 1..N only: after a repair fitted on the "
                   "images the pair list is made of, the start scores higher there than elsewhere)")
    g.add_argument("--freeze_bn_stats", action="store_true", help="keep BN running statistics fixed (BN scales "
                   "and shifts still train); helps a model repaired with --bn_recalibrate, at a low --lr")
    g.add_argument("--work_path", default="work_space/finetune", help="run folders go here")

    g = p.add_argument_group("report (reads --result_json: a report.json from pruning_analysis_tools/report.py)")
    g.add_argument("--report_dir", help="where to draw the report again (default: beside the JSON)")
    return p


def finetune_config(args: argparse.Namespace):
    from compression_tool.train_module.trainer import FineTuneConfig

    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise UserError(f"--milestones {args.milestones}: expected epochs separated by commas, e.g. 12,15,18") \
            from None
    kd_weight = args.kd_weight if args.kd_weight is not None else (1.0 if args.teacher_path else 0.0)
    if args.head == "none" and not (args.teacher_path and kd_weight > 0):
        raise UserError("--head none trains on distillation alone: give --teacher_path (and --kd_weight > 0)")
    if args.mixup < 0 or args.mixup > 0 and args.head != "none":
        raise UserError(f"--mixup {args.mixup}: blends have no identity label; use it with --head none (>= 0)")
    for flag in ("scale_jitter", "brightness_jitter"):
        if not 0 <= getattr(args, flag) < 1:
            raise UserError(f"--{flag} {getattr(args, flag)}: expected a fraction in [0, 1), e.g. 0.1")
    if args.feature_kd < 0 or args.feature_kd > 0 and not args.teacher_path:
        raise UserError(f"--feature_kd {args.feature_kd}: matches the teacher's feature maps; give --teacher_path "
                        "(and a weight >= 0)")
    return FineTuneConfig(epochs=args.epoch, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                          milestones=milestones, warmup_epochs=args.warmup_epochs, lr_schedule=args.lr_schedule,
                          batch_size=args.train_batch_size,
                          head=args.head, margin_s=args.margin_s, margin_m=args.margin_m, kd_weight=kd_weight,
                          seed=args.seed, shift=args.shift, mixup=args.mixup, best_of_trained=args.best_of == "trained",
                          freeze_bn_stats=args.freeze_bn_stats, feature_kd=args.feature_kd,
                          scale_jitter=args.scale_jitter, brightness_jitter=args.brightness_jitter)


def evaluation_config(args: argparse.Namespace):
    from compression_tool.test_module.evaluate import EvaluationConfig
    return EvaluationConfig(**evaluation_settings(vars(args)))


def sensitivity_config(args: argparse.Namespace, criterion: str):
    from compression_tool.sensitivity_analysis import SensitivityConfig
    return SensitivityConfig(levels=args.sparsities, criterion=criterion, output_folder=args.sensitivity_csv_path,
                             resume=args.resume, naive=args.sa_naive, cache_gb=args.sa_cache_gb,
                             bn_recalibrate=args.bn_recalibrate, reconstruct=args.reconstruct, device=args.device)


def prune_config(args: argparse.Namespace, criterion: str):
    from compression_tool.pruning import PruneConfig
    return PruneConfig(schedule_path=args.yaml_path, criterion=criterion, round_to=args.round_to,
                       reconstruct=args.reconstruct, bn_recalibrate=args.bn_recalibrate,
                       save_checkpoint=args.save_model_pt, output_folder=args.pruned_save_model_path,
                       layers_out_path=args.layers_out_path, overwrite=args.overwrite)


def finetune_run(args: argparse.Namespace):
    from compression_tool.train_module.trainer import FineTuneRun
    return FineTuneRun(train_root=args.train_data_path, work_path=args.work_path, resume=args.resume,
                       head_path=args.head_path, workers=args.num_workers, device=args.device,
                       overwrite=args.overwrite)


def checked_criterion(args: argparse.Namespace):
    rankings = [f"--{c}" for c, flag in (("fpgm", args.fpgm), ("hrank", args.hrank)) if flag]
    rankings += [f"--criterion {args.criterion}"] if args.criterion != "l1" else []
    if len(rankings) > 1:
        raise UserError(f"{' and '.join(rankings)} are two rankings: choose one")
    return criterion_of(args)


def run(args: argparse.Namespace):
    from compression_tool.model_define.loading import load_model

    if args.mode == "report":
        from compression_tool.pruning_analysis_tools.report import rebuild_report
        if not args.result_json:
            raise UserError("--mode report needs --result_json: the report.json to draw the report from")
        rebuild_report(args.result_json, args.report_dir)
        return None

    if args.threads:
        torch.set_num_threads(args.threads)
    criterion = checked_criterion(args)
    preprocess = {"channel_order": args.channel_order, "mean": args.pixel_mean, "std": args.pixel_std}
    if args.pruned_checkpoint and args.best_model_path:
        raise UserError("--pruned_checkpoint and --best_model_path name the same thing: give one")
    checkpoint = args.pruned_checkpoint or args.best_model_path
    loaded = load_model(args.model, checkpoint, args.from_data_parallel, args.input_size, args.embedding_size,
                        args.device, preprocess)
    if args.mode != "test" and not isinstance(loaded.model, torch.nn.Module):  # an INT8 ONNX or OpenVINO file
        raise UserError(f"{checkpoint}: this {loaded.precision} file can only be scored (--mode test); give its float "
                        f"checkpoint or ONNX file for --mode {args.mode}")
    if args.mode == "summary":
        from compression_tool.prune_module.summary import summarize
        return summarize(loaded)
    evaluation = evaluation_config(args)
    from compression_tool.test_module.evaluate import missing_list_flag
    if missing_list_flag(evaluation):
        raise UserError(f"--{missing_list_flag(evaluation)} is required for --mode {args.mode}")
    if args.mode == "test":
        from compression_tool.test_module.runner import TestConfig, run_test
        return run_test(TestConfig(evaluation, args.roc_png), loaded)
    from compression_tool.test_module.evaluate import evaluator_from_config
    evaluator = evaluator_from_config(evaluation, loaded.spec, cache_images=True, progress=args.mode != "sa")
    from compression_tool.dataloader import sample_images
    if args.mode == "quantization":
        from compression_tool.quantization import check_config, run_quantization
        config = quantization_config(args)
        check_config(config)
        count = args.calib_batches * args.calib_batch_size
        images = sample_images(args.train_data_path, loaded.spec, count + args.validation_images)
        calibration, validation = images[:count], images[count:]
        if not len(validation):
            print(f"note: {args.train_data_path} has no images beyond the {count} for calibration: settings are "
                  f"chosen on those")
            validation = calibration
        return run_quantization(config, loaded, evaluator, calibration, validation)
    if args.mode == "finetune":
        from compression_tool.train_module.trainer import run_finetune
        config = finetune_config(args)
        teacher = load_model(loaded.arch, args.teacher_path, args.from_data_parallel, loaded.input_size,
                             loaded.embedding_size, args.device).model if args.teacher_path else None
        return run_finetune(finetune_run(args), loaded, evaluator, config, teacher)
    needed = max(args.bn_recalibrate, args.reconstruct)
    images = sample_images(args.train_data_path, loaded.spec, needed) if needed else None
    ranks = None
    if criterion == "hrank":
        from compression_tool.prune_module.hrank import load_or_compute_ranks
        ranks = load_or_compute_ranks(loaded, evaluator, args.hrank_batches, args.rank_path)
    if args.mode == "sa":
        from compression_tool.sensitivity_analysis import run_sensitivity
        return run_sensitivity(sensitivity_config(args, criterion), loaded, evaluator, ranks, images)
    from compression_tool.pruning import run_prune
    return run_prune(prune_config(args, criterion), loaded, evaluator, images, ranks)


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.allocator == "reuse":
        reuse_freed_memory()

    def body():
        result = run(args)
        if result is not None:
            write_result_json(args.result_json, result)

    return exit_code(body, f"--mode {args.mode}", args.debug)


if __name__ == "__main__":
    sys.exit(main())

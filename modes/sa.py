"""--mode sa: sensitivity analysis, the accuracy of the model with each layer thinned to each level (Distiller's
CSV)."""
import argparse

from compression_tool.commen_utils.cli_flags import mode_default

from .registry import Mode, register
from .shared import criterion_of, evaluator_of, load, ranking, training_images


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sensitivity analysis (sa)")
    g.add_argument("--sparsities", default="0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                   help="levels of filters removed per layer")
    g.add_argument("--sensitivity_csv_path", default="work_space/sensitivity_data", help="CSV output folder")
    g.add_argument("--sa_naive", action="store_true", help="re-run the whole model for every level (reference)")
    g.add_argument("--sa_cache_gb", type=float, default=None,
                   help="memory the fast path may hold in cached activations, per process (default: half of "
                        "what is available, shared by torchrun's processes); a layer whose activations do not "
                        "fit re-runs the whole model (same numbers)")


def config_from(args: argparse.Namespace):
    from compression_tool.sensitivity_analysis import SensitivityConfig
    return SensitivityConfig(levels=args.sparsities, criterion=criterion_of(args),
                             output_folder=args.sensitivity_csv_path, resume=args.resume, naive=args.sa_naive,
                             cache_gb=args.sa_cache_gb, bn_recalibrate=args.bn_recalibrate,
                             reconstruct=mode_default(args, "reconstruct", SensitivityConfig), device=args.device)


def run(args: argparse.Namespace):
    from compression_tool.sensitivity_analysis import run_sensitivity
    config = config_from(args)
    loaded = load(args)
    evaluator = evaluator_of(args, loaded, progress=False)  # the analysis draws its own bar
    images = training_images(args, loaded, max(config.bn_recalibrate, config.reconstruct))
    criterion = ranking(args, config.criterion, loaded, evaluator)
    return run_sensitivity(config, loaded, evaluator=evaluator, criterion=criterion, images=images)


register(Mode("sa", add_flags, run))

"""--mode prune: apply a Distiller schedule, repair, save the thinned model."""
import argparse

from compression_tool.commen_utils.cli_flags import add_round_to_flag, mode_default

from .registry import Mode, register
from .shared import criterion_of, evaluator_of, load, ranking, training_images


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prune")
    g.add_argument("--yaml_path", default="yaml_file/auto_yaml.yaml", help="Distiller schedule to apply")
    g.add_argument("--save_model_pt", action="store_true", help="save the pruned checkpoint")
    g.add_argument("--pruned_save_model_path", default="work_space/pruned_model", help="checkpoint folder")
    g.add_argument("--layers_out_path", default="work_space/layers_out/out.txt", help="where the keep list goes")
    add_round_to_flag(g)


def config_from(args: argparse.Namespace):
    from compression_tool.pruning import PruneConfig
    return PruneConfig(schedule_path=args.yaml_path, criterion=criterion_of(args), round_to=args.round_to,
                       reconstruct=mode_default(args, "reconstruct", PruneConfig), bn_recalibrate=args.bn_recalibrate,
                       save_checkpoint=args.save_model_pt, output_folder=args.pruned_save_model_path,
                       layers_out_path=args.layers_out_path, overwrite=args.overwrite)


def run(args: argparse.Namespace):
    from compression_tool.pruning import run_prune
    config = config_from(args)
    loaded = load(args)
    evaluator = evaluator_of(args, loaded)
    images = training_images(args, loaded, max(config.bn_recalibrate, config.reconstruct))
    criterion = ranking(args, config.criterion, loaded, evaluator)
    return run_prune(config, loaded, evaluator=evaluator, criterion=criterion, images=images)


register(Mode("prune", add_flags, run))

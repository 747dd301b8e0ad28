"""Flags that several command lines share (main.py, pruning_analysis_tools/auto_make_yaml.py and report.py),
defined once so that their names, choices and defaults cannot drift apart, and the one place where
the evaluation flags become plain settings."""
import argparse

# lfw: 10-fold accuracy; company: TPR@FPR (company_zkx is the original's alias); classification: liveness
DATA_SOURCES = ("lfw", "company", "company_zkx", "classification")
DEFAULT_TRAIN_DATA = "data/train_data/orl_s1-20"


def add_pair_list_flags(group: argparse._ActionsContainer, required: bool = False,
                        pair_list_help: str | None = None) -> None:
    group.add_argument("--test_root_path", required=required, help="folder the pair list's paths are relative to")
    group.add_argument("--img_list_label_path", required=required,
                       help=pair_list_help or "pair list 'path1 path2 label', LFW pairs.txt, or 'path class'")
    group.add_argument("--data_source", default="lfw", choices=DATA_SOURCES,
                       help="lfw: 10-fold accuracy; company: TPR@FPR; classification: liveness TPR@FPR of class 1")


def add_repair_flags(group: argparse._ActionsContainer) -> None:
    group.add_argument("--bn_recalibrate", type=int, default=0, metavar="N",
                       help="re-estimate BN statistics on N training images after thinning (sa: adaptive-BN "
                            "evaluation of every level)")
    group.add_argument("--reconstruct", type=int, default=0, metavar="N",
                       help="refit the convs and linear layers that lose inputs by least squares on N training images")
    group.add_argument("--train_data_path", default=DEFAULT_TRAIN_DATA,
                       help="ImageFolder of identities, for repair, fine-tuning and calibration (never the test pairs)")


def add_round_to_flag(group: argparse._ActionsContainer,
                      help_text: str = "round kept widths to a multiple of this") -> None:
    group.add_argument("--round_to", type=int, default=1, help=help_text)


def data_source_of(args: argparse.Namespace) -> str:
    return "company" if args.data_source == "company_zkx" else args.data_source


def evaluation_settings(args: argparse.Namespace, **defaults) -> dict:
    """The evaluation flags as test_module.evaluate.EvaluationConfig's fields (this file imports nothing of
    ours); a CLI without some of the flags passes their values."""
    value = lambda name, fallback: getattr(args, name, defaults.get(name, fallback))  # noqa: E731
    data_source = data_source_of(args)
    target_fprs = value("target_fpr", None) or ([1e-3] if data_source == "classification" else [1e-6])
    return dict(data_source=data_source, test_root=args.test_root_path, pair_list=args.img_list_label_path,
                target_fprs=tuple(target_fprs), batch_size=value("test_batch_size", 32), device=value("device", "cpu"),
                workers=value("num_workers", 0), flip=value("flip", False),
                skip_bad_images=value("skip_bad_images", False))

"""Flags that several command lines share (main.py, pruning_analysis_tools/auto_make_yaml.py and report.py),
defined once so that their names, choices and defaults cannot drift apart, and the one place where
the evaluation flags become plain settings."""
import argparse
from pathlib import Path
from typing import Any, Mapping

import yaml

# lfw: 10-fold accuracy; insightface: arcface_torch's protocol; company: TPR@FPR (company_zkx is the original's
# alias); classification: liveness
DATA_SOURCES = ("lfw", "insightface", "company", "company_zkx", "classification")
DEFAULT_TRAIN_DATA = "data/train_data/orl_s1-20"


# Flags that say where this run's figures go or how it was started, not how it computes them: left out of the
# settings written beside the result, so that a run started from that file writes the same figures.
NOT_SETTINGS = ("config", "result_json", "debug")


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="flag values from a YAML file, keys named as the "
                        "flags without '--' (the 'config' of a --result_json is one); flags given here override it")


def _config_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    def refuse(message):  # one line, as every other mistake (argparse's own errors add a usage line)
        parser.exit(2, f"error: --config {path}: {message}\n")

    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        refuse(f"cannot be read as YAML ({type(e).__name__}: {str(e).splitlines()[0]})")
    if not isinstance(values, dict):
        refuse("expected a mapping of flag names to values, e.g. 'mode: test'")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    for key, value in values.items():
        action = actions.get(str(key).lstrip("-").replace("-", "_"))
        if action is None:
            refuse(f"'{key}' is not a flag of {parser.prog}")
        if action.choices is not None and value is not None and value not in action.choices:
            refuse(f"{key}: '{value}' is not one of {', '.join(map(str, action.choices))}")
        action.required = False  # given by the file
    return {str(k).lstrip("-").replace("-", "_"): v for k, v in values.items()}


def parse_flags(parser: argparse.ArgumentParser, argv: list | None = None) -> argparse.Namespace:
    """parse_args, with the values of `--config FILE.yaml` as the defaults that the command line overrides."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config")
    config = early.parse_known_args(argv)[0].config
    if config:
        parser.set_defaults(**_config_defaults(parser, config))
    return parser.parse_args(argv)


def settings_of(flags: argparse.Namespace) -> dict:
    """The flags a run was computed with, as a --config file takes them back."""
    return {k: v for k, v in sorted(vars(flags).items()) if k not in NOT_SETTINGS}


def add_pair_list_flags(group: argparse._ActionsContainer, required: bool = False,
                        pair_list_help: str | None = None, val_targets: bool = False) -> None:
    """The flags naming what a model is scored on; `val_targets`: this CLI scores several sets at once."""
    group.add_argument("--test_root_path", required=required, help="folder the pair list's paths are relative to"
                       + (" (and where --val_targets names are looked up)" if val_targets else "")
                       + "; not needed for a .bin")
    group.add_argument("--img_list_label_path", required=required,
                       help=pair_list_help or "pair list 'path1 path2 label', LFW pairs.txt, insightface .bin, or "
                                              "'path class'")
    if val_targets:
        group.add_argument("--val_targets", help="several sets at once (--mode test, report.py): names looked up "
                           "as <--test_root_path>/<name>.bin (lfw,cfp_fp,agedb_30) or pair-list paths, comma-separated")
    group.add_argument("--data_source", default="lfw", choices=DATA_SOURCES,
                       help="lfw: 10-fold accuracy; insightface: arcface_torch's protocol (flip added, Accuracy-Flip, "
                            "VAL@FAR=1e-3); company: TPR@FPR; classification: liveness TPR@FPR of class 1")


def add_repair_flags(group: argparse._ActionsContainer) -> None:
    group.add_argument("--bn_recalibrate", type=int, default=0, metavar="N",
                       help="re-estimate BN statistics on N training images after thinning (sa: adaptive-BN "
                            "evaluation of every level)")
    group.add_argument("--reconstruct", type=int, default=None, metavar="N",
                       help="refit the convs and linear layers that lose inputs by least squares on N training images "
                            "(default: 200 for --mode prune, the repair every measured recipe uses; 0 where it would "
                            "run for every level or candidate: sa, auto_make_yaml.py)")
    group.add_argument("--train_data_path", default=DEFAULT_TRAIN_DATA,
                       help="ImageFolder of identities or MXNet RecordIO (a folder with train.rec/.idx, or "
                            "the .rec), for repair, fine-tuning and calibration (never the test pairs)")


def mode_default(flags: argparse.Namespace, name: str, config_class: type) -> Any:
    """A flag whose default differs from mode to mode (None on the shared parser): the mode's config default."""
    value = getattr(flags, name)
    return getattr(config_class, name) if value is None else value


def add_round_to_flag(group: argparse._ActionsContainer,
                      help_text: str = "round kept widths to a multiple of this") -> None:
    group.add_argument("--round_to", type=int, default=1, help=help_text)


def data_source_of(flags: Mapping[str, Any]) -> str:
    return "company" if flags["data_source"] == "company_zkx" else flags["data_source"]


def evaluation_settings(flags: Mapping[str, Any]) -> dict:
    """The evaluation flags (`vars()` of a parsed command line) as test_module.evaluate.EvaluationConfig's
    fields (this file imports nothing of ours); a CLI without some of the flags gets their defaults."""
    data_source = data_source_of(flags)
    target_fprs = flags.get("target_fpr") or ([1e-3] if data_source == "classification" else [1e-6])
    return dict(data_source=data_source, test_root=flags["test_root_path"], pair_list=flags["img_list_label_path"],
                target_fprs=tuple(target_fprs), batch_size=flags.get("test_batch_size", 32),
                device=flags.get("device", "cpu"), workers=flags.get("num_workers", 0), flip=flags.get("flip", False),
                skip_bad_images=flags.get("skip_bad_images", False),
                val_targets=tuple(t.strip() for t in (flags.get("val_targets") or "").split(",") if t.strip()))

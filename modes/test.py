"""--mode test: score a model (float, pruned, INT8 or exported) on a pair list."""
import argparse

from .registry import Mode, register
from .shared import evaluation_of, load


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("test")
    g.add_argument("--roc_png", help="where to draw the ROC curve (default work_space/report/...)")


def config_from(args: argparse.Namespace):
    from compression_tool.test_module.runner import TestConfig
    return TestConfig(evaluation_of(args), args.roc_png)


def run(args: argparse.Namespace):
    from compression_tool.test_module.runner import run_test
    return run_test(config_from(args), load(args, float_only=False))


register(Mode("test", add_flags, run))

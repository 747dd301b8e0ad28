"""--mode summary: the model's size, MACs and what can be pruned."""
import argparse

from .registry import Mode, no_flags, register
from .shared import load


def run(args: argparse.Namespace):
    from compression_tool.prune_module.summary import summarize
    return summarize(load(args))


register(Mode("summary", no_flags, run))

"""compression_tool: measure, prune, fine-tune and quantize face-recognition CNNs.

One entry with --mode, as in the original. The modes live in modes/, one file each, in a registry; this file
builds the parser from them, runs the chosen one and writes its result. Every user mistake surfaces as one line on
stderr and exit code 2, any other exception as one line naming a file with its traceback and exit code 1.
"""
import argparse
import importlib.util
import sys

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import torch

from compression_tool.commen_utils.allocator import reuse_freed_memory
from compression_tool.commen_utils.cli_flags import parse_flags, settings_of
from compression_tool.commen_utils.console import report_to_console
from compression_tool.commen_utils.errors import exit_code
from compression_tool.commen_utils.results import write_result_json
from compression_tool.modes import MODES
from compression_tool.modes.shared import add_shared_flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_shared_flags(p, list(MODES))
    for mode in MODES.values():
        mode.add_flags(p)
    return p


def run(args: argparse.Namespace):
    if args.threads:
        torch.set_num_threads(args.threads)
    return MODES[args.mode].run(args)


def main(argv: list | None = None) -> int:
    args = parse_flags(build_parser(), argv)
    report_to_console()
    if args.allocator == "reuse":
        reuse_freed_memory()

    def body():
        result = run(args)
        if result is not None:
            write_result_json(args.result_json, result, config=settings_of(args))

    return exit_code(body, f"--mode {args.mode}", args.debug)


if __name__ == "__main__":
    sys.exit(main())

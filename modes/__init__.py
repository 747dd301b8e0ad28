"""main.py's modes, one file each: its flags, the config it builds from them, and the one library call it makes.

A mode file imports no engine at import time (engines load when the mode runs), so that `--help` and a mistyped
flag answer at once. Flags that several modes read live in shared.py. A new mode: a file here that calls
`register(Mode(...))`, imported below (the order is --help's and --mode's).
"""
from . import test, summary, sa, prune, quantization, finetune, report  # noqa: F401  (they register themselves)
from .registry import MODES, Mode, register

__all__ = ["MODES", "Mode", "register"]

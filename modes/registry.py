"""The registry of main.py's modes: each adds its own flags and runs from the parsed flags."""
import argparse
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Mode:
    name: str
    add_flags: Callable[[argparse.ArgumentParser], None]  # its own argument group (shared flags: modes/shared.py)
    run: Callable[[argparse.Namespace], Any]  # -> a ModeResult for --result_json, or None


MODES: dict[str, Mode] = {}


def register(mode: Mode) -> Mode:
    MODES[mode.name] = mode
    return mode


def no_flags(parser: argparse.ArgumentParser) -> None:
    """A mode that reads only shared flags."""

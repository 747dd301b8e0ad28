"""--result_json: every mode's figures as JSON, written atomically."""
import json
from dataclasses import dataclass, fields
from enum import Enum

import numpy as np

from .atomic import write_text


def plain_data(value):
    """Built-in types only (dicts, lists, numbers, strings): what JSON, YAML and a weights_only checkpoint hold."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass(frozen=True)
class ModeResult:
    """What a mode returns: typed fields that the CLI prints and writes to --result_json. A field left at
    None does not apply to this run and is not written (the JSON keys are those of earlier versions)."""

    def as_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def write_result_json(path, result: ModeResult | dict, config: dict | None = None) -> None:
    """`config`: the settings the run was computed with, written under "config" (a --config file)."""
    if path:
        result = result.as_json() if isinstance(result, ModeResult) else dict(result)
        if config is not None:
            result["config"] = config
        write_text(path, json.dumps(plain_data(result), indent=2, sort_keys=True) + "\n")

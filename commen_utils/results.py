"""--result_json: every mode's figures as JSON, written atomically."""
import json
from dataclasses import dataclass, fields

import numpy as np

from .atomic import write_text


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class ModeResult:
    """What a mode returns: typed fields that the CLI prints and writes to --result_json. A field left at
    None does not apply to this run and is not written (the JSON keys are those of earlier versions)."""

    def as_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def write_result_json(path, result: ModeResult | dict) -> None:
    if path:
        result = result.as_json() if isinstance(result, ModeResult) else result
        write_text(path, json.dumps(_plain(result), indent=2, sort_keys=True) + "\n")

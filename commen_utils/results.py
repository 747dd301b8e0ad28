"""--result_json: every mode's figures as JSON, written atomically."""
import json

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


def write_result_json(path, result: dict):
    if path:
        write_text(path, json.dumps(_plain(result), indent=2, sort_keys=True) + "\n")

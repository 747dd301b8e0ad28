"""Distiller's pruning-schedule YAML, read and written so that users' hand-edited files keep working.

    version: 1
    pruners:
      filter_pruner_30: {class: L1RankedStructureParameterPruner, group_type: Filters,
                         desired_sparsity: 0.3, weights: [a.weight, b.weight]}
    extensions:
      net_thinner: {class: FilterRemover, thinning_func_str: remove_filters, arch: None, dataset: 112x112}
    policies:
      - {pruner: {instance_name: filter_pruner_30}, epochs: [0]}
      - {extension: {instance_name: net_thinner}, epochs: [0]}
"""
from collections import defaultdict
from pathlib import Path

import yaml

from .atomic import write_text
from .errors import UserError


def read_schedule(path) -> dict:
    """{weight name: desired sparsity}; every problem is reported with the file (and line for YAML errors)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: schedule YAML not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pruners"), dict):
        raise UserError(f"{path}: not a Distiller schedule (no 'pruners' mapping)")
    ratios = {}
    for name, pruner in doc["pruners"].items():
        if not isinstance(pruner, dict) or "weights" not in pruner or "desired_sparsity" not in pruner:
            raise UserError(f"{path}: pruner '{name}' needs 'desired_sparsity' and 'weights'")
        ratio = pruner["desired_sparsity"]
        if not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise UserError(f"{path}: pruner '{name}': desired_sparsity {ratio!r} is outside [0, 1)")
        weights = pruner["weights"]
        weights = [weights] if isinstance(weights, str) else weights
        for weight in weights or []:
            if weight in ratios:
                raise UserError(f"{path}: {weight} is listed by two pruners")
            ratios[str(weight)] = float(ratio)
    if not ratios:
        raise UserError(f"{path}: the schedule prunes no layer")
    return ratios


def schedule_text(ratios: dict, input_size, header_lines=()) -> str:
    by_level = defaultdict(list)
    for weight, ratio in ratios.items():
        if ratio > 0:
            by_level[round(ratio, 4)].append(weight)  # widths chosen by latency need 4 decimals to be exact
    lines = [f"# {line}" for line in header_lines] + ["version: 1", "pruners:"]
    names = []
    for level in sorted(by_level):
        name = f"filter_pruner_{round(level * 100, 2):g}".replace(".", "_")
        names.append(name)
        lines += [f"  {name}:", "    class: L1RankedStructureParameterPruner", "    group_type: Filters",
                  f"    desired_sparsity: {level}", "    weights:"]
        lines += [f"      - {w}" for w in by_level[level]]
    lines += ["extensions:", "  net_thinner:", "    class: FilterRemover", "    thinning_func_str: remove_filters",
              "    arch: None", f"    dataset: {input_size[0]}x{input_size[1]}", "policies:"]
    lines += [f"  - pruner: {{instance_name: {n}}}\n    epochs: [0]" for n in names]
    lines += ["  - extension: {instance_name: net_thinner}", "    epochs: [0]"]
    return "\n".join(lines) + "\n"


def write_schedule(path: Path | str, ratios: dict, input_size: tuple, header_lines: list | tuple = (),
                   overwrite: bool = True) -> Path:
    return write_text(path, schedule_text(ratios, input_size, header_lines), overwrite)

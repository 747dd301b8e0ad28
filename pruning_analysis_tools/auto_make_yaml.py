"""Sensitivity CSV -> Distiller pruning schedule (YAML).

Two ways to choose each layer's sparsity:
- the original's rule (default): for every scheduled layer, the level whose metric is closest to
  --expected_acc, then moved to the highest level at least as good as that one (original_tool.md §10.1);
- a budget (--target_macs_ratio / --target_params_ratio): per-layer levels chosen from the measured curves to
  reach the budget with the least predicted loss, checked against the real pruned model's counts.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from commen_utils.errors import UserError  # noqa: E402
from commen_utils.schedule import write_schedule  # noqa: E402
from pruning_analysis_tools.curves import read_curves  # noqa: E402


def original_rule(curve: dict, expected: float) -> float:
    """Closest level to `expected` (ties: the lowest), then the highest level that still scores at least as
    well as that closest one. Level 0.0 is never chosen, as in the original."""
    levels = sorted(v for v in curve if v > 0)
    closest = min(levels, key=lambda v: (abs(curve[v] - expected), v))
    return max(v for v in levels if v >= closest and curve[v] >= curve[closest])


def faithful_schedule(curves, layers, expected):
    best = max(max(c.values()) for c in curves.accuracy.values())
    if expected > best:
        raise UserError(f"--expected_acc {expected}: no layer reaches it at any level (best {best:.4f})")
    return {layer: original_rule(curves.accuracy[layer], expected) for layer in layers}


def measured_counts(model_name, input_size, ratios, embedding_size=None):
    """(MACs, params) of the model pruned by `ratios`: counts depend on widths only, not on weights."""
    from commen_utils.model_stats import count_macs, count_params
    from model_define import create_model
    from pruning import prune_model

    model = create_model(model_name, input_size, embedding_size).eval()
    prune_model(model, input_size, {k: v for k, v in ratios.items() if v > 0})
    return count_macs(model, input_size), count_params(model)


def budget_schedule(curves, layers, targets: dict, counts):
    """Greedy on the measured curves: repeatedly take the (layer, higher level) step that buys the most
    budget per point of predicted loss (losses add up across layers), until the real pruned model meets
    every target. targets: {"macs": ratio, "params": ratio}; counts(ratios) -> {"macs": n, "params": n}."""
    base = counts({})
    goal = {k: r * base[k] for k, r in targets.items()}
    tables = {"macs": curves.macs, "params": curves.params}
    for k in targets:
        if not tables[k]:
            raise UserError(f"the CSV has no '{k}' column: budget mode needs a CSV written by this tool")
    loss = {layer: curves.damage(layer) for layer in layers}
    saving = {layer: {v: sum((tables[k][layer][0.0] - tables[k][layer][v]) / goal[k] for k in targets)
                      for v in curves.accuracy[layer]} for layer in layers}
    chosen = {layer: 0.0 for layer in layers}
    current = base
    while any(current[k] > goal[k] for k in targets):
        best, best_value = None, None
        for layer in layers:
            now = chosen[layer]
            for v in curves.accuracy[layer]:
                gain = saving[layer][v] - saving[layer][now]
                if v <= now or gain <= 0:
                    continue
                value = (loss[layer][v] - loss[layer][now] + 1e-9) / gain
                if best_value is None or value < best_value:
                    best, best_value = (layer, v), value
        if best is None:
            reached = ", ".join(f"{k} {current[k] / base[k]:.3f}" for k in targets)
            raise UserError(f"the budget cannot be met even at the highest measured levels (reached {reached})")
        chosen[best[0]] = best[1]
        current = counts(chosen)
    return chosen, {k: current[k] / base[k] for k in ("macs", "params")}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", required=True, help="sensitivity CSV (from --mode sa)")
    p.add_argument("--model", required=True, help="the model the CSV was measured on (chooses the layers)")
    p.add_argument("--input_size", default=None, help="HxW written as the schedule's dataset (e.g. 144x122)")
    p.add_argument("--embedding_size", type=int, help="the model's embedding width, if not its default")
    p.add_argument("--expected_acc", type=float, help="original rule: per-layer target metric")
    p.add_argument("--target_macs_ratio", type=float, help="budget: MACs of the result / MACs of the model")
    p.add_argument("--target_params_ratio", type=float, help="budget: params of the result / params of the model")
    p.add_argument("--layers", help="regex of layers to schedule (default: the model family's choice)")
    p.add_argument("--output", default="yaml_file/auto_yaml.yaml")
    p.add_argument("--result_json", help="write the chosen ratios and predicted/real budget here")
    return p


def make_schedule(args):
    import re

    from commen_utils.results import write_result_json
    from model_define import get_entry
    from model_define.loading import parse_size

    entry = get_entry(args.model)
    size = parse_size(args.input_size) or entry.spec.size
    curves = read_curves(args.csv)
    pattern = re.compile(args.layers or entry.schedule_layers)
    layers = [layer for layer in curves.layers if pattern.fullmatch(layer)]
    if not layers:
        raise UserError(f"no layer of {args.csv} matches {pattern.pattern}")
    targets = {k: v for k, v in (("macs", args.target_macs_ratio), ("params", args.target_params_ratio)) if v}
    for k, v in targets.items():
        if not 0 < v <= 1:
            raise UserError(f"--target_{k}_ratio {v}: must be in (0, 1]")
    if targets:
        def counts(ratios):
            macs, params = measured_counts(args.model, size, ratios, args.embedding_size)
            return {"macs": macs, "params": params}
        ratios, reached = budget_schedule(curves, layers, targets, counts)
        rule = "budget " + ", ".join(f"{k} <= {v:g}x" for k, v in targets.items())
    elif args.expected_acc is not None:
        ratios = faithful_schedule(curves, layers, args.expected_acc)
        macs, params = measured_counts(args.model, size, ratios, args.embedding_size)
        base_macs, base_params = measured_counts(args.model, size, {}, args.embedding_size)
        reached = {"macs": macs / base_macs, "params": params / base_params}
        rule = f"original rule, expected_acc {args.expected_acc}"
    else:
        raise UserError("give --expected_acc (original rule) or --target_macs_ratio / --target_params_ratio")
    predicted = curves.baseline - sum(max(0.0, curves.baseline - curves.accuracy[k][v]) for k, v in ratios.items())
    header = [f"made by auto_make_yaml.py from {args.csv} ({rule})",
              f"model {args.model}: MACs {reached['macs']:.3f}x, params {reached['params']:.3f}x of the unpruned model",
              f"predicted metric (per-layer losses added) {predicted:.4f}, baseline {curves.baseline:.4f}"]
    write_schedule(args.output, ratios, size, header)
    print("\n".join(header[1:]) + f"\nschedule: {args.output}")
    result = {"ratios": ratios, "macs_ratio": reached["macs"], "params_ratio": reached["params"],
              "predicted_metric": predicted, "baseline": curves.baseline, "yaml": str(args.output)}
    write_result_json(args.result_json, result)
    return result


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        make_schedule(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

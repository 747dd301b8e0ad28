"""Schedules of one shape fitted to a budget: a shape gives every layer a share of the pruning, one scalar knob
scales it, and a bisection on the knob finds the deepest schedule whose counts (MACs, params, or the latency a
table predicts) meet the budget.

The shapes: uniform (one fraction for every layer); the curves' equal-damage shape (every layer pruned until its
predicted damage reaches one common threshold) and halfway between the two; and, where the curves have MAC
counts, the damage-per-MAC shape (each layer pruned while a step costs less damage per MAC saved than one common
slope). Per-layer damages do not simply add up, so which shape is best is for a measurement to say.
"""
from typing import Callable

from compression_tool.commen_utils.errors import UserError


def level_at_damage(damage: dict, tau: float) -> float:
    """The highest fraction (linear between measured levels) up to which a layer's damage stays <= tau."""
    levels = sorted(damage)
    ratio = 0.0
    for a, b in zip(levels, levels[1:]):
        if damage[b] <= tau:
            ratio = b
            continue
        if damage[a] <= tau:
            ratio = a + (b - a) * (tau - damage[a]) / (damage[b] - damage[a])
        break
    return ratio


def level_at_slope(damage: dict, saving: dict, slope: float) -> float:
    """The highest measured level up to which every step costs at most `slope` damage per unit of MACs
    saved: the layer's share when the budget goes wherever it is cheapest."""
    levels, ratio = sorted(damage), 0.0
    for a, b in zip(levels, levels[1:]):
        gained = saving[b] - saving[a]
        if gained <= 0 or damage[b] - damage[a] > slope * gained:
            break
        ratio = b
    return ratio


def fit_to_budget(allocation, targets: dict, counts, high: float) -> tuple:
    """Bisection on the scalar knob of `allocation(x) -> ratios` (more pruning as x grows) until the real
    pruned model meets every target. Returns (ratios, reached: every count as a fraction of the unpruned
    model's)."""
    base = counts({})
    meets = lambda c: all(c[k] <= r * base[k] for k, r in targets.items())  # noqa: E731
    if not meets(counts(allocation(high))):
        reached = counts(allocation(high))
        raise UserError("the budget cannot be met within the measured levels (reached " +
                        ", ".join(f"{k} {reached[k] / base[k]:.3f}x" for k in targets) + ")")
    low = 0.0
    for _ in range(20):
        mid = (low + high) / 2
        low, high = (low, mid) if meets(counts(allocation(mid))) else (mid, high)
    reached = counts(allocation(high))
    return allocation(high), {k: reached[k] / base[k] for k in reached}


def shaped_schedules(damage: dict, top: float, targets: dict, counts, *,
                     written: Callable[[float], float] = lambda r: round(r, 2),
                     macs_saving: dict | None = None) -> dict:
    """damage: {layer: {level: predicted damage}}; top: the most any layer may lose; counts(ratios) -> {count:
    value} of the model pruned by `ratios`, judged against `targets` ({count: ratio of the unpruned model's});
    written: a fraction as the schedule will hold it (the budget is fitted on that); macs_saving: {layer:
    {level: MACs saved, as a fraction}} for the damage-per-MAC shape. Returns {name: (ratios, reached)},
    uniform first."""
    highest = max(max(d.values()) for d in damage.values()) + 1e-9
    shapes = {"equal damage": fit_to_budget(
        lambda tau: {k: written(level_at_damage(d, tau)) for k, d in damage.items()}, targets, counts, highest)[0]}
    if macs_saving:
        steepest = max((d[b] - d[a]) / max(macs_saving[k][b] - macs_saving[k][a], 1e-12)
                       for k, d in damage.items() for a, b in zip(sorted(d), sorted(d)[1:])) + 1e-9
        shapes["damage per MAC"] = fit_to_budget(
            lambda slope: {k: level_at_slope(damage[k], macs_saving[k], slope) for k in damage}, targets, counts,
            steepest)[0]
    # (shape, blend): the candidate's weights are blend x shape + (1 - blend) x uniform
    blends = {"uniform": ("equal damage", 0.0), "halfway to equal damage": ("equal damage", 0.5),
              **{name: (name, 1.0) for name in shapes}}
    candidates = {}
    for name, (shape_name, blend) in blends.items():
        shape = shapes[shape_name]
        mean = sum(shape.values()) / len(shape)
        weights = {k: (1 - blend) + blend * shape[k] / mean for k in damage}
        candidates[name] = fit_to_budget(lambda c: {k: written(min(top, c * w)) for k, w in weights.items()},
                                         targets, counts, top / min(w for w in weights.values() if w > 0))
    return candidates

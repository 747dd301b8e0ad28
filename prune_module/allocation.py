"""Widths for a latency target: the sensitivity curves traded against measured latency savings.

A greedy walk from the unpruned model: at every step, of all the moves "group g to a narrower width it is
allowed" (a width measured faster than every wider one), the one that costs the least predicted damage per
millisecond saved, with the latency predicted for the whole current schedule (so that a layer between two
pruned groups is counted once). Every step is a schedule: the walk is a path from the unpruned model to the
fastest one the curves allow, along which a latency target or an accuracy floor picks a point.
"""
from typing import NamedTuple

from .latency_table import LatencyTable


class PathPoint(NamedTuple):
    widths: dict          # {leader weight: width}
    predicted_ms: float


def damage_at(curve: dict, fraction: float) -> float:
    """A sensitivity curve ({fraction removed: damage}) read between its measured levels."""
    levels = sorted(curve)
    if fraction <= levels[0]:
        return curve[levels[0]]
    for a, b in zip(levels, levels[1:]):
        if fraction <= b:
            return curve[a] + (curve[b] - curve[a]) * (fraction - a) / (b - a)
    return curve[levels[-1]]


def greedy_path(table: LatencyTable, damage: dict, max_fraction: dict) -> list[PathPoint]:
    """damage: {leader weight: {fraction removed: predicted damage}}; max_fraction: {leader weight: the most that
    may be removed} (the highest level the curve was measured at). Groups not in `damage` stay unpruned."""
    widths = {param: table.groups[param].full for param in damage}
    options = {param: [w for w in table.allowed_widths(param)
                       if 1 - w / table.groups[param].full <= max_fraction[param] + 1e-9] for param in damage}

    def cost(param, width):
        return damage_at(damage[param], 1 - width / table.groups[param].full)

    current = table.predict(widths)
    path = [PathPoint(dict(widths), current)]
    while True:
        best = None
        for param, allowed in options.items():
            for width in allowed:
                if width >= widths[param]:
                    continue
                ms = table.predict({**widths, param: width})
                saved = current - ms
                if saved <= 0:
                    continue
                price = round(max(0.0, cost(param, width) - cost(param, widths[param])) / saved, 12)
                if best is None or (price, saved) < best[0]:  # ties: the smaller step, so the path stays fine
                    best = ((price, saved), param, width, ms)
        if best is None:
            return path
        _, param, width, current = best
        widths[param] = width
        path.append(PathPoint(dict(widths), current))


def ratios_for(widths: dict, full: dict) -> dict:
    """{leader weight: fraction to remove} that prune mode turns back into exactly these widths: it removes
    floor(ratio x width) channels, so the fraction is rounded up (4 decimals are exact below 10,000 channels)."""
    import math

    return {param: math.ceil((full[param] - w) / full[param] * 1e4 - 1e-6) / 1e4
            for param, w in widths.items() if w < full[param]}

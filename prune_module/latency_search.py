"""The fastest schedule in the deployment runtime that meets a user's target: a latency (of the unpruned model, or
in ms), an accuracy floor, or both.

The greedy path (allocation.py) is walked on the latency table's predictions; the points the choice depends on
are then built for real — pruned, repaired, put in the runtime (quantized there for an INT8 runtime) — timed
side by side with the unpruned model in that runtime, and scored on the analysis pairs. The greedy path trusts
each layer's curve alone, and per-layer damages do not simply add up: where there are pairs to score on, the
curves' shapes (shapes.py: uniform, equal damage and halfway between) fitted to a latency target are measured
beside the path's points, and the most accurate that meets it kept. Not under an accuracy floor: there the
fastest schedule that passes a noisy score is kept, and every extra candidate near the floor is one more chance
to keep a schedule that passed by luck. Every measured point is returned, so that a report can draw the
frontier.

The whole-model measurements also check the table: a model thinned everywhere does not save what the table's
per-layer ratios (each taken with a few groups thinned) add up to, so each point's prediction is the table's
saving mapped through a line fitted to what the whole models measured before it really saved (this search's
points and earlier searches', kept with the cached table), as fractions of the unpruned model timed beside
them (which takes the CPU's drift out of the comparison).
"""
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compression_tool.commen_utils.errors import UserError

from .allocation import PathPoint
from .criteria import Criterion
from .latency_table import LatencyTable
from .runtimes import Deployment

log = logging.getLogger(__name__)

PROBE_RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)  # where along the path the accuracy floor is first probed
REFINEMENTS = 2        # steps back between a point that meets a goal and the last one that does not
OVERSHOOT = 0.03       # a latency target beaten by more than this (of the unpruned time) is worth a wider point
LATENCY_RETRIES = 3    # further points tried when a latency target's point measures slower than the target
MAX_CHECKS = 100       # whole-model checks kept with a cached table, the newest
SHAPES = ("uniform", "halfway to equal damage", "equal damage")  # measured beside the path (shapes.py)
SHAPE_FITS = 2         # fits of a shape to a target: the second with its own saving model refitted
SLOPE_LIMITS = (0.25, 2.0)  # a slope outside these is noisy timings, not the table's error
LINE_SPREAD = 0.1      # a line is fitted once the checks' predicted savings spread this wide (of the unpruned time)
PRIOR_SAVING = 0.2     # before that, the table's own word counts as a check of this much saving measured as predicted


class NoFasterSchedule(UserError):
    """No pruned schedule is faster than the unpruned model in the runtime at the accuracy floor: the advice is
    the unpruned model, and nothing is written."""
    exit_status = 3


@dataclass(frozen=True)
class LatencyGoal:
    deployment: Deployment = Deployment()
    target_ratio: float | None = None  # of the unpruned model's latency in that runtime
    target_ms: float | None = None
    max_accuracy_drop: float | None = None  # points (hundredths of accuracy) below the unpruned FP32 model

    def __post_init__(self):
        if self.target_ratio is not None and not 0 < self.target_ratio <= 1:
            raise UserError(f"--target_latency_ratio {self.target_ratio}: must be in (0, 1]")
        if self.target_ms is not None and self.target_ms <= 0:
            raise UserError(f"--target_latency_ms {self.target_ms}: must be positive")
        if self.target_ratio is not None and self.target_ms is not None:
            raise UserError("give --target_latency_ratio or --target_latency_ms, not both")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise UserError(f"--max_accuracy_drop {self.max_accuracy_drop}: must be >= 0 (points)")

    @property
    def has_latency(self) -> bool:
        return self.target_ratio is not None or self.target_ms is not None

    def ratio_for(self, unpruned_ms: float) -> float:
        """The latency target as a fraction of the unpruned model's time (timed at `unpruned_ms`)."""
        return self.target_ratio if self.target_ratio is not None else self.target_ms / unpruned_ms

    def describe(self) -> str:
        parts = [f"latency <= {self.target_ratio:g}x of the unpruned model" if self.target_ratio is not None else "",
                 f"latency <= {self.target_ms:g} ms" if self.target_ms is not None else "",
                 f"accuracy drop <= {self.max_accuracy_drop:g} points" if self.max_accuracy_drop is not None else ""]
        return f"{', '.join(p for p in parts if p)} in {self.deployment.describe()}"


@dataclass
class Measured:
    """One schedule built and measured: a point of the path, or one of the curves' shapes fitted to the target."""
    index: int | None         # position on the path (None: a shape)
    widths: dict
    predicted_ms: float
    measured_ms: float
    unpruned_ms: float        # the unpruned model, timed in the same rounds
    accuracy: float | None = None
    extra: dict = field(default_factory=dict)  # what the measurer adds (its saved file, ...)
    expected_ratio: float | None = None  # predicted before it was built: the table through the SavingModel
    shape: str | None = None  # the curves' shape it was fitted to, for a schedule off the path
    fit: int = 1              # which fit of that shape

    @property
    def name(self) -> str:
        if self.shape is None:
            return f"point {self.index}"
        return f"{self.shape} shape" + (f" (fit {self.fit})" if self.fit > 1 else "")

    @property
    def ratio(self) -> float:
        return self.measured_ms / self.unpruned_ms

    @property
    def expected_ms(self) -> float:
        """The prediction in ms: the predicted ratio times the unpruned model's time in the same rounds."""
        return self.expected_ratio * self.unpruned_ms

    def check(self, unpruned_predicted: float) -> list:
        """[the table's saving, the measured saving], as fractions of the unpruned model's time, and the shape for
        a schedule off the path (a model thinned everywhere errs from the table its own way: each shape gets its
        own SavingModel)."""
        return [1 - self.predicted_ms / unpruned_predicted, 1 - self.ratio, *([self.shape] if self.shape else [])]


def of_shape(checks, shape: str | None) -> list:
    """The [predicted, measured] checks of one shape (None: the path's points)."""
    return [c[:2] for c in checks if (c[2] if len(c) > 2 else None) == shape]


@dataclass(frozen=True)
class SavingModel:
    """The saving a whole model measures, as a line of the table's predicted saving (fractions of the unpruned
    time), fitted to checks ([predicted, measured] savings): by least squares once their predicted savings
    spread LINE_SPREAD wide (a thinned model has a cost of its own beside what it saves), through the origin
    before: their ratio of sums, the table's own prediction counted as one more check (PRIOR_SAVING), so that a
    point that saves little moves it little, timing noise being a fraction of the whole time."""
    slope: float = 1.0
    offset: float = 0.0

    @staticmethod
    def fitted(checks: list) -> "SavingModel":
        predicted, measured = [c[0] for c in checks], [c[1] for c in checks]
        if len(checks) >= 3 and max(predicted) - min(predicted) >= LINE_SPREAD:
            slope, offset = np.polyfit(predicted, measured, 1)
            if SLOPE_LIMITS[0] <= slope <= SLOPE_LIMITS[1]:
                return SavingModel(float(slope), float(offset))
        slope = (sum(measured) + PRIOR_SAVING) / (sum(predicted) + PRIOR_SAVING)
        return SavingModel(min(max(slope, SLOPE_LIMITS[0]), SLOPE_LIMITS[1]))

    def saving(self, table_saving: float) -> float:
        return self.slope * table_saving + self.offset

    def table_saving_for(self, saving: float) -> float:
        return (saving - self.offset) / self.slope


def first_at(path: list[PathPoint], ms: float, start: int = 0) -> int:
    """The first point from `start` on predicted at or under `ms` (the last point if none is)."""
    return next((i for i in range(start, len(path)) if path[i].predicted_ms <= ms), len(path) - 1)


@dataclass(frozen=True)
class Rivals:
    """Schedules off the path: `widths(shape, table_ms)` is the shape (SHAPES) fitted to `table_ms` as the
    table predicts it (None where it cannot get there); `measure(widths, shape, fit)` builds and measures one."""
    widths: Callable[[str, float], dict | None]
    measure: Callable[[dict, str, int], Measured]


def choose(path: list[PathPoint], goal: LatencyGoal, measure: Callable[[int], Measured],
           floor: float | None, checks: list = (), rivals: Rivals | None = None) -> tuple[Measured, list[Measured]]:
    """(chosen, every point measured). `measure(i)` builds and measures path point i; `floor` is the accuracy
    to stay at or above (None: no floor); `checks`: earlier searches' [predicted, measured(, shape)] savings;
    `rivals`: the shapes, scored, for a latency target: the most accurate schedule that meets it is kept.
    Raises NoFasterSchedule or UserError when the goal cannot be met."""
    measured: dict = {}  # {path index or (shape, fit): Measured}
    unpruned_predicted = path[0].predicted_ms

    def fitted(shape: str | None = None) -> SavingModel:
        return SavingModel.fitted(of_shape([*checks, *(m.check(unpruned_predicted) for m in measured.values())],
                                           shape))

    def expected(table_ms: float, shape: str | None = None) -> float:
        return 1 - fitted(shape).saving(1 - table_ms / unpruned_predicted)

    def table_ms_for(ratio: float, shape: str | None = None) -> float:  # the table's ms predicted to give `ratio`
        return unpruned_predicted * (1 - fitted(shape).table_saving_for(1 - ratio))

    def at(i: int) -> Measured:
        if i not in measured:
            predicted = expected(path[i].predicted_ms)
            measured[i] = measure(i)
            measured[i].expected_ratio = predicted
            log.info(f"point {i}: predicted {predicted:.3f}x of the unpruned model, measured {measured[i].ratio:.3f}x")
        return measured[i]

    def shapes() -> list[Measured]:
        """Each shape fitted to the latency target through its own saving model, fitted again while it misses
        the target or beats it by more than OVERSHOOT."""
        target = goal.ratio_for
        found = []
        for shape in SHAPES if rivals is not None else ():
            for fit in range(1, SHAPE_FITS + 1):
                unpruned_ms = list(measured.values())[-1].unpruned_ms  # the latest timing of it
                widths = rivals.widths(shape, table_ms_for(target(unpruned_ms), shape))
                if widths is None or any(widths == other.widths for other in measured.values()):
                    break
                m = rivals.measure(widths, shape, fit)
                m.expected_ratio = expected(m.predicted_ms, shape)
                measured[shape, fit] = m
                found.append(m)
                log.info(f"{m.name}: predicted {m.expected_ratio:.3f}x, measured {m.ratio:.3f}x, "
                         f"accuracy {m.accuracy:.4f}")
                if target(m.unpruned_ms) - OVERSHOOT <= m.ratio <= target(m.unpruned_ms):
                    break
        return found

    def in_order() -> list[Measured]:
        return sorted(measured.values(), key=lambda m: (m.index is None, m.index or 0))

    if goal.has_latency:
        chosen = _meet_latency(path, goal, at, table_ms_for)
        meeting = [m for m in [chosen, *shapes()] if m.ratio <= goal.ratio_for(m.unpruned_ms)]
        chosen = max(meeting, key=lambda m: m.accuracy if m.accuracy is not None else 0)  # ties: the path's
        if floor is not None and chosen.accuracy < floor:
            raise NoFasterSchedule(f"the fastest schedule at {goal.describe()} loses accuracy below the floor "
                                   f"({chosen.accuracy:.4f} < {floor:.4f}): relax the latency target or the drop")
        return chosen, in_order()
    _probe_floor(path, at, floor, table_ms_for)
    within = [m for m in measured.values() if m.accuracy >= floor]
    all_measured = in_order()
    # fastest by the ratio to the unpruned model timed beside each: the CPU's speed drifts between rounds
    best = min(within, key=lambda m: m.ratio, default=None)
    if best is None or best.ratio >= 1:
        fastest = f"; the fastest within it measured {best.ratio:.2f}x" if best else ""
        raise NoFasterSchedule(f"no pruned schedule is faster than the unpruned model at {goal.describe()}"
                               f"{fastest}: deploy the unpruned model ({len(all_measured)} schedules measured)")
    return best, all_measured


def _meet_latency(path, goal, at, table_ms_for) -> Measured:
    """The first point, from the aim on, that measures within the target; the aim moves as the measured points
    refit the saving model. A point that beats the target by more than OVERSHOOT gave away accuracy for nothing:
    the points between it and the last one over the target are tried (up to REFINEMENTS), the widest that meets
    the target kept."""
    unpruned_predicted = path[0].predicted_ms

    def aim(unpruned_ms: float) -> float:  # the table's ms whose predicted saving meets the target
        return table_ms_for(goal.ratio_for(unpruned_ms))

    def meets(m: Measured) -> bool:
        return m.ratio <= goal.ratio_for(m.unpruned_ms)

    if goal.target_ms is not None and unpruned_predicted <= goal.target_ms:
        raise NoFasterSchedule(f"the unpruned model already meets {goal.describe()} (predicted "
                               f"{unpruned_predicted:.2f} ms): deploy it as it is")

    i, slow = max(1, first_at(path, aim(unpruned_predicted))), 0  # slow: the last point over the target
    for _ in range(LATENCY_RETRIES + 1):
        m = at(i)
        if meets(m):
            for _ in range(REFINEMENTS):
                if m.ratio >= goal.ratio_for(m.unpruned_ms) - OVERSHOOT or i - slow <= 1:
                    break
                j = min(max(first_at(path, aim(m.unpruned_ms), slow + 1), slow + 1), i - 1)
                if meets(at(j)):
                    i, m = j, at(j)
                else:
                    slow = j
            return m
        if i == len(path) - 1:
            break
        slow, i = i, max(i + 1, first_at(path, aim(m.unpruned_ms)))
    raise UserError(f"cannot reach {goal.describe()} within the levels the curves were measured at (the fastest "
                    f"point tried measured {m.ratio:.2f}x, {m.measured_ms:.2f} ms)")


def _probe_floor(path, at, floor, table_ms_for) -> None:
    """Measures the path at the points predicted (through the saving model) at PROBE_RATIOS of the unpruned
    model until one falls below the floor, then bisects between it and the last one within the floor."""
    passing, failing = 0, None
    for ratio in PROBE_RATIOS:
        if passing == len(path) - 1:
            break
        i = first_at(path, table_ms_for(ratio), passing + 1)
        if at(i).accuracy >= floor:
            passing = i
        else:
            failing = i
            break
    for _ in range(REFINEMENTS):
        if failing is None or failing - passing <= 1:
            break
        mid = (passing + failing) // 2
        if at(mid).accuracy >= floor:
            passing = mid
        else:
            failing = mid


class PathMeasurer:
    """Builds points of the path for real: the model's own weights pruned to the point's widths, repaired, put in
    the runtime (quantized on `calibration` for an INT8 runtime), timed in interleaved rounds beside the
    unpruned model in the same runtime, and scored by `evaluator` when there is one. With `save_dir`, each
    point's runtime model is saved there (and the unpruned one), for the report's frontier."""

    def __init__(self, *, model, input_size, path: list[PathPoint], full: dict, deployment: Deployment, repair,
                 criterion: Criterion | None = None, evaluator=None, calibration=None, repeats: int = 15,
                 save_dir=None, info: dict | None = None):
        from pathlib import Path

        from .runtimes import prepare

        self.model, self.input_size, self.path, self.full = model, tuple(input_size), path, full
        self.deployment, self.repair, self.evaluator, self.calibration = deployment, repair, evaluator, calibration
        self.criterion = criterion  # how the points' channels are ranked (the curves' criterion; default L1)
        self.repeats, self.info = repeats, info or {}
        self.save_dir = Path(save_dir) if save_dir else None
        self.unpruned = prepare(model, input_size, deployment, calibration)
        self.unpruned_file = self._save(self.unpruned, "unpruned", model)

    def _save(self, runner, name: str, model) -> str | None:
        if self.save_dir is None:
            return None
        from compression_tool.model_define.keep import record_keep

        self.save_dir.mkdir(parents=True, exist_ok=True)
        return str(runner.save(self.save_dir / name, {**self.info, "keep": record_keep(model)}))

    def __call__(self, i: int) -> Measured:
        return self.build(self.path[i].widths, self.path[i].predicted_ms, index=i)

    def build(self, widths: dict, table_ms: float, *, index: int | None = None, shape: str | None = None,
              fit: int = 1) -> Measured:
        import copy

        from compression_tool.commen_utils.latency import side_by_side_ms

        from .allocation import ratios_for
        from .runtimes import prepare
        from .thinning import prune_and_repair

        pruned = copy.deepcopy(self.model)
        prune_and_repair(pruned, self.input_size, ratios_for(widths, self.full), self.criterion, repair=self.repair)
        runner = prepare(pruned, self.input_size, self.deployment, self.calibration)
        # a model compiled long ago times slower than one just compiled: both fresh
        unpruned_ms, ms = side_by_side_ms([self.unpruned.recompiled(), runner], self.input_size,
                                          self.deployment.batch, self.repeats)
        accuracy = self.evaluator(runner.evaluable())["headline"] if self.evaluator else None
        measured = Measured(index, dict(widths), table_ms, ms, unpruned_ms, accuracy, shape=shape, fit=fit)
        file = self._save(runner, f"point_{index:03d}" if shape is None else
                          shape.replace(" ", "_") + (f"_{fit}" if fit > 1 else ""), pruned)
        if file:
            measured.extra["file"] = file
        score = f", accuracy {accuracy:.4f}" if accuracy is not None else ""
        log.info(f"{measured.name}: {ms:.2f} ms beside the unpruned model's {unpruned_ms:.2f} ms (table: "
                 f"{table_ms:.2f} ms){score}")
        return measured


def shaped_widths(table: LatencyTable, damage: dict, max_fraction: dict, table_ms: float) -> dict:
    """{shape name: widths}: the curves' shapes (shapes.py) other than the path's own (damage per ms saved),
    each fitted to `table_ms` as the table predicts it, every group at the width it may be pruned to (allowed,
    within its curve) nearest its share; none where a shape cannot get there within the curves' levels."""
    from .shapes import shaped_schedules

    options = {p: [w for w in table.allowed_widths(p) if 1 - w / table.groups[p].full <= max_fraction[p] + 1e-9]
               for p in damage}

    def snapped(ratios: dict) -> dict:
        return {p: min(options[p], key=lambda w: (abs(w - (1 - ratios.get(p, 0.0)) * table.groups[p].full), -w))
                for p in damage}

    try:
        found = shaped_schedules(damage, min(max_fraction.values()), {"ms": table_ms / table.unpruned_ms},
                                 lambda ratios: {"ms": table.predict(snapped(ratios))}, written=float)
    except UserError:  # a shape stops at the levels the curves were measured at: the path alone goes deeper
        return {}
    return {name: snapped(ratios) for name, (ratios, _) in found.items()}


@dataclass
class LatencyPlan:
    ratios: dict              # the schedule: {leader weight: fraction to remove}
    chosen: Measured
    measured: list            # every point measured, the chosen one among them
    table: LatencyTable
    baseline: float | None    # the unpruned FP32 model's accuracy on the analysis pairs
    floor: float | None
    unpruned_file: str | None  # the unpruned model in the runtime, saved beside the points


def plan_for_latency(*, model, model_name: str, input_size, damage: dict, max_fraction: dict, goal: LatencyGoal,
                     repair, criterion: Criterion | None = None, evaluator=None, calibration=None,
                     repeats: int = 15, steps: int = 16, cache_dir=None,
                     save_dir=None,
                     info: dict | None = None, progress: bool = True) -> LatencyPlan:
    """The schedule for `goal`: damage ({leader weight: {fraction: damage}}) and max_fraction come from the
    sensitivity curves; the model's latency table is measured in the goal's runtime (or read from the cache);
    the greedy path is walked and the points the goal depends on are measured."""
    from .allocation import greedy_path, ratios_for
    from .graph import ChannelGraph
    from .latency_table import measure_latency_table, save_table, width_grid

    if goal.max_accuracy_drop is not None and evaluator is None:
        raise UserError("--max_accuracy_drop needs the model and pairs to measure on (--best_model_path, "
                        "--img_list_label_path)")
    graph = ChannelGraph(model, input_size)
    unknown = [p for p in damage if p not in graph.by_param]
    if unknown:
        raise UserError(f"{unknown[0]}: not a prunable layer of {model_name} (see --mode summary)")
    grid = {p: width_grid(graph.by_param[p], max_fraction[p], steps) for p in damage}
    table = measure_latency_table(model, input_size, graph, goal.deployment, grid, model_name, repeats, cache_dir,
                                  progress)
    path = greedy_path(table, damage, max_fraction)
    baseline = evaluator(model)["headline"] if evaluator is not None else None
    floor = baseline - goal.max_accuracy_drop / 100 if goal.max_accuracy_drop is not None else None
    full = {p: table.groups[p].full for p in damage}
    measurer = PathMeasurer(model=model, input_size=input_size, path=path, full=full, deployment=goal.deployment,
                            repair=repair, criterion=criterion, evaluator=evaluator,
                            calibration=calibration, repeats=repeats, save_dir=save_dir, info=info)
    log.info(f"latency path: {len(path)} schedules from {path[0].predicted_ms:.2f} ms (unpruned, predicted) to "
             f"{path[-1].predicted_ms:.2f} ms; measuring the ones {goal.describe()} depends on")
    rivals = Rivals(lambda shape, table_ms: shaped_widths(table, damage, max_fraction, table_ms).get(shape),
                    lambda widths, shape, fit: measurer.build(widths, table.predict(widths), shape=shape, fit=fit))
    # the shapes are worth measuring only where the points are scored
    chosen, measured = choose(path, goal, measurer, floor, table.checks, rivals if evaluator is not None else None)
    table.checks = [*table.checks, *(m.check(table.unpruned_ms) for m in measured)][-MAX_CHECKS:]
    if cache_dir:
        save_table(table, cache_dir)
    return LatencyPlan(ratios_for(chosen.widths, full), chosen, measured, table, baseline, floor,
                       measurer.unpruned_file)


"""Latency targets: the latency table (measured through a stubbed runtime whose cost is known), the width rule,
the greedy allocation, the choice along the path, the schedule's exact widths, and the report's frontier."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from compression_tool.commen_utils import latency
from compression_tool.commen_utils.errors import UserError, exit_code
from compression_tool.commen_utils.schedule import read_schedule, write_schedule
from compression_tool.prune_module import runtimes
from compression_tool.prune_module.allocation import PathPoint, greedy_path, ratios_for
from compression_tool.prune_module.graph import ChannelGraph, channels_to_remove
from compression_tool.prune_module.latency_search import (LatencyGoal, Measured, NoFasterSchedule, SavingModel,
                                                          Rivals, choose, shaped_widths)
from compression_tool.prune_module.latency_table import (GroupLatency, LatencyTable, disjoint_sets,
                                                        measure_latency_table, Thinner, width_grid)
from compression_tool.prune_module.runtimes import Deployment, Runner, RuntimeName, fold_into_layers
from compression_tool.pruning_analysis_tools.frontier import pareto, plot_frontier
from helpers import randomize

SIZE = (16, 16)


class Chain(nn.Module):
    """conv-BN-PReLU, depthwise, pointwise, ... flatten, linear: the shape of SFace, tiny."""

    def __init__(self, widths=(16, 32, 48)):
        super().__init__()
        layers, cin = [], 3
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 1 if i else 3, padding=0 if i else 1, bias=False), nn.BatchNorm2d(w),
                       nn.PReLU(w), nn.Conv2d(w, w, 3, padding=1, groups=w, bias=False), nn.BatchNorm2d(w)]
            cin = w
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin * SIZE[0] * SIZE[1], 8)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


def stub_cost(module: nn.Module) -> float:
    """A made-up kernel: cost in * out, three times slower when the output width is not a multiple of 16."""
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features / 1e4
    cost = module.in_channels // module.groups * module.out_channels / 100
    return cost * (1 if module.out_channels % 16 == 0 else 3)


class StubRunner(Runner):
    def __init__(self, model, input_size, deployment, calibration=None):
        self.source = model

    def __call__(self, x):
        return self.source(x)

    def layer_times(self, x):
        steps = [(isinstance(m, runtimes.WEIGHTED), stub_cost(m) if isinstance(m, runtimes.WEIGHTED) else 0.0)
                 for m in self.source.modules() if not list(m.children())]
        return fold_into_layers(steps, runtimes.layer_count(self.source), "stub")


def stub_total(model) -> float:
    return sum(stub_cost(m) for m in model.modules() if isinstance(m, runtimes.WEIGHTED))


def stub_wall_ms(overhead: float = 0.0):
    """A timer for stub runners: each one's made-up cost, plus `overhead` outside its profile."""
    return lambda runners, *args, **kwargs: [stub_total(r.source) + overhead for r in runners]


@pytest.fixture
def stub_runtime(monkeypatch):
    monkeypatch.setitem(runtimes.RUNTIMES, RuntimeName.TORCH_FP32, StubRunner)
    monkeypatch.setattr(latency, "side_by_side_ms", stub_wall_ms())
    return Deployment("torch-fp32")


def measured_table(deployment, tmp_path, model=None):
    model = model or randomize(Chain())
    graph = ChannelGraph(model, SIZE)
    grid = {g.param: width_grid(g, 0.9) for g in graph.groups}
    return model, graph, measure_latency_table(model, SIZE, graph, deployment, grid, "chain", repeats=1,
                                               cache_dir=tmp_path, progress=False)


def test_table_predicts_thinned_models_exactly_and_is_cached(stub_runtime, tmp_path):
    model, graph, table = measured_table(stub_runtime, tmp_path)
    assert table.unpruned_ms == pytest.approx(stub_total(model))
    # two chained groups share the pointwise conv between them: they were measured in different copies
    touched = {p: g.layers for p, g in table.groups.items()}
    assert all(not set(touched[a]) & set(touched[b]) for s in disjoint_sets(touched) for a in s for b in s if a != b)
    widths = {g.param: grid_w[-1] for g, grid_w in zip(graph.groups, [width_grid(g, 0.9) for g in graph.groups])}
    widths[graph.groups[0].param] = 8  # an odd step of the first group beside a narrow second one
    thinned = Thinner(model, SIZE, graph).cut(widths)
    assert table.predict(widths) == pytest.approx(stub_total(thinned))
    # the cache: a second measurement reads the file, even with the runtime gone
    assert len(list(tmp_path.glob("chain_torch-fp32_*.json"))) == 1
    runtimes.RUNTIMES[RuntimeName.TORCH_FP32] = None
    _, _, again = measured_table(stub_runtime, tmp_path, model)
    assert again.predict(widths) == pytest.approx(table.predict(widths))


def test_the_wall_time_outside_the_profile_is_a_constant_of_the_table(stub_runtime, tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "side_by_side_ms", stub_wall_ms(overhead=2.5))
    model, graph, table = measured_table(stub_runtime, tmp_path)
    assert table.unpruned_ms == pytest.approx(stub_total(model) + 2.5)
    widths = {graph.groups[0].param: 8}
    assert table.predict(widths) == pytest.approx(stub_total(Thinner(model, SIZE, graph).cut(widths)) + 2.5)


def test_allowed_widths_skip_a_width_slower_than_a_wider_one(stub_runtime, tmp_path):
    _, graph, table = measured_table(stub_runtime, tmp_path)
    third = graph.groups[2].param  # 48 wide: 40, 24 and 8 leave the stub's fast kernels
    allowed = table.allowed_widths(third)
    assert allowed[0] == 48 and 32 in allowed and 16 in allowed
    assert not {40, 24, 8} & set(allowed)
    for a, b in zip(allowed, allowed[1:]):
        assert table.predict({third: b}) < table.predict({third: a})


def test_a_search_measures_the_shapes_and_keeps_their_checks_apart(stub_runtime, tmp_path):
    """The whole search on the stub runtime: path points and shapes built for real and scored; the more parameters
    a schedule keeps, the more accurate (the stub's score); the shapes' checks go to the cache tagged."""
    from compression_tool.prune_module.latency_search import plan_for_latency
    from compression_tool.prune_module.repair import Repair

    model = randomize(Chain())
    params = [g.param for g in ChannelGraph(model, SIZE).groups]
    damage = {p: {0.0: 0.0, 0.5: 0.1 * (i + 1), 0.9: 0.3 * (i + 1)} for i, p in enumerate(params)}

    def score(m):
        return {"headline": sum(t.numel() for t in m.parameters()) / 1e5}
    plan = plan_for_latency(model=model, model_name="chain", input_size=SIZE, damage=damage,
                            max_fraction=dict.fromkeys(params, 0.9), goal=LatencyGoal(stub_runtime, target_ratio=0.6),
                            repair=Repair(), evaluator=score, repeats=1, steps=8, cache_dir=tmp_path, progress=False)
    shapes = [m for m in plan.measured if m.shape]
    assert shapes and all(m.accuracy is not None and m.expected_ratio is not None for m in shapes)
    for m in shapes:  # built on widths the table allows
        assert all(w in plan.table.allowed_widths(p) or w == plan.table.groups[p].full for p, w in m.widths.items())
    meeting = [m for m in plan.measured if m.ratio <= 0.6]
    assert plan.chosen in meeting and plan.chosen.accuracy == max(m.accuracy for m in meeting)
    cached = json.loads(next(tmp_path.glob("chain_*.json")).read_text())["checks"]
    assert sorted(c[2] for c in cached if len(c) > 2) == sorted(m.shape for m in shapes)


def synthetic_table() -> LatencyTable:
    """Two independent groups: A saves 1 ms per step, B 2 ms; B's damage is twice A's per step."""
    groups = {"a.weight": GroupLatency(4, [0], {3: [0.75], 2: [0.5], 1: [0.25]}),
              "b.weight": GroupLatency(4, [1], {3: [0.75], 2: [0.5], 1: [0.25]})}
    return LatencyTable({}, ["a", "b"], [4.0, 8.0], 0.0, groups)


def test_greedy_path_takes_the_cheapest_damage_per_ms_first():
    table = synthetic_table()
    damage = {"a.weight": {0.0: 0.0, 0.25: 0.01, 0.5: 0.02, 0.75: 0.03},
              "b.weight": {0.0: 0.0, 0.25: 0.04, 0.5: 0.08, 0.75: 0.12}}
    path = greedy_path(table, damage, {"a.weight": 0.75, "b.weight": 0.5})
    # A: 0.01 per ms, B: 0.02 per ms: A goes all the way first, then B, which stops at its measured 0.5
    assert [p.widths for p in path] == [{"a.weight": 4, "b.weight": 4}, {"a.weight": 3, "b.weight": 4},
                                        {"a.weight": 2, "b.weight": 4}, {"a.weight": 1, "b.weight": 4},
                                        {"a.weight": 1, "b.weight": 3}, {"a.weight": 1, "b.weight": 2}]
    assert [p.predicted_ms for p in path] == [12, 11, 10, 9, 7, 5]


def test_the_curves_shapes_are_fitted_to_a_predicted_latency_on_allowed_widths():
    table = synthetic_table()
    damage = {"a.weight": {0.0: 0.0, 0.25: 0.01, 0.5: 0.02, 0.75: 0.03},
              "b.weight": {0.0: 0.0, 0.25: 0.04, 0.5: 0.08, 0.75: 0.12}}
    shapes = shaped_widths(table, damage, {"a.weight": 0.75, "b.weight": 0.75}, 9.0)
    assert shapes["uniform"] == {"a.weight": 3, "b.weight": 3}  # 3 + 6 ms: one step each
    # equal damage: A, four times less hurt per step, goes deeper than B
    assert shapes["equal damage"]["a.weight"] < shapes["equal damage"]["b.weight"]
    for widths in shapes.values():
        assert table.predict(widths) <= 9.0 and all(w in (1, 2, 3, 4) for w in widths.values())
    assert shaped_widths(table, damage, {"a.weight": 0.25, "b.weight": 0.25}, 6.0) == {}  # deeper than the curves


def rivals_made(made: dict, asked: list | None = None) -> Rivals:
    """made: {shape: (measured ratio, accuracy)}, whatever the aim; `asked` records (shape, fit) measured."""
    def measure(widths, shape, fit):
        if asked is not None:
            asked.append((shape, fit))
        ratio, accuracy = made[shape]
        return Measured(None, widths, widths["g"][1], 10 * ratio, 10.0, accuracy, shape=shape, fit=fit)
    return Rivals(lambda shape, table_ms: {"g": (shape, table_ms)}, measure)


def test_a_more_accurate_shape_that_meets_a_latency_target_is_kept():
    measure, _ = fake_measure()
    made = {"uniform": (0.69, 0.99), "halfway to equal damage": (0.72, 0.995), "equal damage": (0.60, 0.97)}
    asked = []
    chosen, measured = choose(path_of(8), LatencyGoal(target_ratio=0.7), measure, None,
                              rivals=rivals_made(made, asked))
    # halfway misses 0.7 and equal damage beats it by far: both fitted twice
    assert asked == [("uniform", 1), ("halfway to equal damage", 1), ("halfway to equal damage", 2),
                     ("equal damage", 1), ("equal damage", 2)]
    assert chosen.shape == "uniform" and chosen.name == "uniform shape"  # 0.995 misses the target
    assert [m.name for m in measured] == ["point 3", "uniform shape", "halfway to equal damage shape",
                                          "halfway to equal damage shape (fit 2)", "equal damage shape",
                                          "equal damage shape (fit 2)"]
    less_accurate = rivals_made(dict.fromkeys(made, (0.69, 0.90)))
    assert choose(path_of(8), LatencyGoal(target_ratio=0.7), measure, None, rivals=less_accurate)[0].index == 3


def test_a_shape_fitted_to_widths_already_measured_is_not_measured_again():
    measure, _ = fake_measure()
    asked = []
    same = Rivals(lambda shape, table_ms: {"g": shape},
                  lambda widths, shape, fit: asked.append(shape) or Measured(None, widths, 6.0, 6.0, 10.0, 0.9,
                                                                             shape=shape, fit=fit))
    choose(path_of(8), LatencyGoal(target_ratio=0.7), measure, None, rivals=same)
    assert asked == ["uniform", "halfway to equal damage", "equal damage"]  # beat by far, the refit lands alike


def test_each_shape_is_refitted_with_its_own_saving_model():
    """The uniform shape saves twice what the table predicts: its second fit aims at half the table saving."""
    measure, _ = fake_measure()
    aims = []

    def widths(shape, table_ms):
        aims.append(table_ms)
        return {"g": (shape, table_ms)} if shape == "uniform" else None

    def build(widths, shape, fit):
        table_ms = widths["g"][1]
        ratio = 1 - 2 * (1 - table_ms / 10)
        return Measured(None, widths, table_ms, ratio * 10, 10.0, 0.99 + fit / 1000, shape=shape, fit=fit)
    chosen, measured = choose(path_of(8), LatencyGoal(target_ratio=0.7), measure, None, rivals=Rivals(widths, build))
    first, second = [m for m in measured if m.shape]
    assert aims[0] == pytest.approx(7.0) and first.ratio == pytest.approx(0.4) and second.fit == 2
    slope = (0.6 + 0.2) / (0.3 + 0.2)  # its one check, with the table's word as one more
    assert aims[1] == pytest.approx(10 * (1 - 0.3 / slope)) and chosen is second
    assert first.check(10.0)[2] == "uniform" and len(measured[0].check(10.0)) == 2


def test_under_a_floor_the_shapes_are_not_tried():
    """The fastest schedule that passes a noisy score is kept: each extra candidate near the floor is one more
    chance to keep one that passed by luck."""
    measure, _ = fake_measure()
    asked = []
    chosen, measured = choose(path_of(10), LatencyGoal(max_accuracy_drop=3.5), measure, 0.98 - 0.035,
                              rivals=rivals_made(dict.fromkeys(["uniform"], (0.5, 0.99)), asked))
    assert asked == [] and chosen.index == 3 and not any(m.shape for m in measured)


def test_ratios_give_back_the_exact_widths():
    full = {"a.weight": 1000, "b.weight": 3, "c.weight": 512}
    ratios = ratios_for({"a.weight": 667, "b.weight": 2, "c.weight": 512}, full)
    assert "c.weight" not in ratios
    for param, width in (("a.weight", 667), ("b.weight", 2)):
        assert full[param] - len(channels_to_remove(torch.arange(full[param]).float(), ratios[param])) == width


def test_schedule_yaml_keeps_four_decimals(tmp_path):
    write_schedule(tmp_path / "s.yaml", {"a.weight": 0.3337, "b.weight": 0.3}, (112, 112))
    assert read_schedule(tmp_path / "s.yaml") == {"a.weight": 0.3337, "b.weight": 0.3}


def path_of(n: int) -> list:
    return [PathPoint({"g": 10 - i}, 10.0 - i) for i in range(n)]  # unpruned 10 ms, 1 ms per step


def fake_measure(slowdown: float = 1.0, accuracy=lambda i: 0.98 - 0.01 * i, unpruned: float = 10.0):
    calls = []

    def measure(i):
        calls.append(i)
        return Measured(i, {"g": 10 - i}, 10.0 - i, (10.0 - i) * slowdown, unpruned, accuracy(i))
    return measure, calls


def test_choose_a_latency_ratio_moves_on_when_a_point_measures_slower():
    measure, calls = fake_measure(slowdown=1.15)
    chosen, measured = choose(path_of(8), LatencyGoal(target_ratio=0.7), measure, None)
    assert chosen.ratio <= 0.7 and calls[0] == 3 and chosen.index > 3
    assert [m.index for m in measured] == sorted(calls)


def test_the_prediction_learns_how_much_of_the_tables_saving_whole_models_save():
    """Whole models save 0.6 of what the table predicts: the first point is predicted from the table as it is, each
    later one from the saving model the earlier ones fitted, and the aim follows it."""
    def measure(i):
        return Measured(i, {"g": 10 - i}, 10.0 - i, 12.0 * (1 - 0.6 * i / 10), 12.0, 0.98 - 0.01 * i)
    chosen, measured = choose(path_of(10), LatencyGoal(target_ratio=0.71), measure, None)
    first, *later = measured
    assert first.index == 3 and first.expected_ratio == pytest.approx(0.7) and first.ratio == pytest.approx(0.82)
    slope = (0.18 + 0.2) / (0.3 + 0.2)  # its check, with the table's word as one more
    assert later[0].expected_ratio == pytest.approx(1 - slope * later[0].index / 10)
    assert chosen.ratio <= 0.71 and chosen is later[-1]


def test_the_saving_model_is_a_line_once_the_checks_spread_and_a_ratio_before():
    assert SavingModel.fitted([]) == SavingModel(1.0, 0.0)
    # before a line: the ratio of sums, the table's word counted as a check of 0.2 saved as predicted
    assert SavingModel.fitted([[0.1, 0.02], [0.3, 0.22]]).slope == pytest.approx((0.02 + 0.22 + 0.2) / (0.4 + 0.2))
    line = SavingModel.fitted([[0.1, 0.04], [0.3, 0.26], [0.5, 0.48]])  # saving = 1.1 x predicted - 0.07
    assert (line.slope, line.offset) == (pytest.approx(1.1), pytest.approx(-0.07))
    assert line.table_saving_for(line.saving(0.42)) == pytest.approx(0.42)
    assert SavingModel.fitted([[0.2, -0.2]]).slope == 0.25  # a slower point is noise, bounded


def test_earlier_searches_checks_predict_the_first_point():
    def measure(i):
        return Measured(i, {"g": 10 - i}, 10.0 - i, 12.0 * (1 - 0.6 * i / 10), 12.0)
    chosen, measured = choose(path_of(10), LatencyGoal(target_ratio=0.71), measure, None,
                              checks=[[0.2, 0.12], [0.4, 0.24], [0.6, 0.36]])  # a line: saving 0.6 x predicted
    assert len(measured) == 1 and chosen.ratio <= 0.71 and chosen.expected_ratio == pytest.approx(chosen.ratio)


def test_a_point_far_faster_than_a_latency_target_is_walked_back_to_a_wider_one():
    """Points 3-6 time as the unpruned model (no saving), from 7 on as the table says: the first aim (point 5)
    is over the target, the next try (the path's end) far under it; the search steps back to point 7, the
    widest point that meets the target."""
    def measure(i):
        return Measured(i, {"g": 10 - i}, 10.0 - i, 10.0 if i < 7 else 10.0 - i, 10.0)
    chosen, measured = choose(path_of(10), LatencyGoal(target_ratio=0.5), measure, None)
    assert [m.index for m in measured][-1] == 9 and chosen.index == 7 and chosen.ratio <= 0.5 - 0.0


def test_choose_under_a_floor_is_the_fastest_measured_within_it():
    measure, calls = fake_measure()
    chosen, measured = choose(path_of(10), LatencyGoal(max_accuracy_drop=3.5), measure, 0.98 - 0.035)
    assert chosen.index == 3  # 0.95 >= 0.945 > 0.94
    assert all(m.accuracy < 0.945 or m.measured_ms >= chosen.measured_ms for m in measured)


def test_the_fastest_within_a_floor_is_judged_beside_the_unpruned_model():
    """The CPU slows down while the wider point 2 is timed: its milliseconds are fewer than point 3's, its ratio to
    the unpruned model timed beside it is not; point 3 is the faster schedule."""
    def measure(i):
        unpruned = 6.0 if i == 2 else 10.0
        return Measured(i, {"g": 10 - i}, 10.0 - i, (10.0 - i) / 10.0 * unpruned, unpruned, 0.98 - 0.01 * i)
    chosen, _ = choose(path_of(10), LatencyGoal(max_accuracy_drop=3.5), measure, 0.98 - 0.035)
    assert chosen.index == 3


def test_no_pruned_schedule_faster_than_the_unpruned_model_writes_nothing(tmp_path):
    measure, _ = fake_measure(slowdown=1.6)  # every pruned point is slower than the unpruned model
    output = tmp_path / "s.yaml"

    def run():
        choose(path_of(6), LatencyGoal(max_accuracy_drop=1.0), measure, 0.97)
        write_schedule(output, {"g": 0.5}, (112, 112))
    with pytest.raises(NoFasterSchedule, match="deploy the unpruned model"):
        run()
    assert exit_code(run) == 3 and not output.exists()


def test_goal_checks_itself():
    with pytest.raises(UserError, match="--target_latency_ratio 1.5"):
        LatencyGoal(target_ratio=1.5)
    with pytest.raises(UserError, match="not both"):
        LatencyGoal(target_ratio=0.5, target_ms=3)
    with pytest.raises(ValueError):
        Deployment("tensorrt")


def test_frontier_marks_pareto_points_and_plots(tmp_path):
    points = [{"label": "unpruned", "kind": "variant", "latency_ms": 4.0, "accuracy": 0.98},
              {"label": "point 1", "kind": "point", "latency_ms": 4.5, "accuracy": 0.97},
              {"label": "point 2", "kind": "chosen", "latency_ms": 3.0, "accuracy": 0.975},
              {"label": "point 3", "kind": "point", "latency_ms": 2.0, "accuracy": 0.95}]
    flags = pareto(points)
    assert flags == [True, False, True, True]
    for p, flag in zip(points, flags):
        p["pareto"], p["runtime"] = flag, "openvino-int8"
    png = plot_frontier({"deployment": {"runtime": "openvino-int8", "threads": 1, "batch": 1}, "points": points},
                        "10-fold accuracy", tmp_path / "frontier.png")
    assert png.stat().st_size > 1000
    json.dumps(points)


def test_cache_key_names_the_instruction_set_path(monkeypatch, tmp_path):
    """A table measured on the AVX2 path (caps set) is not read back on the native path, nor the reverse."""
    from compression_tool.prune_module.latency_table import cache_path, table_key

    deployment = Deployment("openvino-int8")
    monkeypatch.delenv("OV_CPU_MAX_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    native = cache_path(tmp_path, table_key("sface", (112, 112), deployment, {"a.weight": [8]}, 15))
    monkeypatch.setenv("OV_CPU_MAX_ISA", "AVX2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = cache_path(tmp_path, table_key("sface", (112, 112), deployment, {"a.weight": [8]}, 15))
    other_threads = cache_path(tmp_path, table_key("sface", (112, 112), Deployment("openvino-int8", threads=2),
                                                   {"a.weight": [8]}, 15))
    assert len({native, capped, other_threads}) == 3


def test_cli_accuracy_floor_writes_exact_widths_and_names_predicted_and_measured(tmp_path):
    """The wiring, on the compatibility fixture's model and pairs, timed in eager torch."""
    from tests.cli import ORL, read_json, run_in_process
    from tests.fixtures.make_fixtures import HERE, MODEL

    out = tmp_path / "s.yaml"
    proc = run_in_process("--csv", HERE / "sensitivity.csv", "--model", MODEL, "--runtime", "torch-fp32",
                          "--best_model_path", HERE / "inception_weights.pth", "--test_root_path", ORL,
                          "--img_list_label_path", HERE / "pairs.txt", "--max_accuracy_drop", 100,
                          "--latency_steps", 4, "--latency_repeats", 3, "--latency_cache", tmp_path / "cache",
                          "--output", out, "--result_json", tmp_path / "r.json",
                          script="pruning_analysis_tools/auto_make_yaml.py")
    assert proc.returncode == 0, proc.stderr
    result = read_json(tmp_path / "r.json")
    assert result["deployment"] == {"runtime": "torch-fp32", "threads": 1, "batch": 1}
    chosen = [c for c in result["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["measured_ms"] == result["measured_ms"] < chosen[0]["unpruned_ms"]
    assert all(Path(c["file"]).is_file() for c in result["candidates"])
    assert "predicted" in out.read_text() and read_schedule(out) == result["ratios"]
    assert list((tmp_path / "cache").glob("*.json"))


def test_a_latency_target_the_unpruned_model_meets_writes_nothing(tmp_path):
    from tests.cli import run_in_process
    from tests.fixtures.make_fixtures import HERE, MODEL

    proc = run_in_process("--csv", HERE / "sensitivity.csv", "--model", MODEL, "--runtime", "torch-fp32",
                          "--target_latency_ms", 1e6, "--latency_steps", 2, "--latency_repeats", 1,
                          "--latency_cache", tmp_path, "--output", tmp_path / "s.yaml",
                          script="pruning_analysis_tools/auto_make_yaml.py")
    assert proc.returncode == 3 and "already meets" in proc.stderr and not (tmp_path / "s.yaml").exists()


@pytest.mark.parametrize("flags, message", [
    (("--max_accuracy_drop", "1"), "--max_accuracy_drop needs the model and pairs"),
    (("--target_latency_ratio", "0.8", "--target_macs_ratio", "0.5"), "give one kind of target"),
    (("--target_latency_ratio", "0"), "--target_latency_ratio 0.0: must be in (0, 1]")])
def test_cli_latency_mistakes_are_one_line(tmp_path, flags, message):
    from tests.cli import one_line_error, run_in_process
    from tests.fixtures.make_fixtures import HERE, MODEL

    proc = run_in_process("--csv", HERE / "sensitivity.csv", "--model", MODEL, "--runtime", "torch-fp32",
                          "--latency_steps", 2, "--latency_repeats", 1, "--latency_cache", tmp_path,
                          "--output", tmp_path / "s.yaml", *flags, script="pruning_analysis_tools/auto_make_yaml.py")
    assert message in one_line_error(proc) and not (tmp_path / "s.yaml").exists()

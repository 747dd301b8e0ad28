"""Models the tool was not written for: torchvision's families (concatenations, grouped convolutions,
LayerNorm, squeeze-excitation) and a concatenating face model given by file. Every prunable group thins
exactly as zeroing its channels would; all groups pruned together run and equal the zeroed model; what
cannot be pruned is listed with its reason and refused in a schedule with one line."""
import copy

import pytest
import torch
import torch.nn as nn
import torchvision

from compression_tool.prune_module.criteria import L1
from compression_tool.prune_module.graph import ChannelGraph, apply_plan
from compression_tool.prune_module.repair import refittable_consumers
from compression_tool.prune_module.thinning import prune_model
from tests.helpers import randomize, zero_channels

SIZE = (64, 64)
TORCHVISION = {"googlenet": dict(aux_logits=False, init_weights=True), "densenet121": {}, "regnet_y_400mf": {},
               "convnext_tiny": {}, "resnet50": {}, "mobilenet_v3_large": {}, "efficientnet_b0": {}}
SAMPLED = 4  # groups checked one by one per model (spread over the depth); all of them are pruned together


def torchvision_model(name):
    torch.manual_seed(0)
    return randomize(getattr(torchvision.models, name)(weights=None, num_classes=16, **TORCHVISION[name]))


def assert_close(got, expected, what):
    scale = max(1.0, expected.abs().max().item())
    assert (got - expected).abs().max().item() <= 1e-4 * scale, what


@pytest.fixture(scope="module", params=list(TORCHVISION))
def model_and_graph(request):
    model = torchvision_model(request.param)
    return request.param, model, ChannelGraph(model, SIZE)


def test_each_group_thins_as_zeroing(model_and_graph):
    name, model, graph = model_and_graph
    assert graph.groups, name
    x = torch.randn(2, 3, *SIZE)
    step = max(1, len(graph.groups) // SAMPLED)
    for group in graph.groups[::step][:SAMPLED + 1]:
        plan = graph.plan(group, group.channels_to_remove(L1().scores(model, group), 0.4))
        with torch.no_grad():
            expected = zero_channels(copy.deepcopy(model), plan)(x)
            got = apply_plan(copy.deepcopy(model), plan)(x)
        assert_close(got, expected, (name, group.param))


def test_all_groups_pruned_together_equal_the_zeroed_model(model_and_graph):
    name, model, graph = model_and_graph
    x = torch.randn(2, 3, *SIZE)
    ratios = {g.param: 0.3 for g in graph.groups}
    reference = copy.deepcopy(model)
    for group in graph.groups:  # plans on the unpruned model, all silenced at once
        zero_channels(reference, graph.plan(group, group.channels_to_remove(L1().scores(model, group), 0.3)))
    pruned = copy.deepcopy(model)
    prune_model(pruned, SIZE, ratios)
    with torch.no_grad():
        assert_close(pruned(x), reference(x), name)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_grouped_convs_and_layernorm_are_pruned_not_excluded():
    regnet = ChannelGraph(torchvision_model("regnet_y_400mf"), SIZE)
    convnext = ChannelGraph(torchvision_model("convnext_tiny"), SIZE)
    assert not regnet.excluded and not convnext.excluded
    assert {g.channel_groups for g in regnet.groups} > {1}  # the grouped convs' blocks
    assert any(g.renormalised for g in convnext.groups)  # the residual streams under LayerNorm


class ConcatIntoGroupedConv(nn.Module):
    """A grouped conv reading a concatenation (its blocks straddle two producers), and a GroupNorm."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 6, 1), nn.Conv2d(3, 2, 1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.conv, self.norm, self.head = nn.Conv2d(8, 8, 1), nn.GroupNorm(2, 8), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.grouped(torch.cat([self.left(x), self.right(x)], 1))
        return self.head(self.norm(self.conv(x))).mean((2, 3))


def test_unprunable_groups_are_named_with_their_reason():
    graph = ChannelGraph(ConcatIntoGroupedConv(), (8, 8))
    assert set(graph.excluded) == {"left.weight", "right.weight", "conv.weight"}
    assert "grouped convolution (groups=4) through a concatenation" in graph.excluded["left.weight"]
    assert "GroupNorm" in graph.excluded["conv.weight"]
    assert [g.param for g in graph.groups] == ["grouped.weight"]
    with pytest.raises(Exception, match="left.weight: cannot be pruned: .*grouped convolution"):
        graph.group("left.weight")


def test_a_concatenating_face_model_by_file_through_every_step(tmp_path):
    """sa -> budget schedule -> prune with repair -> the pruned checkpoint reloads by itself -> INT8, on a
    user's Inception-ResNet-style file (random weights: this checks the wiring, not the accuracy)."""
    from tests.cli import ORL, read_json, run_cli, subset_pairs
    from tests.inception_face import build

    model_ref = "tests/inception_face.py:build"
    weights = tmp_path / "w.pth"
    torch.save(randomize(build()).state_dict(), weights)
    pairs = subset_pairs(tmp_path, 24)
    common = ["--model", model_ref, "--test_root_path", ORL, "--img_list_label_path", pairs, "--device", "cpu"]
    run_cli("--mode", "sa", "--best_model_path", weights, "--sparsities", "0.0,0.5", "--reconstruct", "8",
            "--sensitivity_csv_path", tmp_path / "sa", *common)
    csv_path = next((tmp_path / "sa").glob("*.csv"))
    run_cli("--csv", csv_path, "--model", model_ref, "--target_macs_ratio", "0.5", "--output", tmp_path / "s.yaml",
            "--best_model_path", weights, "--test_root_path", ORL, "--img_list_label_path", pairs, "--reconstruct",
            "8", script="pruning_analysis_tools/auto_make_yaml.py")
    run_cli("--mode", "prune", "--best_model_path", weights, "--yaml_path", tmp_path / "s.yaml", "--reconstruct", "8",
            "--save_model_pt", "--pruned_save_model_path", tmp_path, "--layers_out_path", tmp_path / "out.txt",
            "--result_json", tmp_path / "p.json", *common)
    pruned = read_json(tmp_path / "p.json")
    assert pruned["macs_after"] < 0.75 * pruned["macs_before"]
    proc = run_cli("--mode", "test", "--best_model_path", pruned["checkpoint"], "--result_json", tmp_path / "t.json",
                   "--roc_png", tmp_path / "roc.png", *common[2:])
    assert read_json(tmp_path / "t.json")["accuracy"] == pytest.approx(pruned["accuracy_after"], abs=1e-9)
    assert "preprocessing: 112x112 RGB, (pixel - 127.5) / 128" in proc.stdout
    run_cli("--mode", "quantization", "--best_model_path", pruned["checkpoint"], "--calib_batches", "1",
            "--validation_images", "8", "--latency_batches", "1", "--latency_repeats", "2",
            "--quantized_save_model_path", tmp_path / "q", "--result_json", tmp_path / "q.json", *common[2:])
    assert read_json(tmp_path / "q.json")["cosine_mean"] > 0.9


def tiny_regnet_and_convnext():
    """RegNet (grouped convs, squeeze-excitation) and ConvNeXt (permutes, LayerNorm, layer scale), sized
    for a unit test."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    from torchvision.models.regnet import BlockParams, RegNet

    torch.manual_seed(0)
    regnet = RegNet(BlockParams.from_init_params(depth=2, w_0=16, w_a=8, w_m=2, group_width=4), num_classes=8)
    convnext = ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=8)
    return {"regnet": randomize(regnet), "convnext": randomize(convnext)}


def test_sensitivity_fast_path_equals_naive_on_grouped_convs_and_layernorm(tmp_path):
    from compression_tool.model_define.registry import InputSpec
    from compression_tool.prune_module.sensitivity import SensitivityAnalysis
    from compression_tool.test_module.evaluate import make_evaluator
    from tests.cli import ORL, subset_pairs

    evaluator = make_evaluator("lfw", ORL, subset_pairs(tmp_path, 12), InputSpec((112, 112)), batch_size=16,
                               cache_images=True, progress=False)
    for name, model in tiny_regnet_and_convnext().items():
        rows = {}
        for naive in (False, True):
            analysis = SensitivityAnalysis(model, (112, 112), evaluator, naive=naive)
            assert naive or analysis.splitter is not None, name
            baseline = analysis.baseline()
            rows[naive] = [row for group in analysis.graph.groups for row in analysis.rows(group, [0.0, 0.5], baseline)]
        assert rows[False] == rows[True], name
        assert len(rows[False]) == 2 * len(analysis.graph.groups) and not analysis.graph.excluded, name


def test_sensitivity_repair_grams_per_group_equal_grams_of_all_groups(tmp_path):
    """With --reconstruct, the grams of every group's refitted layers come from one pass when they fit in
    memory, else group by group: the rows are the same. The k x k branch convs are refitted too."""
    from compression_tool.model_define.registry import InputSpec
    from compression_tool.prune_module.sensitivity import SensitivityAnalysis
    from compression_tool.test_module.evaluate import make_evaluator
    from tests.cli import ORL, subset_pairs
    from tests.inception_face import build

    torch.manual_seed(0)
    model = randomize(build())
    evaluator = make_evaluator("lfw", ORL, subset_pairs(tmp_path, 12), InputSpec((112, 112)), batch_size=16,
                               cache_images=True, progress=False)
    images = torch.randn(8, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    rows = {}
    for label, repair, cache_bytes in (("all", images, None), ("per group", images, 1), ("none", None, None)):
        analysis = SensitivityAnalysis(model, (112, 112), evaluator, reconstruction=repair, cache_bytes=cache_bytes)
        assert (analysis._grams[0] == "all") == (label == "all")
        baseline = analysis.baseline()
        rows[label] = [row["cosine"] for group in analysis.graph.groups for row in analysis.rows(group, [0.5], baseline)]
    assert rows["all"] == rows["per group"]
    assert rows["all"] != rows["none"]
    graph = analysis.graph
    refitted = refittable_consumers([graph.plan(g, [0]) for g in graph.groups], graph.modules)
    assert any(getattr(graph.modules[name], "kernel_size", (1, 1)) != (1, 1) for name in refitted)


def test_groups_taken_from_another_copys_graph_prune_alike():
    """auto_make_yaml counts many schedules and finds the groups once (ChannelGraph groups_of)."""
    model = torchvision_model("googlenet")
    template = ChannelGraph(copy.deepcopy(model), SIZE)
    ratios = {g.param: 0.3 for g in template.groups}
    fresh, reused = copy.deepcopy(model), copy.deepcopy(model)
    prune_model(fresh, SIZE, ratios)
    graph = ChannelGraph(reused, SIZE, groups_of=template)
    assert graph.groups == template.groups and graph.excluded == template.excluded
    prune_model(reused, SIZE, ratios, graph=graph)
    assert [p.shape for p in reused.parameters()] == [p.shape for p in fresh.parameters()]

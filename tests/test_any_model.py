"""Models the tool was not written for: torchvision's families (concatenations, grouped convolutions,
LayerNorm, squeeze-excitation) and a concatenating face model given by file. Every prunable group thins
exactly as zeroing its channels would; all groups pruned together run and equal the zeroed model; what
cannot be pruned is listed with its reason and refused in a schedule with one line."""
import copy

import pytest
import torch
import torchvision

from pruning import ChannelGraph, apply_plan, channels_to_remove, group_scores, prune_model
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
        plan = graph.plan(group, channels_to_remove(group_scores(model, group), 0.4))
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
        zero_channels(reference, graph.plan(group, channels_to_remove(group_scores(model, group), 0.3)))
    pruned = copy.deepcopy(model)
    prune_model(pruned, SIZE, ratios)
    with torch.no_grad():
        assert_close(pruned(x), reference(x), name)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_unprunable_groups_are_named_with_their_reason():
    graph = ChannelGraph(torchvision_model("regnet_y_400mf"), SIZE)
    assert any("grouped convolution" in why for why in graph.excluded.values())
    param = next(iter(graph.excluded))
    with pytest.raises(Exception, match="cannot be pruned: .*grouped convolution"):
        graph.group(param)
    convnext = ChannelGraph(torchvision_model("convnext_tiny"), SIZE)
    assert any("LayerNorm" in why for why in convnext.excluded.values())
    assert convnext.groups  # the MLPs' hidden widths (Linear leaders) are prunable

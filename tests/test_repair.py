"""Least-squares repair: refitting in forward order on what really reaches each layer (prune mode) beats
refitting every layer from the unpruned inputs, and the two agree when only one group is pruned (the
sensitivity analysis case)."""
import copy

import pytest
import torch
import torch.nn as nn

from compression_tool.prune_module.graph import ChannelGraph, call_order
from compression_tool.prune_module.repair import (Repair, following_norms, input_grams, reconstruct,
                                                  reconstruct_sequentially, refit_problem, refittable_consumers,
                                                  removed_channels)
from compression_tool.prune_module.thinning import prune_and_repair, prune_model
from tests.helpers import randomize

SIZE = (16, 16)


def block(i, o, k=1, stride=1):
    return [nn.Conv2d(i, o, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.PReLU(o)]


def chain():
    torch.manual_seed(0)
    return randomize(nn.Sequential(*block(3, 16, 3), *block(16, 24), *block(24, 24), nn.Conv2d(24, 8, 1)))


def spatial_chain():
    """A strided 3x3 conv and a Linear (after pooling, with a BatchNorm1d) lose inputs."""
    torch.manual_seed(0)
    return randomize(nn.Sequential(*block(3, 16, 3), *block(16, 24, 3, stride=2), nn.AdaptiveAvgPool2d(2),
                                   nn.Flatten(), nn.Linear(96, 8, bias=False), nn.BatchNorm1d(8)))


def repaired(ratios, sequential, build=chain):
    model = build()
    original, graph = copy.deepcopy(model), ChannelGraph(model, SIZE)
    images = torch.randn(64, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    plans = prune_model(model, SIZE, ratios, graph=graph)
    if sequential is None:
        return model, original, images
    norms = following_norms(original, SIZE)
    if sequential:
        reconstruct_sequentially(model, original, plans, images, norms, call_order(original, SIZE), batch_size=16)
    else:
        grams = input_grams(original, images, refittable_consumers(plans, graph.modules), batch_size=16)
        reconstruct(model, original, plans, grams, norms)
    return model, original, images


@torch.no_grad()
def error(ratios, sequential, build=chain):
    model, original, images = repaired(ratios, sequential, build)
    return (model(images) - original(images)).pow(2).mean().item()


def test_sequential_refit_beats_refitting_from_unpruned_inputs():
    ratios = {"0.weight": 0.5, "3.weight": 0.5, "6.weight": 0.5}
    none, independent, sequential = (error(ratios, s) for s in (None, False, True))
    assert sequential < independent < 0.5 * none, (none, independent, sequential)


@pytest.mark.parametrize("build, group", [(chain, "3.weight"), (spatial_chain, "0.weight"),
                                          (spatial_chain, "3.weight")])
def test_one_group_both_refits_agree(build, group):
    a, _, _ = repaired({group: 0.4}, sequential=True, build=build)
    b, _, _ = repaired({group: 0.4}, sequential=False, build=build)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-5), name


@pytest.mark.parametrize("group", ["0.weight", "3.weight"])  # a strided 3x3 conv, a Linear lose inputs
def test_kxk_convs_and_linears_are_refitted(group):
    none, sequential = (error({group: 0.5}, s, spatial_chain) for s in (None, True))
    assert sequential < 0.5 * none, (none, sequential)


def test_layers_least_squares_cannot_refit_say_why():
    assert refit_problem(nn.Conv2d(8, 8, 3, groups=2)) == "grouped convolution (groups=2)"
    assert "reflect" in refit_problem(nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"))
    assert "50176 input columns" in refit_problem(nn.Linear(1024 * 7 * 7, 128))
    assert refit_problem(nn.Conv2d(512, 512, 3)) is None
    model = spatial_chain()
    original, size = copy.deepcopy(model), (16, 16)
    model[3] = nn.Conv2d(16, 24, 3, 2, padding=1, groups=2, bias=False)  # grouped: thinning keeps it, no refit
    original[3] = copy.deepcopy(model[3])
    images = torch.randn(8, 3, *size)
    plans = prune_model(model, size, {"0.weight": 0.5})
    skipped = reconstruct_sequentially(model, original, plans, images, following_norms(original, size),
                                       call_order(original, size))
    assert skipped == {"3": "grouped convolution (groups=2)"}


def inception(size=(32, 32)):
    """The Inception-ResNet-style face model: its trunk conv block2.project is thinned by two groups, the
    reduction's own conv and (behind the concatenation, through the max-pool) the first trunk's group."""
    from tests.inception_face import build
    torch.manual_seed(0)
    model = randomize(build())
    return model, ChannelGraph(model, size)


def test_removed_channels_are_those_gone_from_each_layer_when_groups_share_a_layer():
    model, graph = inception()
    original = copy.deepcopy(model)
    # the reduction's group first: the trunk's later indices on block2.project are then shifted
    order = ["reduce.conv.0.weight", "stem.1.0.weight"] + [g.param for g in graph.groups]
    plans = prune_model(model, (32, 32), {p: 0.5 for p in dict.fromkeys(order)}, graph=graph)
    removed_in, removed_out = removed_channels(plans)
    assert sum(any(e.module == "block2.project" and e.outputs for e in plan) for plan in plans) == 2
    before = dict(original.named_modules())
    for name, layer in model.named_modules():
        weight = getattr(layer, "weight", None)
        if weight is None:
            continue
        expected = before[name].weight.detach()
        keep_out = [i for i in range(expected.shape[0]) if i not in removed_out.get(name, ())]
        expected = expected[keep_out]
        if weight.dim() > 1 and not (isinstance(layer, nn.Conv2d) and layer.groups > 1):
            expected = expected[:, [i for i in range(expected.shape[1]) if i not in removed_in.get(name, ())]]
        assert torch.equal(weight.detach(), expected), name


@pytest.mark.parametrize("reverse", [False, True])
def test_every_group_of_a_concatenating_model_pruned_and_repaired(reverse):
    model, graph = inception()
    images = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ratios = {g.param: 0.5 for g in graph.groups[::-1 if reverse else 1]}
    errors = {}
    for reconstruct in (0, 32):
        pruned = copy.deepcopy(model)
        thinned = prune_and_repair(pruned, (32, 32), ratios, repair=Repair(images, reconstruct))
        with torch.no_grad():
            errors[reconstruct] = (pruned(images) - model(images)).pow(2).mean().item()
    assert not thinned.not_refitted
    assert {"block2.project", "block1.branch3.1.0", "head.2"} <= set(thinned.refitted)  # 1x1, 3x3, Linear
    assert errors[32] <= errors[0], errors

"""Thinning is exact: a pruned model computes what the unpruned one computes with the same channels
silenced across the whole coupled group; and a pruned checkpoint reloads by name + keep."""
import copy

import pytest
import torch

from compression_tool.commen_utils.checkpoint import load_checkpoint, save_checkpoint
from compression_tool.model_define import create_model, get_entry
from compression_tool.model_define.keep import layer_width, record_keep
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.criteria import L1
from compression_tool.prune_module.graph import ChannelGraph, apply_plan
from compression_tool.prune_module.thinning import prune_model
from tests.helpers import randomize, zero_channels

ZOO = ["sface", "mobilefacenet", "mobilefacenet_y2", "resnet34", "resnet50", "resnet100", "resnet50_imagenet",
       "shufflefacenet_v2", "mobilenetv3"]


def small(name):
    kwargs = {"embedding_size": 32} if get_entry(name).task == "verification" and name != "sface" else {}
    return randomize(create_model(name, **kwargs))


def pick_groups(graph):
    """Up to four groups spread over the network (first, residual/middle, last)."""
    groups = graph.groups
    return {g.param: g for g in (groups[0], groups[len(groups) // 3], groups[len(groups) // 2], groups[-1])}


@pytest.mark.parametrize("name", ZOO)
def test_thinning_equals_zeroing(name):
    model = small(name)
    size = get_entry(name).spec.size
    x = torch.randn(2, 3, *size) * 50
    graph = ChannelGraph(model, size)
    assert graph.groups, name
    for param, group in pick_groups(graph).items():
        idxs = group.channels_to_remove(L1().scores(model, group), 0.4)
        plan = graph.plan(group, idxs)
        pruned = apply_plan(copy.deepcopy(model), plan)
        reference = zero_channels(copy.deepcopy(model), plan)
        with torch.no_grad():
            expected, got = reference(x), pruned(x)
        scale = expected.abs().max().item() + 1e-6
        assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, scale), (name, param)
        assert layer_width(dict(pruned.named_modules())[group.leader]) == group.width - len(idxs)


@pytest.mark.parametrize("name", ["sface", "resnet34", "mobilefacenet_y2", "shufflefacenet_v2"])
def test_pruned_checkpoint_reloads_by_name_and_keep(name, tmp_path):
    model = small(name)
    size = get_entry(name).spec.size
    graph = ChannelGraph(model, size)
    prune_model(model, size, {g.param: 0.5 for g in graph.groups[::2]})
    emb = 32 if name != "sface" else 128
    path = save_checkpoint(tmp_path / "pruned.pt", model, name, keep=record_keep(model), input_size=size,
                           embedding_size=emb)
    reloaded = load_model(checkpoint=path).model
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reloaded(x))
    assert record_keep(reloaded) == load_checkpoint(path)[1]["keep"]


def test_output_layer_is_never_prunable():
    graph = ChannelGraph(create_model("sface"), (112, 112))
    assert "fc.weight" not in graph.by_param
    assert graph.by_param["body.conv_14.conv.weight"].width == 1024
    assert len(graph.groups) == 14  # 27 convs: every depthwise conv is coupled to its producer


def test_residual_stage_is_one_group():
    graph = ChannelGraph(create_model("resnet34"), (112, 112))
    stage = graph.by_param["layer1.0.conv2.weight"]
    assert set(stage.producers) == {"layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2", "layer1.0.downsample.0"}

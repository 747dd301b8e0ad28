"""Least-squares repair: refitting in forward order on what really reaches each layer (prune mode) beats
refitting every layer from the unpruned inputs, and the two agree when only one group is pruned (the
sensitivity analysis case)."""
import copy

import torch
import torch.nn as nn

from pruning import (ChannelGraph, call_order, consumers_of, following_norms, input_grams, prune_model,
                     reconstruct, reconstruct_sequentially)
from tests.helpers import randomize

SIZE = (16, 16)


def block(i, o, k=1):
    return [nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.PReLU(o)]


def chain():
    torch.manual_seed(0)
    return randomize(nn.Sequential(*block(3, 16, 3), *block(16, 24), *block(24, 24), nn.Conv2d(24, 8, 1)))


def repaired(ratios, sequential):
    model = chain()
    original, graph = copy.deepcopy(model), ChannelGraph(model, SIZE)
    images = torch.randn(64, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    plans = prune_model(model, SIZE, ratios, graph=graph)
    if sequential is None:
        return model, original, images
    norms = following_norms(original, SIZE)
    if sequential:
        reconstruct_sequentially(model, original, plans, images, norms, call_order(original, SIZE), batch_size=16)
    else:
        grams = input_grams(original, images, consumers_of(plans, graph.modules), batch_size=16)
        reconstruct(model, original, plans, grams, norms)
    return model, original, images


@torch.no_grad()
def error(ratios, sequential):
    model, original, images = repaired(ratios, sequential)
    return (model(images) - original(images)).pow(2).mean().item()


def test_sequential_refit_beats_refitting_from_unpruned_inputs():
    ratios = {"0.weight": 0.5, "3.weight": 0.5, "6.weight": 0.5}
    none, independent, sequential = (error(ratios, s) for s in (None, False, True))
    assert sequential < independent < 0.5 * none, (none, independent, sequential)


def test_one_group_both_refits_agree():
    one = {"3.weight": 0.4}
    a, _, _ = repaired(one, sequential=True)
    b, _, _ = repaired(one, sequential=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-5), name

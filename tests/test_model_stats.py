import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from compression_tool.commen_utils.model_stats import ThinnedMacs, count_macs
from compression_tool.model_define import create_model, get_entry
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.thinning import prune_model


@pytest.mark.parametrize("name", ["mobilefacenet", "shufflefacenet_v2"])
def test_thinned_macs_equal_a_counted_forward(name):
    size = get_entry(name).spec.size
    model = create_model(name).eval()
    macs = ThinnedMacs(model, size)
    assert macs.positions is not None
    thinned = copy.deepcopy(model)
    prune_model(thinned, size, {g.param: 0.3 for g in ChannelGraph(model, size).groups[::2]})
    assert macs(thinned) == count_macs(thinned, size) < count_macs(model, size)


class FunctionalConv(nn.Module):
    """A MAC that no nn.Conv2d module holds: the shortcut cannot see it and must count."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.kernel = nn.Parameter(torch.randn(4, 8, 1, 1))

    def forward(self, x):
        return F.conv2d(self.stem(x), self.kernel)


def test_macs_outside_modules_fall_back_to_counting():
    model = FunctionalConv()
    macs = ThinnedMacs(model, (16, 16))
    assert macs.positions is None
    assert macs(model) == count_macs(model, (16, 16)) == 14 * 14 * (8 * 27 + 4 * 8)

"""Least-squares reconstruction refits a 1x1 consumer so that the pruned network tracks the unpruned one
better than plain removal, on the calibration images and on other images."""
import copy

import torch

from compression_tool.model_define import create_model
from compression_tool.prune_module.repair import Repair
from compression_tool.prune_module.thinning import prune_and_repair
from tests.helpers import randomize


def test_reconstruction_brings_outputs_closer():
    torch.manual_seed(0)
    model = randomize(create_model("mobilefacenet", embedding_size=32))
    calibration, other = torch.randn(48, 3, 112, 112), torch.randn(8, 3, 112, 112)
    ratios = {"conv_23.conv.conv.weight": 0.5, "conv_4.model.0.conv.conv.weight": 0.5,
              "conv_45.conv.conv.weight": 0.5}
    plain, refit = copy.deepcopy(model), copy.deepcopy(model)
    prune_and_repair(plain, (112, 112), ratios)
    prune_and_repair(refit, (112, 112), ratios, repair=Repair(calibration, 48, 0))
    with torch.no_grad():
        for x in (calibration[:8], other):
            reference = model(x)
            assert (refit(x) - reference).norm() < 0.7 * (plain(x) - reference).norm()

"""Channel ranking: L1, FPGM as in the paper (signed filters), HRank computed in-tool and cached."""
import pytest
import torch
import torch.nn as nn

from compression_tool.model_define import create_model
from compression_tool.prune_module.criteria import HRank, fpgm_scores, l1_scores
from compression_tool.prune_module.graph import ChannelGraph, channels_to_remove
from compression_tool.prune_module.hrank import hrank_ranks
from compression_tool.prune_module.thinning import prune_model
from tests.helpers import randomize


def test_l1_and_fpgm_scores_by_hand():
    w = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0]]).reshape(3, 2, 1, 1)
    assert l1_scores(w).tolist() == [1.0, 1.0, 3.0]
    # distances: d01 = 2, d02 = sqrt(10), d12 = sqrt(10); signed filters 0 and 1 are far apart (|w| would
    # make them identical).
    expected = [2 + 10 ** 0.5, 2 + 10 ** 0.5, 2 * 10 ** 0.5]
    assert torch.allclose(fpgm_scores(w), torch.tensor(expected, dtype=torch.float64))


def test_channels_to_remove_keeps_one_and_rounds():
    scores = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 6.0, 7.0, 8.0, 9.0])
    assert channels_to_remove(scores, 0.3) == [1, 3, 5]
    assert len(channels_to_remove(scores, 0.99)) == 9
    assert len(channels_to_remove(torch.arange(20.0), 0.3, round_to=8)) == 20 - 16


def test_channels_to_remove_takes_the_same_offsets_in_every_block_of_a_grouped_conv():
    # 3 blocks of 4; offset 2 scores lowest on the blocks' mean although block 0 alone would drop offset 0
    scores = torch.tensor([0.0, 5.0, 1.0, 6.0, 9.0, 5.0, 1.0, 6.0, 9.0, 5.0, 1.0, 6.0])
    assert channels_to_remove(scores, 0.25, channel_groups=3) == [2, 6, 10]
    assert channels_to_remove(scores, 0.5, channel_groups=3) == [1, 2, 5, 6, 9, 10]  # means 6, 5, 1, 6
    # round_to counts the whole width: 3 blocks x 2 kept offsets = 6, a multiple of 6 (2 per block)
    assert len(channels_to_remove(torch.arange(24.0), 0.4, round_to=6, channel_groups=3)) == 24 - 12


def test_hrank_ranks_per_channel():
    model = randomize(create_model("mobilefacenet", embedding_size=16))
    graph = ChannelGraph(model, (112, 112))
    ranks = hrank_ranks(model, graph, torch.randn(4, 3, 112, 112), batch_size=2, batches=2)
    assert set(ranks) == {g.param for g in graph.groups}
    first = ranks["conv1.conv.weight"]
    assert first.shape == (64,) and 0 < first.max() <= 56  # rank of 56x56 maps
    prune_model(model, (112, 112), {"conv1.conv.weight": 0.5}, criterion=HRank(ranks))
    assert model.conv1.conv.out_channels == 32


def test_user_model_prunes_and_reloads(tmp_path):
    from compression_tool.commen_utils.checkpoint import save_checkpoint
    from compression_tool.model_define.keep import record_keep
    from compression_tool.model_define.loading import load_model
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n"
        "def build(input_size=(32, 32), embedding_size=8):\n"
        "    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.PReLU(16), nn.Conv2d(16, 8, 3),\n"
        "                         nn.Flatten(), nn.Linear(8 * 28 * 28, embedding_size))\n")
    name = f"{tmp_path}/tiny.py:build"
    model = randomize(create_model(name, input_size=(32, 32), embedding_size=8))
    prune_model(model, (32, 32), {"0.weight": 0.5})
    assert isinstance(model[0], nn.Conv2d) and model[0].out_channels == 8 and model[3].in_channels == 8
    path = save_checkpoint(tmp_path / "p.pt", model, name, keep=record_keep(model), input_size=(32, 32),
                           embedding_size=8)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(checkpoint=path).model(x), model.eval()(x))


def test_criteria_registry_builds_each_by_name_and_refuses_other_names():
    from compression_tool.commen_utils.errors import UserError
    from compression_tool.prune_module.criteria import CRITERIA, make_criterion

    assert [make_criterion(name).name for name in CRITERIA] == list(CRITERIA)
    with pytest.raises(UserError, match="criterion l2: choose one of l1, fpgm, hrank"):
        make_criterion("l2")

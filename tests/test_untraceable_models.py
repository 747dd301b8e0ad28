"""Models whose graph torch-pruning cannot follow everywhere: a channel shuffle by view/transpose
(torchvision's ShuffleNetV2, given by file) prunes what can be pruned, exactly, and lists the rest with the
reason; every mode runs on it; a model with nothing prunable, or whose graph cannot be traced at all, is one
line and exit code 2."""
import copy

import pytest
import torch
import torch.nn as nn

from compression_tool.commen_utils.errors import UserError
from compression_tool.prune_module.criteria import L1
from compression_tool.prune_module.graph import ChannelGraph, apply_plan
from compression_tool.prune_module.thinning import prune_model
from tests.cli import ORL, one_line_error, read_json, run_in_process, subset_pairs
from tests.helpers import randomize, zero_channels

MODEL = "tests/shufflenet_face.py:build"
SIZE = (112, 112)


@pytest.fixture(scope="module")
def shufflenet():
    from tests.shufflenet_face import build
    torch.manual_seed(0)
    model = randomize(build())
    return model, ChannelGraph(model, SIZE)


def test_what_is_prunable_is_listed_and_the_rest_says_why(shufflenet):
    _, graph = shufflenet
    prunable = {g.param for g in graph.groups}
    assert {"conv1.0.weight", "stage2.0.branch2.0.weight", "stage4.3.branch2.0.weight", "conv5.0.weight"} <= prunable
    # each block's output goes through the shuffle: its producers are not prunable
    assert {"stage2.0.branch1.2.weight", "stage2.0.branch2.5.weight", "stage3.1.branch2.5.weight"} <= set(graph.excluded)
    assert all("reshape" in why and "channel shuffle" in why for why in graph.excluded.values())
    with pytest.raises(UserError, match="stage2.0.branch2.5.weight: cannot be pruned: .*reshape"):
        graph.group("stage2.0.branch2.5.weight")


def test_pruning_what_is_prunable_is_exact(shufflenet):
    model, graph = shufflenet
    x = torch.randn(2, 3, *SIZE)
    reference = copy.deepcopy(model)
    for group in graph.groups:
        plan = graph.plan(group, group.channels_to_remove(L1().scores(model, group), 0.4))
        if group.param in ("conv1.0.weight", "stage3.2.branch2.0.weight", "conv5.0.weight"):  # one by one too
            with torch.no_grad():
                expected, got = zero_channels(copy.deepcopy(model), plan)(x), apply_plan(copy.deepcopy(model), plan)(x)
            assert torch.allclose(got, expected, atol=1e-5), group.param
        zero_channels(reference, plan)
    pruned = copy.deepcopy(model)
    prune_model(pruned, SIZE, {g.param: 0.4 for g in graph.groups})
    with torch.no_grad():
        assert torch.allclose(pruned(x), reference(x), atol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < 0.8 * sum(p.numel() for p in model.parameters())


def test_every_mode_on_a_channel_shuffle_model(tmp_path):
    """summary, sa, prune with repair (the checkpoint reloads through the same graph), test, INT8."""
    from tests.shufflenet_face import build
    weights = tmp_path / "w.pth"
    torch.save(randomize(build()).state_dict(), weights)
    common = ["--model", MODEL, "--device", "cpu", "--test_root_path", ORL, "--img_list_label_path",
              subset_pairs(tmp_path, 16)]

    def cli(*args):
        proc = run_in_process(*args, *common, "--best_model_path", weights)
        assert proc.returncode == 0, proc.stderr
        return proc

    summary = cli("--mode", "summary", "--result_json", tmp_path / "s.json")
    assert "cannot be pruned" in summary.stdout and "channel shuffle" in summary.stdout
    listed = read_json(tmp_path / "s.json")
    assert "conv5.0.weight" in listed["prunable_layers"]
    assert "stage2.0.branch2.5.weight" in listed["unprunable_layers"]
    cli("--mode", "sa", "--sparsities", "0.0,0.5", "--sensitivity_csv_path", tmp_path / "sa")
    rows = next((tmp_path / "sa").glob("*.csv")).read_text().splitlines()
    assert len(rows) == 1 + 2 * len(listed["prunable_layers"])
    layers = ", ".join(listed["prunable_layers"][::3])
    (tmp_path / "s.yaml").write_text("version: 1\npruners:\n  p1:\n    class: L1RankedStructureParameterPruner\n"
                                     f"    desired_sparsity: 0.5\n    group_type: Filters\n    weights: [{layers}]\n")
    cli("--mode", "prune", "--yaml_path", tmp_path / "s.yaml", "--reconstruct", "8", "--save_model_pt",
        "--pruned_save_model_path", tmp_path, "--layers_out_path", tmp_path / "out.txt",
        "--result_json", tmp_path / "p.json")
    pruned = read_json(tmp_path / "p.json")
    assert pruned["macs_after"] < pruned["macs_before"] and not pruned["not_refitted"]
    common[common.index("--model") + 1:common.index("--model") + 2] = []
    common.remove("--model")
    weights = pruned["checkpoint"]
    cli("--mode", "test", "--result_json", tmp_path / "t.json", "--roc_png", tmp_path / "roc.png")
    assert read_json(tmp_path / "t.json")["accuracy"] == pytest.approx(pruned["accuracy_after"], abs=1e-9)
    cli("--mode", "quantization", "--calib_batches", "1", "--calib_batch_size", "8", "--validation_images", "8",
        "--latency_batches", "1", "--latency_repeats", "2", "--quantized_save_model_path", tmp_path / "q",
        "--result_json", tmp_path / "q.json")
    assert read_json(tmp_path / "q.json")["cosine_mean"] > 0.9


class ShuffleOnly(nn.Module):
    """Its one hidden conv feeds a channel shuffle; the last conv gives the embedding."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        b, c, h, w = x.shape
        x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
        return self.head(x).mean((2, 3))


class NumpyInside(nn.Module):
    """Leaves torch for numpy: the graph cannot be traced through autograd at all."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(torch.from_numpy(self.conv(x).numpy())).mean((2, 3))


def test_nothing_prunable_is_one_line():
    with pytest.raises(UserError, match=r"^ShuffleOnly: nothing can be pruned: conv.weight: .*reshape \(1, 8, 8, 8\) "
                                        r"-> \(1, 2, 4, 8, 8\)"):
        ChannelGraph(ShuffleOnly(), (8, 8)).check_prunable("ShuffleOnly")
    with pytest.raises(UserError, match=r"^NumpyInside: torch-pruning cannot trace its graph \(RuntimeError: .*, in "
                                        r"test_untraceable_models.py:\d+ .*numpy\(\)"):
        ChannelGraph(NumpyInside(), (8, 8))


def test_nothing_prunable_through_the_cli(tmp_path):
    (tmp_path / "net.py").write_text("import torch.nn as nn\n\ndef build():\n"
                                     "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n")
    proc = run_in_process("--mode", "sa", "--model", f"{tmp_path / 'net.py'}:build", "--device", "cpu",
                          "--test_root_path", ORL, "--img_list_label_path", subset_pairs(tmp_path, 8),
                          "--sensitivity_csv_path", tmp_path / "out")
    assert "nothing can be pruned" in one_line_error(proc)
    assert not (tmp_path / "out").exists()

"""arcface_torch's backbones by name: the IR-ResNet aliases, its MobileFaceNet (mbf, mbf_large) loading a
state_dict written with arcface_torch's layout and pruning exactly, its frozen `features.weight`, and its
nested training checkpoints."""
import copy

import pytest
import torch

from compression_tool.commen_utils.checkpoint import NESTED_KEYS
from compression_tool.commen_utils.errors import UserError
from compression_tool.model_define import create_model, get_entry, list_models
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.criteria import L1
from compression_tool.prune_module.graph import ChannelGraph, apply_plan
from compression_tool.train_module.trainer import parameter_groups
from tests.helpers import randomize, zero_channels


def arcface_torch_mbf_shapes(embedding=512, blocks=(1, 4, 6, 2), scale=2) -> dict:
    """{key: shape} of arcface_torch's MobileFaceNet state_dict, written out from its layout (ConvBlock and
    LinearBlock hold a `layers` Sequential: 0 conv, 1 BN, 2 PReLU), independently of model_define."""
    shapes = {}

    def unit(prefix, in_c, out_c, kernel=1, groups=1, prelu=True):
        shapes[f"{prefix}.layers.0.weight"] = (out_c, in_c // groups, kernel, kernel)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.layers.1.{name}"] = (out_c,)
        shapes[f"{prefix}.layers.1.num_batches_tracked"] = ()
        if prelu:
            shapes[f"{prefix}.layers.2.weight"] = (out_c,)

    def depthwise(prefix, in_c, out_c, expansion):
        unit(f"{prefix}.layers.0", in_c, expansion)
        unit(f"{prefix}.layers.1", expansion, expansion, 3, groups=expansion)
        unit(f"{prefix}.layers.2", expansion, out_c, prelu=False)

    def residual(prefix, c, n, expansion):
        for i in range(n):
            depthwise(f"{prefix}.layers.{i}", c, c, expansion)

    stem, wide = 64 * scale, 128 * scale
    unit("layers.0", 3, stem, 3)
    if blocks[0] == 1:
        unit("layers.1", stem, stem, 3, groups=64)
    else:
        residual("layers.1", stem, blocks[0], 128)
    depthwise("layers.2", stem, stem, 128)
    residual("layers.3", stem, blocks[1], 128)
    depthwise("layers.4", stem, wide, 256)
    residual("layers.5", wide, blocks[2], 256)
    depthwise("layers.6", wide, wide, 512)
    residual("layers.7", wide, blocks[3], 256)
    unit("conv_sep", wide, 512)
    unit("features.layers.0", 512, 512, 7, groups=512, prelu=False)
    shapes["features.layers.2.weight"] = (embedding, 512)
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"features.layers.3.{name}"] = (embedding,)
    shapes["features.layers.3.num_batches_tracked"] = ()
    return shapes


def random_state_dict(shapes: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    return {k: torch.tensor(3) if k.endswith("num_batches_tracked")
            else (torch.rand(s, generator=g) + 0.5 if k.endswith("running_var") else torch.randn(s, generator=g))
            for k, s in shapes.items()}


def test_arcface_torch_names_are_aliases_of_the_zoo():
    assert {"r18", "r34", "r50", "r100", "r200", "mbf", "mbf_large"} <= set(list_models())
    for alias, name in (("r18", "resnet18"), ("r34", "resnet34"), ("r50", "resnet50"), ("r100", "resnet100"),
                        ("r200", "resnet200")):
        assert get_entry(alias) is get_entry(name)
    r18 = create_model("r18", embedding_size=8)
    assert [len(getattr(r18, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]


@pytest.mark.parametrize("name, blocks, scale", [("mbf", (1, 4, 6, 2), 2), ("mbf_large", (2, 8, 12, 4), 4)])
def test_arcface_torch_mobilefacenet_loads_strictly(name, blocks, scale, tmp_path):
    shapes = arcface_torch_mbf_shapes(512, blocks, scale)
    model = create_model(name)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    state_dict = random_state_dict(shapes)
    torch.save(state_dict, tmp_path / "backbone.pth")
    loaded = load_model(name, tmp_path / "backbone.pth")
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in state_dict.items())
    assert loaded.model(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


def test_mbf_prunes_exactly_including_the_grouped_second_conv():
    model = randomize(create_model("mbf", embedding_size=32))
    x = torch.randn(2, 3, 112, 112)
    graph = ChannelGraph(model, (112, 112))
    groups = graph.groups
    # the stem feeds the conv with 64 groups of 2 channels: half of each block goes at 0.5
    for group, ratio in ((groups[0], 0.5), (groups[2], 0.4), (groups[len(groups) // 2], 0.4), (groups[-1], 0.4)):
        idxs = group.channels_to_remove(L1().scores(model, group), ratio)
        assert idxs, group.param
        plan = graph.plan(group, idxs)
        pruned, reference = apply_plan(copy.deepcopy(model), plan), zero_channels(copy.deepcopy(model), plan)
        with torch.no_grad():
            assert (pruned(x) - reference(x)).abs().max().item() <= 1e-4, group.param
    assert "features.layers.2.weight" not in graph.by_param  # the embedding layer


def test_iresnet_features_weight_stays_frozen():
    model = create_model("r18", embedding_size=8)
    trained = {id(p) for group in parameter_groups([model], 5e-4) for p in group["params"]}
    assert id(model.features.weight) not in trained and id(model.features.bias) in trained


def test_nested_training_checkpoint_unpacked(tmp_path):
    model = randomize(create_model("mbf", embedding_size=16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({"epoch": 3, "global_step": 1200, "state_dict_backbone": model.state_dict(),
                "state_dict_softmax_fc": {"weight": torch.randn(10, 16)}, "state_optimizer": optimizer.state_dict(),
                "state_lr_scheduler": {"last_epoch": 3, "base_lrs": [0.1]}}, tmp_path / "checkpoint_gpu_0.pt")
    loaded = load_model("mbf", tmp_path / "checkpoint_gpu_0.pt", embedding_size=16)
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_nested_checkpoint_without_a_known_key_refused(tmp_path):
    model = create_model("mbf", embedding_size=16)
    torch.save({"epoch": 3, "weights": model.state_dict()}, tmp_path / "ckpt.pt")
    with pytest.raises(UserError) as e:
        load_model("mbf", tmp_path / "ckpt.pt", embedding_size=16)
    message = str(e.value)
    assert "ckpt.pt" in message and "'weights'" in message and "\n" not in message
    assert all(key in message for key in NESTED_KEYS)

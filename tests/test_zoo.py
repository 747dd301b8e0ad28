import pytest
import torch

from compression_tool.commen_utils.model_stats import count_macs, count_params
from compression_tool.model_define import create_model, get_entry, list_models
from compression_tool.model_define.registry import canonical_name


def test_registry_lists_the_original_names():
    assert set(list_models()) >= {"mobilefacenet", "mobilefacenet_y2", "resnet34", "resnet50", "resnet100",
                                  "resnet50_imagenet", "shufflefacenet_v2", "mobilenetv3", "sface"}


@pytest.mark.parametrize("name, embedding, params_m, macs_m", [
    ("mobilefacenet", 128, (0.99, 1.01), (219, 223)),     # paper: < 1 M params, 221 M MAdds
    ("resnet50", 512, (43.4, 43.8), (6250, 6350)),        # insightface r50: 43.6 M, 6.3 G
    ("resnet100", 512, (65.0, 65.4), (12000, 12200)),     # insightface r100: 65.2 M, 12.1 G
    ("sface", 128, (9.6, 9.7), (570, 578)),               # 9.64 M params, 574 M MACs
])
def test_sizes_match_published_figures(name, embedding, params_m, macs_m):
    model = create_model(name, embedding_size=embedding)
    assert params_m[0] <= count_params(model) / 1e6 <= params_m[1]
    assert macs_m[0] <= count_macs(model, (112, 112)) / 1e6 <= macs_m[1]


def registered() -> list:
    """Every registered family member (an alias is the same network under another name)."""
    return sorted({canonical_name(name) for name in list_models()})


def declared_sizes() -> list:
    """(name, input size) for every registered member at its default size and every other size its family
    declares. All run for real: the heaviest, resnet200 (23 G MACs at 112x112), builds and runs a batch of two
    in about 2 s on one thread."""
    return [pytest.param(name, size, id=f"{name}-{size[0]}x{size[1]}") for name in registered()
            for size in dict.fromkeys([get_entry(name).spec.size, *get_entry(name).input_sizes])]


def test_every_name_resolves_to_a_registered_member():
    assert {get_entry(name).name for name in list_models()} == set(registered())


@pytest.mark.parametrize("name, size", declared_sizes())
def test_forward_at_every_declared_size(name, size):
    """Every family member builds and embeds an image at its default size and at each other size its
    family declares (there with a non-default embedding width: the head must follow it)."""
    entry = get_entry(name)
    embedding = entry.embedding_size if tuple(size) == tuple(entry.spec.size) else 64
    model = create_model(name, input_size=size, embedding_size=embedding).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, *size))
    assert out.shape == (2, embedding) and torch.isfinite(out).all()


def test_user_model_file(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n"
        "def build(input_size=(32, 32), embedding_size=8):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.PReLU(4), nn.Flatten(),\n"
        "                         nn.Linear(4 * (input_size[0] - 2) * (input_size[1] - 2), embedding_size))\n")
    model = create_model(f"{tmp_path}/tiny.py:build", input_size=(32, 32), embedding_size=8)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 8)

import pytest
import torch

from compression_tool.commen_utils.model_stats import count_macs, count_params
from compression_tool.model_define import create_model, get_entry, list_models


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


@pytest.mark.parametrize("name", sorted({"mobilefacenet", "mobilefacenet_y2", "resnet34", "resnet50_imagenet",
                                         "shufflefacenet_v2", "mobilenetv3", "sface"}))
def test_forward_at_declared_size(name):
    entry = get_entry(name)
    out = create_model(name).eval()(torch.zeros(2, 3, *entry.spec.size))
    assert out.shape == (2, entry.embedding_size)


@pytest.mark.parametrize("name", ["mobilefacenet_y2", "resnet34", "shufflefacenet_v2"])
def test_non_square_144x122(name):
    out = create_model(name, input_size=(144, 122), embedding_size=64).eval()(torch.zeros(1, 3, 144, 122))
    assert out.shape == (1, 64)


def test_user_model_file(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n"
        "def build(input_size=(32, 32), embedding_size=8):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.PReLU(4), nn.Flatten(),\n"
        "                         nn.Linear(4 * (input_size[0] - 2) * (input_size[1] - 2), embedding_size))\n")
    model = create_model(f"{tmp_path}/tiny.py:build", input_size=(32, 32), embedding_size=8)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 8)

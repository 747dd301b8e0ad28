"""Building blocks shared by the face model families."""
import math

import torch
import torch.nn as nn


class ConvBlock(nn.Module):
    """Conv (no bias) -> BN -> per-channel PReLU; the original's Conv_block (names kept: conv, bn, prelu)."""

    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1, bn_eps=1e-5):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c, eps=bn_eps)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """Conv -> BN with no activation; the original's Linear_block."""

    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def feature_map_size(input_size, num_stride2: int):
    """Spatial size after `num_stride2` stride-2 convs with padding 1 (ceil at each step)."""
    h, w = input_size
    for _ in range(num_stride2):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w

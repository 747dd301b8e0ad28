"""MobileFaceNet (Chen et al. 2018) and the original tool's deeper variant MobileFaceNet-y2.

Module names follow the original (conv1, conv2_dw, conv_23, conv_3.model.0.conv.conv, ...) so that users'
state_dicts and schedule YAMLs keep working.
"""
import torch
import torch.nn as nn

from .common import ConvBlock, LinearBlock, feature_map_size
from .registry import InputSpec, register_model


class DepthWise(nn.Module):
    """1x1 expand (ConvBlock) -> 3x3 depthwise (ConvBlock) -> 1x1 project (LinearBlock), optional residual."""

    def __init__(self, in_c, out_c, expansion, stride=1, residual=False):
        super().__init__()
        self.conv = ConvBlock(in_c, expansion, 1)
        self.conv_dw = ConvBlock(expansion, expansion, 3, stride, 1, groups=expansion)
        self.project = LinearBlock(expansion, out_c, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, channels, num_block, expansion):
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(channels, channels, expansion, residual=True)
                                     for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(nn.Module):
    def __init__(self, embedding_size=512, input_size=(112, 112), blocks=(1, 4, 6, 2), y2=False):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        # y2 replaces the single depthwise conv2_dw by a residual stage of DepthWise blocks.
        self.conv2_dw = Residual(64, blocks[0], 64) if y2 else ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, 128, stride=2)
        self.conv_3 = Residual(64, blocks[1], 128)
        self.conv_34 = DepthWise(64, 128, 256, stride=2)
        self.conv_4 = Residual(128, blocks[2], 256)
        self.conv_45 = DepthWise(128, 128, 512, stride=2)
        self.conv_5 = Residual(128, blocks[3], 256)
        self.conv_6_sep = ConvBlock(128, 512, 1)
        gdc_kernel = feature_map_size(input_size, 4)
        self.conv_6_dw = LinearBlock(512, 512, gdc_kernel, groups=512)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = stage(x)
        return self.bn(self.linear(self.flatten(x)))


# The original scheduled only the expansion convs (with their depthwise partners): never the stem, the
# project convs (residual widths) or the two head convs.
EXPANSION_ONLY = r".*\.conv\.conv\.weight"


@register_model("mobilefacenet", InputSpec((112, 112)), input_sizes=((144, 122),),
                schedule_layers=EXPANSION_ONLY)
def mobilefacenet(input_size: tuple = (112, 112), embedding_size: int = 512) -> MobileFaceNet:
    return MobileFaceNet(embedding_size, input_size)


@register_model("mobilefacenet_y2", InputSpec((112, 112)), input_sizes=((144, 122),),
                schedule_layers=EXPANSION_ONLY)
def mobilefacenet_y2(input_size: tuple = (112, 112), embedding_size: int = 512) -> MobileFaceNet:
    return MobileFaceNet(embedding_size, input_size, blocks=(2, 8, 16, 4), y2=True)

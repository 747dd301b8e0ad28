"""ShuffleFaceNet-V2 (ShuffleNetV2 blocks with PReLU, GDC head), 2.0x width, as the original's
`shufflefacenet_v2_ljt`. Stride-1 blocks split the channels into even/odd halves (the channel shuffle)
and run branch_main on one half; stride-2 blocks concatenate branch_proj and branch_main."""
import torch
import torch.nn as nn

from .common import feature_map_size
from .registry import InputSpec, register_model


def _conv_bn(in_c, out_c, kernel, stride=1, groups=1, prelu=True):
    layers = [nn.Conv2d(in_c, out_c, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_c)]
    return layers + [nn.PReLU(out_c)] if prelu else layers


class ShuffleBlock(nn.Module):
    def __init__(self, in_c, out_c, mid_c, stride):
        super().__init__()
        self.stride = stride
        main_in = in_c if stride == 2 else in_c // 2
        self.branch_main = nn.Sequential(
            *_conv_bn(main_in, mid_c, 1),
            *_conv_bn(mid_c, mid_c, 3, stride, groups=mid_c, prelu=False),
            *_conv_bn(mid_c, out_c - main_in, 1))
        self.branch_proj = None
        if stride == 2:
            self.branch_proj = nn.Sequential(
                *_conv_bn(in_c, in_c, 3, 2, groups=in_c, prelu=False), *_conv_bn(in_c, in_c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            return torch.cat((self.branch_proj(x), self.branch_main(x)), 1)
        b, c, h, w = x.shape
        pairs = x.reshape(b, c // 2, 2, h, w)
        return torch.cat((pairs[:, :, 0], self.branch_main(pairs[:, :, 1])), 1)


class ShuffleFaceNetV2(nn.Module):
    # Only the branch_main width inside each block is pruned (as the original's keep did): block outputs
    # pass through the channel shuffle, whose index mapping the dependency graph does not model.
    PRUNABLE = r"features\.\d+\.branch_main\.0"

    def __init__(self, embedding_size=512, input_size=(112, 112), widths=(24, 244, 488, 976, 2048),
                 repeats=(4, 8, 4)):
        super().__init__()
        self.first_conv = nn.Sequential(*_conv_bn(3, widths[0], 3, 2))
        blocks, in_c = [], widths[0]
        for out_c, n in zip(widths[1:4], repeats):
            for i in range(n):
                blocks.append(ShuffleBlock(in_c, out_c, out_c // 2, 2 if i == 0 else 1))
                in_c = out_c
        self.features = nn.Sequential(*blocks)
        self.conv_last = nn.Sequential(*_conv_bn(in_c, widths[4], 1))
        kernel = feature_map_size(input_size, 4)
        self.gdc = nn.Sequential(nn.Conv2d(widths[4], widths[4], kernel, groups=widths[4], bias=False),
                                 nn.BatchNorm2d(widths[4]))
        self.classifier = nn.Conv2d(widths[4], embedding_size, 1)
        self.flatten = nn.Flatten()
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_last(self.features(self.first_conv(x)))
        return self.bn(self.flatten(self.classifier(self.gdc(x))))


@register_model("shufflefacenet_v2", InputSpec((144, 122)), input_sizes=((112, 112),))
def shufflefacenet_v2(input_size: tuple = (144, 122), embedding_size: int = 512) -> ShuffleFaceNetV2:
    return ShuffleFaceNetV2(embedding_size, input_size)

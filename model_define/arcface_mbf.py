"""arcface_torch's MobileFaceNet (`get_model('mbf')`, `get_model('mbf_large')`): another network than the zoo's
`mobilefacenet`, with a width scale on the stem and the residual paths, a grouped second conv (64 groups) and
its own module names, so that a backbone saved by arcface_torch loads strictly.

Layout written from the description of insightface's recognition/arcface_torch/backbones/mobilefacenet.py
(read for its module names, widths and block counts; no code taken): every unit is a `layers` Sequential of
conv (no bias) + BN (+ PReLU), the network a `layers` ModuleList, then `conv_sep` and the GDC head `features`.
Its fp16 autocast and norm_output options do not change the weights and are left out.
"""
import torch
import torch.nn as nn

from .common import feature_map_size
from .registry import InputSpec, register_model


class Unit(nn.Module):
    """Conv (no bias) -> BN, then PReLU unless `linear` (arcface_torch's ConvBlock / LinearBlock)."""

    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1, linear=False):
        super().__init__()
        layers = [nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(out_c)]
        self.layers = nn.Sequential(*layers if linear else layers + [nn.PReLU(out_c)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """1x1 expand to `expansion` -> 3x3 depthwise -> 1x1 linear projection, optionally added to its input."""

    def __init__(self, in_c, out_c, expansion, stride=2, residual=False):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(Unit(in_c, expansion), Unit(expansion, expansion, 3, stride, 1, groups=expansion),
                                    Unit(expansion, out_c, linear=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.residual else self.layers(x)


class Residual(nn.Module):
    def __init__(self, channels, num_block, expansion):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(channels, channels, expansion, stride=1, residual=True)
                                      for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise conv over the whole last feature map, then Linear (no bias) -> BN1d."""

    def __init__(self, embedding_size, kernel):
        super().__init__()
        self.layers = nn.Sequential(Unit(512, 512, kernel, groups=512, linear=True), nn.Flatten(),
                                    nn.Linear(512, embedding_size, bias=False), nn.BatchNorm1d(embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ArcFaceMobileFaceNet(nn.Module):
    def __init__(self, embedding_size=512, input_size=(112, 112), blocks=(1, 4, 6, 2), scale=2):
        super().__init__()
        stem, wide = 64 * scale, 128 * scale
        # The expansion widths (128, 256, 512) and the 64 groups of the second conv do not scale there.
        second = (Unit(stem, stem, 3, 1, 1, groups=64) if blocks[0] == 1 else Residual(stem, blocks[0], 128))
        self.layers = nn.ModuleList([
            Unit(3, stem, 3, 2, 1), second,
            DepthWise(stem, stem, 128), Residual(stem, blocks[1], 128),
            DepthWise(stem, wide, 256), Residual(wide, blocks[2], 256),
            DepthWise(wide, wide, 512), Residual(wide, blocks[3], 256)])
        self.conv_sep = Unit(wide, 512)
        # 7x7 at 112x112 as arcface_torch; other input sizes get the kernel of their last feature map.
        self.features = GDC(embedding_size, feature_map_size(input_size, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


# As for the zoo's mobilefacenet: only the expansion convs (with their depthwise partners) are scheduled by
# default, never the stem, the residual widths or the head.
EXPANSION_ONLY = r"layers\.\d+\.(layers\.\d+\.)?layers\.0\.layers\.0\.weight"
SIZES = ((144, 122),)


@register_model("mbf", InputSpec((112, 112)), input_sizes=SIZES, schedule_layers=EXPANSION_ONLY)
def mbf(input_size: tuple = (112, 112), embedding_size: int = 512) -> ArcFaceMobileFaceNet:
    return ArcFaceMobileFaceNet(embedding_size, input_size)


@register_model("mbf_large", InputSpec((112, 112)), input_sizes=SIZES, schedule_layers=EXPANSION_ONLY)
def mbf_large(input_size: tuple = (112, 112), embedding_size: int = 512) -> ArcFaceMobileFaceNet:
    return ArcFaceMobileFaceNet(embedding_size, input_size, blocks=(2, 8, 12, 4), scale=4)

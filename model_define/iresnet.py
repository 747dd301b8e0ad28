"""InsightFace IR-ResNets (arcface_torch's iresnet): BN-first basic blocks with PReLU and a downsample branch
in the first block of every stage, then BN -> dropout -> flatten -> Linear -> BN1d.

Module names and block counts are arcface_torch's (recognition/arcface_torch/backbones/iresnet.py, read for
this): a backbone saved from its get_model('r18' ... 'r200') loads strictly under the alias of the same name."""
import torch
import torch.nn as nn

from .common import feature_map_size
from .registry import InputSpec, register_model

BN_EPS = 1e-5


class IRBlock(nn.Module):
    def __init__(self, in_c, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_c, eps=BN_EPS)
        self.conv1 = nn.Conv2d(in_c, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or in_c != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_c, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers, embedding_size=512, input_size=(112, 112), dropout=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=BN_EPS)
        self.prelu = nn.PReLU(64)
        in_c = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stage = [IRBlock(in_c, planes, stride=2)] + [IRBlock(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            in_c = planes
        self.bn2 = nn.BatchNorm2d(512, eps=BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.flatten = nn.Flatten()
        h, w = feature_map_size(input_size, 4)
        self.fc = nn.Linear(512 * h * w, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=BN_EPS)
        # arcface_torch fixes this scale at 1.0 and never trains it (requires_grad off, as there): fine-tuning
        # gives the optimizer only parameters that require gradients, so it stays what the checkpoint holds.
        self.features.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.flatten(self.dropout(self.bn2(x)))))


SIZES = ((112, 112), (144, 122))
# The original scheduled each block's first conv (the block's inner width), not the residual stages.
BLOCK_CONV1 = r"layer\d+\.\d+\.conv1\.weight"


# (name, arcface_torch's name, blocks per stage)
DEPTHS = (("resnet18", "r18", (2, 2, 2, 2)), ("resnet34", "r34", (3, 4, 6, 3)), ("resnet50", "r50", (3, 4, 14, 3)),
          ("resnet100", "r100", (3, 13, 30, 3)), ("resnet200", "r200", (6, 26, 60, 6)))


def _register(name: str, alias: str, blocks: tuple):
    @register_model(name, InputSpec((112, 112)), input_sizes=SIZES, schedule_layers=BLOCK_CONV1, aliases=(alias,))
    def factory(input_size: tuple = (112, 112), embedding_size: int = 512) -> IResNet:
        return IResNet(blocks, embedding_size, input_size)


for _depth in DEPTHS:
    _register(*_depth)

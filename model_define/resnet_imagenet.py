"""The original's `resnet50_imagenet`: torchvision's bottleneck ResNet-50 adapted to 112x112 faces (7x7 stem
with stride 1, max-pool, four stages, average pool, BN2d -> Linear -> BN1d embedding)."""
import torch
import torch.nn as nn
from torchvision.models.resnet import Bottleneck, ResNet

from .common import feature_map_size
from .registry import InputSpec, register_model


class ResNetFace(ResNet):
    def __init__(self, embedding_size=512, input_size=(112, 112)):
        super().__init__(Bottleneck, [3, 4, 6, 3])
        self.conv1 = nn.Conv2d(3, 64, 7, 1, 3, bias=False)
        self.avgpool = nn.AvgPool2d(feature_map_size(input_size, 4))
        self.bn_out = nn.BatchNorm2d(2048)
        self.fc = nn.Linear(2048, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.bn_out(self.avgpool(x)).flatten(1)
        return self.features(self.fc(x))


@register_model("resnet50_imagenet", InputSpec((112, 112)))
def resnet50_imagenet(input_size: tuple = (112, 112), embedding_size: int = 512) -> ResNetFace:
    return ResNetFace(embedding_size, input_size)

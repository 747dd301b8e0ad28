"""A small Inception-ResNet face model, written for the tests as a user would bring one (`--model
tests/inception_face.py:build`): branches joined by torch.cat, scaled residual adds, a reduction block whose
max-pool branch passes the trunk's channels into the next, wider trunk; PReLU; 112x112 input, 64-d.
INPUT_SPEC is a plain dict: a user's file need not import the tool."""
import torch
import torch.nn as nn

INPUT_SPEC = {"size": (112, 112), "channel_order": "RGB", "mean": 127.5, "std": 128.0}
EMBEDDING_SIZE = 64


def conv_bn(cin, cout, k=1, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout))


class InceptionResidual(nn.Module):
    """Two branches concatenated, projected back to the trunk's width, added with a scale."""

    def __init__(self, width, scale=0.2):
        super().__init__()
        self.branch1 = conv_bn(width, 16)
        self.branch3 = nn.Sequential(conv_bn(width, 16), conv_bn(16, 24, 3))
        self.project = nn.Conv2d(40, width, 1)
        self.scale = scale
        self.act = nn.PReLU(width)

    def forward(self, x):
        mixed = torch.cat([self.branch1(x), self.branch3(x)], dim=1)
        return self.act(x + self.scale * self.project(mixed))


class Reduction(nn.Module):
    """Stride-2 conv branches and a max-pool of the trunk itself, concatenated: the next trunk is wider."""

    def __init__(self, width):
        super().__init__()
        self.conv = conv_bn(width, 32, 3, 2)
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class InceptionFace(nn.Module):
    def __init__(self, embedding_size=EMBEDDING_SIZE):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, 3, 2), conv_bn(32, 48, 3))
        self.block1 = InceptionResidual(48)
        self.reduce = Reduction(48)
        self.block2 = InceptionResidual(80)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(80, embedding_size, bias=False),
                                  nn.BatchNorm1d(embedding_size))

    def forward(self, x):
        return self.head(self.block2(self.reduce(self.block1(self.stem(x)))))


def build(input_size=(112, 112), embedding_size=EMBEDDING_SIZE):
    return InceptionFace(embedding_size)

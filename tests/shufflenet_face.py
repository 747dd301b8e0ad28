"""torchvision's ShuffleNetV2 0.5x as a user would bring it (`--model tests/shufflenet_face.py:build`): its
channel shuffle is a view to (N, 2, C/2, H, W), a transpose and a view back, which torch-pruning's graph does
not follow. 112x112 input, 128-d."""
import torchvision

INPUT_SPEC = {"size": (112, 112), "channel_order": "RGB", "mean": 127.5, "std": 128.0}
EMBEDDING_SIZE = 128


def build(embedding_size=EMBEDDING_SIZE):
    return torchvision.models.shufflenet_v2_x0_5(weights=None, num_classes=embedding_size)

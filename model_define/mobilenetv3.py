"""The original's liveness classifier: MobileNetV3-Large with 4 classes on 80x80 crops (torchvision's)."""
from torchvision.models import MobileNetV3, mobilenet_v3_large

from .registry import InputSpec, register_model


@register_model("mobilenetv3", InputSpec((80, 80), channel_order="BGR", mean=0.0, std=255.0),
                embedding_size=4, task="classification",
                schedule_layers=r"features\.\d+\.block\.0\.0\.weight")
def mobilenetv3(input_size: tuple = (80, 80), embedding_size: int = 4) -> MobileNetV3:
    return mobilenet_v3_large(num_classes=embedding_size)

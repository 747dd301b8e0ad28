"""Images fed to a model in batches, on the model's device."""
from typing import Callable, Iterator

import torch
import torch.nn as nn


def batches(images: torch.Tensor, batch_size: int, device: torch.device | str) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size].to(device)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def outputs_in_batches(model: Callable, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """model(images), batch by batch, as float32: any callable (torch, ONNX Runtime, OpenVINO) on CPU tensors."""
    return torch.cat([model(batch).float() for batch in batches(images, batch_size, images.device)])

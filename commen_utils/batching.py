"""Images fed to a model in batches, on the model's device."""
from typing import Iterator

import torch
import torch.nn as nn


def batches(images: torch.Tensor, batch_size: int, device: torch.device | str) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size].to(device)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

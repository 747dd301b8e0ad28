"""FP32 export for deployment with torch alone: a frozen TorchScript module. Freezing inlines the weights
and folds every BatchNorm that follows a conv (or linear) into it, so inference skips them; the file runs
with `torch.jit.load`, no Python model definition needed."""
from pathlib import Path

import torch

from .errors import UserError


@torch.no_grad()
def freeze_for_inference(model, input_size):
    example = torch.zeros(1, 3, *input_size, device=next(model.parameters()).device)
    return torch.jit.freeze(torch.jit.trace(model.eval(), example))


def load_torchscript(path):
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path}: not a TorchScript file ({str(e).splitlines()[0][:200]})") from None


def save_torchscript(module, path) -> Path:
    torch.jit.save(module, str(path))
    return Path(path)

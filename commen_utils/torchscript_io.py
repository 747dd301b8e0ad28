"""FP32 export for deployment with torch alone: a frozen TorchScript module. Freezing inlines the weights
and folds every BatchNorm that follows a conv (or linear) into it, so inference skips them; the file runs
with `torch.jit.load`, no Python model definition needed. torch 2.14 marks TorchScript deprecated in favour
of torch.export; it still does all of the above, so its deprecation warnings are silenced here."""
import copy
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import UserError


@contextmanager
def _no_deprecation_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


@torch.no_grad()
def freeze_for_inference(model: torch.nn.Module, input_size: tuple) -> torch.jit.ScriptModule:
    """The model traced, frozen (BN folded) and with its weights in channels-last order: oneDNN's
    depthwise and 1x1 convolutions run faster on it (SFace at batch 32, BENCHMARKS.md). Inputs stay NCHW."""
    example = torch.zeros(1, 3, *input_size, device=next(model.parameters()).device)
    model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    with _no_deprecation_warnings():
        return torch.jit.freeze(torch.jit.trace(model, example))


def load_torchscript(path: Path | str) -> torch.jit.ScriptModule:
    try:
        with _no_deprecation_warnings():
            return torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path}: not a TorchScript file ({str(e).splitlines()[0].split('. ')[0][:200]})") from None


def save_torchscript(module, path) -> Path:
    with _no_deprecation_warnings():
        torch.jit.save(module, str(path))
    return Path(path)

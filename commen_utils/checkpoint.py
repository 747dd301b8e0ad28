"""Checkpoint reading and writing.

A checkpoint is either a plain state_dict (what the original tool saved) or the toolkit's own dict:
{"format": FORMAT, "arch": ..., "keep": ..., "input_size": ..., "embedding_size": ..., "state_dict": ...,
"metadata": ...}. Everything is loaded with weights_only=True: a pickle that would run code is refused.
"""
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import UserError

FORMAT = "compression_tool/1"
DATA_PARALLEL_PREFIX = "module."
# Where training checkpoints keep the model's weights, in the order tried: arcface_torch's checkpoint_gpu_N.pt
# ({"epoch", "global_step", "state_dict_backbone", "state_dict_softmax_fc", "state_optimizer", ...}, read in
# its train_v2.py), then the usual names of other training loops.
NESTED_KEYS = ("state_dict_backbone", "state_dict", "model_state_dict", "model")


def load_checkpoint(path, from_data_parallel: bool = False):
    """Return (state_dict, info). info holds arch/keep/input_size/... for our own format, else {}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the refusal says it
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe pickle"
        raise UserError(f"{path}: refused to load, it is not a plain weights file ({first[:200]})") from None
    except Exception as e:  # torch raises many types on foreign bytes; all mean the same to the user
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        info = {k: v for k, v in obj.items() if k != "state_dict"}
        state_dict = obj["state_dict"]
    elif is_state_dict(obj):
        info, state_dict = {}, obj
    elif isinstance(obj, dict):
        info, state_dict = {}, nested_state_dict(obj, path)
    else:
        raise UserError(f"{path}: not a state_dict nor a compression_tool checkpoint")
    return strip_data_parallel(state_dict, force=from_data_parallel), info


def is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def nested_state_dict(checkpoint: dict, path) -> dict:
    """The model's weights inside a training checkpoint (weights, optimizer, epoch ... in one dict)."""
    for key in NESTED_KEYS:
        if is_state_dict(checkpoint.get(key)):
            return checkpoint[key]
    held = [str(k) for k, v in checkpoint.items() if is_state_dict(v)]
    keys = ", ".join(map(str, list(checkpoint)[:8])) + (", ..." if len(checkpoint) > 8 else "")
    fix = (f"save the weights under '{held[0]}' alone (torch.save(checkpoint['{held[0]}'], 'model.pth'))" if held
           else "save the model's state_dict alone")
    raise UserError(f"{path}: a training checkpoint (keys: {keys}) without the model's weights under any of "
                    f"{', '.join(NESTED_KEYS)}: {fix}")


def strip_data_parallel(state_dict, force: bool = False):
    """Drop the 'module.' prefix that (Distributed)DataParallel adds; detected by itself when every key has it."""
    keys = list(state_dict)
    if force or (keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys)):
        return {k[len(DATA_PARALLEL_PREFIX):] if k.startswith(DATA_PARALLEL_PREFIX) else k: v
                for k, v in state_dict.items()}
    return state_dict


def save_checkpoint(path, model, arch: str, keep=None, input_size=None, embedding_size=None,
                    metadata=None, overwrite: bool = True):
    payload = {
        "format": FORMAT,
        "arch": arch,
        "keep": keep,
        "input_size": list(input_size) if input_size else None,
        "embedding_size": embedding_size,
        "metadata": metadata or {},
        "state_dict": portable_state_dict(model),
    }
    with atomic_path(path, overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def portable_state_dict(model: torch.nn.Module) -> OrderedDict:
    """The state_dict on the CPU, keeping its per-module versions (`_metadata`): quantized layers read them
    to decide how to load. Quantized Linear layers also keep a (weight, bias) tuple and a dtype."""
    state = model.state_dict()
    portable = OrderedDict((k, v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state.items())
    portable._metadata = getattr(state, "_metadata", None)
    return portable


def load_weights(model, state_dict, source: str = "checkpoint"):
    """Strict load with one readable message naming missing/unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if isinstance(own[k], torch.Tensor) and k in state_dict and isinstance(state_dict[k], torch.Tensor)
              and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    if problems:
        raise UserError(f"{source} does not match the model: {'; '.join(problems)}")
    model.load_state_dict(state_dict)
    return model


def weights_digest(model: torch.nn.Module) -> str:
    """A short hash of a model's weights and buffers (names, shapes and values): what a resumed run and a
    cache check to know they work on the same model."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]

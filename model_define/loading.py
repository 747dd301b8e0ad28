"""Build the model a run works on from flags: zoo name or user file, optional checkpoint (plain state_dict
or our own, which carries arch/keep/input size so that pruned models rebuild by themselves)."""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from compression_tool.commen_utils.checkpoint import load_checkpoint, load_weights
from compression_tool.commen_utils.errors import UserError

from .registry import InputSpec, ModelEntry, canonical_name, create_model, get_entry, is_onnx_reference


@dataclass
class LoadedModel:
    model: torch.nn.Module
    arch: str
    spec: InputSpec
    input_size: tuple
    embedding_size: int
    keep: dict = None
    task: str = "verification"
    precision: str = "fp32"  # int8: the model runs quantized kernels; its float layout is create_model(arch, keep)
    checkpoint: str | None = None  # the file the weights came from
    pruned_from: str | None = None  # a --mode prune checkpoint's: the checkpoint it was pruned from


def layout_of(loaded: LoadedModel) -> dict:
    """What a checkpoint of this model records so that it rebuilds by itself (save_checkpoint's keywords)."""
    return dict(arch=loaded.arch, keep=loaded.keep, input_size=loaded.input_size, embedding_size=loaded.embedding_size)


def parse_size(text: str | tuple | None) -> tuple | None:
    """'112', '112x112' or '144x122' (HxW) -> (H, W)."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        h, _, w = str(text).lower().partition("x")
        return (int(h), int(w or h))
    except ValueError:
        raise UserError(f"--input_size {text}: expected H or HxW, e.g. 112x112 or 144x122") from None


def load_model(model_name=None, checkpoint=None, from_data_parallel=False, input_size=None,
               embedding_size=None, device="cpu", preprocess=None) -> LoadedModel:
    if checkpoint and is_onnx_reference(checkpoint) and not onnx_is_quantized(checkpoint):
        # A float ONNX file is its own architecture and weights: converted to torch, like --model file.onnx
        model_name, checkpoint, preprocessing_of = str(checkpoint), None, model_name
    elif checkpoint and str(checkpoint).endswith(EXPORTED_SUFFIXES):
        return load_exported(model_name, checkpoint, input_size, embedding_size, preprocess)
    else:
        preprocessing_of = None
    state_dict, info = load_checkpoint(checkpoint, from_data_parallel) if checkpoint else (None, {})
    arch = info.get("arch") or model_name
    if not arch:
        raise UserError("--model is required (or a compression_tool checkpoint that names its model)")
    if is_onnx_reference(arch) and model_name and not is_onnx_reference(model_name):
        preprocessing_of, model_name = model_name, arch  # beside an ONNX architecture, --model names its input
    if model_name and info.get("arch") and canonical_name(model_name) != canonical_name(info["arch"]):
        raise UserError(f"--model {model_name} but {checkpoint} holds a '{info['arch']}' model")
    arch = canonical_name(arch)  # an alias (r50) is saved under its registered name (resnet50)
    entry = get_entry(arch)
    size = tuple(parse_size(input_size) or info.get("input_size") or entry.spec.size)
    embedding = embedding_size or info.get("embedding_size") or entry.embedding_size
    model = create_model(arch, size, embedding, keep=info.get("keep"))
    settings = info.get("metadata", {})
    if settings.get("precision", "fp32") not in FLOAT_PRECISIONS:  # the quantized layout, rebuilt, then its weights
        rebuild = rebuilder_of(settings["precision"], checkpoint)
        model, device = rebuild(model, size, settings, state_dict, str(checkpoint)), "cpu"
    elif state_dict is not None:
        load_weights(model, state_dict, source=str(checkpoint))
    spec = input_spec(get_entry(preprocessing_of) if preprocessing_of else entry, size, preprocess)
    return LoadedModel(model.to(device).eval(), arch, spec, size, embedding, info.get("keep"), entry.task,
                       settings.get("precision", "fp32"), str(Path(checkpoint).resolve()) if checkpoint else None,
                       settings.get("pruned_from"))


# A checkpoint's recorded precision -> rebuild(float model, input size, metadata, state_dict, source): the engine
# that writes such checkpoints registers it (quant_module.torch_fx: "int8"), so that model_define imports nothing
# above it.
PRECISIONS: dict[str, Callable] = {}
FLOAT_PRECISIONS = ("fp32", "fp16")  # their weights load into the float model as they are


def register_precision(precision: str, rebuild: Callable) -> None:
    PRECISIONS[precision] = rebuild


def rebuilder_of(precision: str, checkpoint) -> Callable:
    if precision not in PRECISIONS:
        raise UserError(f"{checkpoint}: a {precision} checkpoint; import the engine that writes it "
                        f"(compression_tool.quant_module.torch_fx for int8) before loading it (the CLIs do)")
    return PRECISIONS[precision]


def input_spec(entry: ModelEntry, size: tuple, preprocess: dict | None) -> InputSpec:
    return replace(entry.spec, size=size, **{k: v for k, v in (preprocess or {}).items() if v is not None})


def onnx_is_quantized(path) -> bool:
    """An INT8 ONNX (quantized activations, as `--mode quantization` writes) is scored by ONNX Runtime as it is;
    a float one is converted to torch."""
    from .onnx_import import onnx_summary
    return onnx_summary(path).quantized


def _onnx(path):
    from compression_tool.commen_utils.onnx_io import OnnxModel
    return OnnxModel(path)


def _openvino(path):
    from compression_tool.commen_utils.openvino_io import OpenVinoModel
    return OpenVinoModel(path)


def _torchscript(path):
    from compression_tool.commen_utils.torchscript_io import load_torchscript
    return load_torchscript(path)


# file suffix -> (loader, precision label); the loaders import their runtime only when used
EXPORTED = {".onnx": (_onnx, "onnx"), ".xml": (_openvino, "openvino"), ".torchscript": (_torchscript, "torchscript")}
EXPORTED_SUFFIXES = tuple(EXPORTED)


def load_exported(model_name, path, input_size=None, embedding_size=None, preprocess=None) -> LoadedModel:
    """An exported model: ONNX (run by ONNX Runtime, CPU), OpenVINO IR (run by OpenVINO, CPU) or frozen
    TorchScript. --model names its preprocessing; an IR written by this tool names its own model."""
    loader, precision = EXPORTED[Path(path).suffix]
    model = loader(path)
    info = getattr(model, "metadata", {})
    model_name = model_name or info.get("arch")
    if not model_name:
        raise UserError(f"{path}: an exported model does not say how its input is preprocessed; pass --model")
    if info.get("arch") and model_name != info["arch"]:
        raise UserError(f"--model {model_name} but {path} holds a '{info['arch']}' model")
    entry = get_entry(model_name)
    size = tuple(parse_size(input_size) or info.get("input_size") or getattr(model, "input_size", None)
                 or entry.spec.size)
    return LoadedModel(model, model_name, input_spec(entry, size, preprocess), size,
                       embedding_size or info.get("embedding_size") or entry.embedding_size, info.get("keep"),
                       entry.task, f"{precision} {info['precision']}" if "precision" in info else precision)

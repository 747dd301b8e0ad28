"""A face model given as an ONNX file, turned into a torch module that every mode can run, prune included.

onnx2torch (pinned in requirements.txt) does the op-by-op conversion into a torch.fx GraphModule. Two things
are done around it, because it falls short there for pruning:
- weights stored quantized (DequantizeLinear / Reshape on initializers only, as in OpenCV zoo's SFace) are
  folded into float initializers first: onnx2torch has no DequantizeLinear, and a pruned layer needs its
  float weight;
- onnx2torch runs PRelu as a function of a constant buffer, which torch-pruning cannot see; each per-channel
  slope becomes an nn.PReLU, so that its channels follow the conv feeding it.
The file is read again whenever the model is rebuilt (a checkpoint pruned from it names the file as its
architecture, as one pruned from `path/to/file.py:factory` does).
"""
import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from compression_tool.commen_utils.errors import UserError

from .registry import InputSpec, ModelEntry

DEFAULT_SIZE = (112, 112)
KNOWN_OPSET = 17
# Activation quantization: such a graph is an INT8 deployment file, scored by ONNX Runtime as it is.
QUANTIZED_OPS = {"QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                 "MatMulInteger", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool"}


def read_onnx(path):
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends: foreign bytes
        raise UserError(f"{path}: not an ONNX file ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") \
            from None
    if not model.graph.node:
        raise UserError(f"{path}: not an ONNX model (no graph)")
    return model


def is_quantized(model) -> bool:
    return any(node.op_type in QUANTIZED_OPS for node in model.graph.node)


def dequantize_blocks(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int,
                      block_size: int) -> np.ndarray:
    """(q - zero_point) * scale, each block's scale/zero-point repeated over `block_size` entries along
    `axis` (the last block may be shorter). onnx's reference evaluator does not cover block sizes."""
    n = q.shape[axis]
    scale = np.repeat(scale, block_size, axis=axis).take(range(n), axis=axis)
    zero_point = np.repeat(zero_point, block_size, axis=axis).take(range(n), axis=axis)
    return (q.astype(np.float32) - zero_point.astype(np.float32)) * scale


def _dequantize(node, inputs: list) -> np.ndarray:
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    q, scale = inputs[0], inputs[1]
    zero_point = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros_like(scale, dtype=q.dtype)
    axis = attrs.get("axis", 1) % max(q.ndim, 1)
    if scale.ndim == 0 or scale.size == 1:  # per tensor
        return (q.astype(np.float32) - zero_point.astype(np.float32)) * scale
    if "block_size" in attrs and attrs["block_size"]:
        return dequantize_blocks(q, scale, zero_point, axis, attrs["block_size"])
    shape = [1] * q.ndim
    shape[axis] = -1  # per channel along `axis`
    return (q.astype(np.float32) - zero_point.reshape(shape).astype(np.float32)) * scale.reshape(shape)


# Ops computed here when all their inputs are constants: what a weight-only quantized file stores its
# weights through.
FOLDED = {"DequantizeLinear": _dequantize, "Reshape": lambda node, inputs: inputs[0].reshape(inputs[1])}


def constant_tensors(graph) -> dict:
    """Every initializer, and the output of every FOLDED node whose inputs are all constant, as numpy."""
    from onnx import numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type in FOLDED and all(name in tensors or not name for name in node.input):
            tensors[node.output[0]] = FOLDED[node.op_type](node, [tensors.get(name) for name in node.input])
    return tensors


def prepared(model):
    """The model (changed in place) with the FOLDED nodes on constants replaced by float initializers, and
    without the initializers and graph inputs no node reads (SFace's file declares its weights as inputs too)."""
    from onnx import numpy_helper

    graph = model.graph
    tensors = constant_tensors(graph)
    initializers = {t.name for t in graph.initializer}
    for node in [n for n in graph.node if n.op_type in FOLDED and n.output[0] in tensors
                 and n.output[0] not in initializers]:
        graph.node.remove(node)
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(tensors[node.output[0]]),
                                                         node.output[0]))
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for field in (graph.initializer, graph.input):
        kept = [item for item in field if item.name in used]
        del field[:]
        field.extend(kept)
    return model


def _dims(value_info) -> list:
    """Static dims as ints, the others (batch, dynamic sizes) as None; [] when the rank is unknown."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]


def face_model_io(model, path) -> tuple:
    """(input H x W or None, embedding size) of a face model's graph: one image input [N, 3, H, W], one
    embedding output [N, D]; anything else is refused in one line."""
    import onnx

    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs[:4]) + (", ..." if len(inputs) > 4 else "")
        raise UserError(f"{path}: {len(inputs)} inputs ({names}): not a face model "
                        f"(expected one image input [N, 3, H, W])")
    dims = _dims(inputs[0])
    if len(dims) != 4 or dims[1] not in (3, None):
        raise UserError(f"{path}: input '{inputs[0].name}' has shape {dims}: not a face model (expected one "
                        f"image input [N, 3, H, W])")
    outputs = list(model.graph.output)
    out_dims = _dims(outputs[0]) if len(outputs) == 1 else []
    if len(outputs) == 1 and (not out_dims or out_dims[1:] == [None]):
        try:  # the declared output shape may be left to shape inference
            inferred = onnx.shape_inference.infer_shapes(model).graph.output
            out_dims = _dims(inferred[0]) or out_dims
        except Exception:  # noqa: BLE001 (inference is optional: the converted model is run below anyway)
            pass
    if len(outputs) != 1 or len(out_dims) != 2 or out_dims[1] is None:
        shape = f"shape {out_dims or 'unknown'}" if len(outputs) == 1 else f"{len(outputs)} outputs"
        raise UserError(f"{path}: output {', '.join(repr(o.name) for o in outputs)} has {shape}: not a face model "
                        f"(expected one embedding output [N, D])")
    size = tuple(dims[2:]) if None not in dims[2:] else None
    return size, out_dims[1]


def _to_known_opset(model):
    """Files written with a newer opset than onnx2torch knows (its newest converters are for opset 17) are
    moved down with onnx's own version converter where it can: the ops of face CNNs changed only in the
    types they accept since. Where it cannot, the file is converted as it is and an op it lacks is named."""
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), KNOWN_OPSET)
    if opset <= KNOWN_OPSET:
        return model
    try:
        return version_converter.convert_version(model, KNOWN_OPSET)
    except Exception:  # noqa: BLE001 (no adapter for some op: _check_ops names what is left unconvertible)
        return model


def _check_ops(model, path):
    from onnx2torch.node_converters.registry import get_converter

    opsets = {o.domain or "": o.version for o in model.opset_import}
    for node in model.graph.node:
        version = opsets.get(node.domain or "", opsets.get("ai.onnx", 0))
        try:
            get_converter(node.op_type, version, node.domain or "")
        except NotImplementedError:
            raise UserError(f"{path}: cannot convert ONNX op {node.op_type} (node '{node.name}', opset {version}) "
                            f"to torch") from None


def _prelu_as_modules(module):
    """onnx2torch's PRelu(x, slope buffer) -> nn.PReLU(x) with the slope as its weight, where the slope is one
    value or one per channel of a 4-D input (shape (C, 1, 1)); other broadcasts are left as they are."""
    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_module" or type(module.get_submodule(node.target)).__name__ != "OnnxPReLU":
            continue
        x, slope_node = node.args[:2]
        if slope_node.op != "get_attr":
            continue
        slope = _attribute(module, slope_node.target)
        if not (slope.numel() == 1 or (slope.ndim == 3 and tuple(slope.shape[1:]) == (1, 1))):
            continue
        prelu = nn.PReLU(slope.numel())
        with torch.no_grad():
            prelu.weight.copy_(slope.reshape(-1).float())
        module.add_submodule(node.target, prelu)
        node.args = (x,)
    graph.eliminate_dead_code()
    read = {node.target for node in graph.nodes if node.op == "get_attr"}
    # onnx2torch keeps the graph's constants under `initializers`; the slopes now held by PReLUs go
    unread = [name for name, _ in module.named_buffers() if name.startswith("initializers.") and name not in read]
    for target in unread:
        owner, _, name = target.rpartition(".")
        delattr(module.get_submodule(owner), name)
    module.recompile()
    return module


def _attribute(module, target: str) -> torch.Tensor:
    owner, _, name = target.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, name)


def convert_onnx(path, input_size: tuple | None = None) -> nn.Module:
    """The ONNX face model at `path` as an eval-mode torch module (weights included)."""
    model = prepared(read_onnx(path))
    if is_quantized(model):
        raise UserError(f"{path}: an INT8 ONNX model (quantized activations) cannot be converted back to a float "
                        f"model: only --mode test scores it (with ONNX Runtime)")
    declared, _ = face_model_io(model, path)
    model = _to_known_opset(model)
    _check_ops(model, path)
    from onnx2torch import convert

    try:
        module = convert(model)
    except (NotImplementedError, ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"{path}: cannot convert to torch ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") \
            from None
    module = _prelu_as_modules(module).eval()
    h, w = input_size or declared or DEFAULT_SIZE
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, h, w))
    except Exception as e:  # noqa: BLE001 (any failure of the converted graph means the same to the user)
        raise UserError(f"{path}: the converted model does not run on 1x3x{h}x{w} input "
                        f"({(str(e).splitlines() or [type(e).__name__])[0][:200]})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise UserError(f"{path}: the converted model's output is not one [N, D] embedding: not a face model")
    return module


class OnnxSummary(NamedTuple):
    quantized: bool
    input_size: tuple | None  # None where the graph leaves H and W open
    embedding_size: int | None


def onnx_summary(path) -> OnnxSummary:
    """What loading needs to know before converting; read once per file version (files can be large)."""
    stat = Path(path).stat() if Path(path).is_file() else None
    return _summary(str(Path(path).resolve()), str(path), stat and (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _summary(resolved: str, path: str, version) -> OnnxSummary:
    model = prepared(read_onnx(path))
    if is_quantized(model):
        return OnnxSummary(True, None, None)
    return OnnxSummary(False, *face_model_io(model, path))


def onnx_entry(ref: str) -> ModelEntry:
    """The registry entry of `--model path/to/model.onnx` (also what `--best_model_path model.onnx` and a
    checkpoint pruned from one resolve to): preprocessing defaults, overridden by the flags."""
    quantized, declared, embedding = onnx_summary(ref)
    if quantized:
        raise UserError(f"{ref}: an INT8 ONNX model (quantized activations) cannot be converted back to a float "
                        f"model: only --mode test scores it (with ONNX Runtime)")

    def build(input_size: tuple, embedding_size: int) -> nn.Module:
        if declared and tuple(input_size) != tuple(declared):
            raise UserError(f"{ref}: the model takes {declared[0]}x{declared[1]} input, not "
                            f"{input_size[0]}x{input_size[1]} (--input_size)")
        if embedding_size != embedding:
            raise UserError(f"{ref}: the model's embedding has {embedding} values, not {embedding_size} "
                            f"(--embedding_size)")
        return convert_onnx(ref, tuple(input_size))
    return ModelEntry(ref, build, InputSpec(size=declared or DEFAULT_SIZE), embedding)

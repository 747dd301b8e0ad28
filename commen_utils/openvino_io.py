"""OpenVINO: a torch model converted to an OpenVINO model, IR files (.xml + .bin) saved and read, and a compiled
model that runs like a torch module (so that `--mode test` and the evaluators take .xml files too)."""
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import UserError

# OpenVINO's CPU plugin runs FP32 models in bf16 where the CPU has AMX or AVX512-BF16, unless told otherwise:
# an "FP32" row must be FP32 on every machine, and the INT8 model's float parts too.
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def to_openvino(model: torch.nn.Module, input_size):
    """A float torch model as an OpenVINO model with a dynamic batch axis."""
    import openvino as ov

    with torch.no_grad(), warnings.catch_warnings():  # it traces with torch.jit, which warns it is deprecated
        warnings.simplefilter("ignore")
        return ov.convert_model(model.eval().cpu(), example_input=torch.zeros(1, 3, *input_size),
                                input=[(-1, 3, *input_size)])


METADATA_KEY = "compression_tool"


def save_ir(ov_model, xml_path, metadata: dict | None = None) -> Path:
    """Writes `xml_path` and the .bin beside it. Weights stay as they are (no fp16 compression). `metadata`
    (the model's name, widths, input size) goes into the IR's rt_info, so that the file rebuilds its float
    twin and preprocessing by itself, as our checkpoints do."""
    import openvino as ov

    if metadata is not None:
        ov_model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=False)
    return Path(xml_path)


def bin_path(xml_path) -> Path:
    return Path(xml_path).with_suffix(".bin")


class OpenVinoModel:
    """Callable like a torch module: float tensor in, float tensor out, run by OpenVINO's CPU plugin with
    torch's thread count at the time of the call. One compiled model per input shape and thread count: a
    static shape lets the plugin pick its kernels once."""

    def __init__(self, model_or_path):
        import openvino as ov

        self.core = ov.Core()
        if isinstance(model_or_path, (str, Path)):
            path = Path(model_or_path)
            if not bin_path(path).exists():
                raise UserError(f"{path}: its weights {bin_path(path).name} are not beside it")
            try:
                model_or_path = self.core.read_model(str(path))
            except RuntimeError as e:
                raise UserError(f"{path}: not an OpenVINO IR file ({str(e).splitlines()[0][:200]})") from None
        self.model = model_or_path
        self.compiled = {}
        shape = self.model.input(0).get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape]
        self.input_size = tuple(dims[2:]) if len(dims) == 4 and None not in dims[2:] else None
        self.metadata = (json.loads(self.model.get_rt_info([METADATA_KEY]).astype(str))
                         if self.model.has_rt_info([METADATA_KEY]) else {})

    def eval(self) -> "OpenVinoModel":
        return self

    def cpu(self) -> "OpenVinoModel":
        return self

    def compiled_for(self, shape: tuple) -> Callable:
        key = (shape, torch.get_num_threads())
        if key not in self.compiled:
            model = self.model.clone()
            model.reshape(list(shape))
            self.compiled[key] = self.core.compile_model(model, "CPU",
                                                         {**CPU_CONFIG, "INFERENCE_NUM_THREADS": key[1]})
        return self.compiled[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(np.array(self.compiled_for(x.shape)(x)[0]))

"""ONNX Runtime static INT8, in the formats worth trying on this CPU, each measured.

ONNX Runtime's documentation recommends QDQ with signed 8-bit activations and weights first on x86-64;
QOperator (integer operators in the graph) with unsigned activations was faster on some of our machines.
Where int8 products saturate (no VNNI), its documentation advises 7-bit weights (reduce_range).
"""
import contextlib
import io
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch

from compression_tool.commen_utils.atomic import atomic_path
from compression_tool.commen_utils.cpu_isa import CpuIsa
from compression_tool.commen_utils.onnx_io import INPUT, OnnxModel

from .backends import Int8Backend, Int8Job, Int8Result, register_backend
from .selection import Candidate, keep_best

CALIBRATION_METHODS = {"minmax": "MinMax", "histogram": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class OnnxRuntimeSettings:
    quant_format: str = "QDQ"  # onnxruntime.quantization.QuantFormat: QDQ | QOperator
    activations: str = "QInt8"  # QuantType of activations: QInt8 | QUInt8
    reduce_range: bool = False  # 7-bit weights

    @property
    def label(self) -> str:
        bits = ", 7-bit weights" if self.reduce_range else ""
        return f"onnxruntime {self.quant_format}, {self.activations} activations{bits}"


def candidate_settings(isa: CpuIsa) -> list:
    options = [OnnxRuntimeSettings("QDQ", "QInt8"), OnnxRuntimeSettings("QOperator", "QUInt8")]
    if isa.saturates_int8:
        options.append(OnnxRuntimeSettings("QOperator", "QUInt8", reduce_range=True))
    return options


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """quantize_static prints its calibration steps and logs a warning per 1-d weight on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


class _ImageReader:
    """ONNX Runtime's calibration interface: one {input: batch} dict per call, None at the end."""

    def __init__(self, images: torch.Tensor, batch_size: int):
        self.batches = iter([{INPUT: images[i:i + batch_size].numpy()} for i in range(0, len(images), batch_size)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantize_onnx(fp32_path, int8_path, images: torch.Tensor, settings: OnnxRuntimeSettings = OnnxRuntimeSettings(),
                  observer: str = "histogram", batch_size: int = 16) -> Path:
    """Static INT8 with per-channel int8 weights, activations calibrated on `images`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with atomic_path(int8_path) as tmp:
        # ORT's own clean-up first: it folds the constants the exporter leaves as nodes (a conv bias fed by
        # a node, not an initializer, makes quantize_static fail) and records shapes
        quant_pre_process(str(fp32_path), str(tmp), skip_symbolic_shape=True)
        with quiet():
            quantize_static(str(tmp), str(tmp), _ImageReader(images, batch_size),
                            quant_format=getattr(QuantFormat, settings.quant_format), per_channel=True,
                            reduce_range=settings.reduce_range,
                            activation_type=getattr(QuantType, settings.activations), weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[observer]))
    return Path(int8_path)


def candidates(fp32_path, folder, calibration: torch.Tensor, isa: CpuIsa, observer: str, batch_size: int) -> list:
    """One quantized file per setting, in `folder`; the chosen one is moved to its final name by the caller."""
    out = []
    for i, settings in enumerate(candidate_settings(isa)):
        path = quantize_onnx(fp32_path, Path(folder) / f"candidate{i}_int8.onnx", calibration, settings, observer,
                             batch_size)
        out.append(Candidate(settings.label, OnnxModel(path), {"backend": "onnxruntime", "path": str(path),
                                                               "observer": observer, **asdict(settings)}))
    return out


def quantize_for_onnxruntime(job: Int8Job) -> Int8Result:
    """Every setting worth trying here quantizes the ONNX export; the best is kept under its final name."""
    folder = job.files["onnx int8"].parent / "onnxruntime_candidates"
    folder.mkdir()
    found = candidates(job.files["onnx fp32"], folder, job.calibration, job.isa, job.config.observer,
                       job.config.calib_batch_size)
    chosen, rows = keep_best("onnxruntime", found, job.fp32, job.validation, job.input_size,
                             job.config.latency_repeats)
    os.replace(chosen.settings["path"], job.files["onnx int8"])
    chosen.model = OnnxModel(job.files["onnx int8"])
    chosen.settings = {k: v for k, v in chosen.settings.items() if k != "path"}
    return Int8Result(chosen, rows)


# Always run: the ONNX INT8 file is the portable one, whichever backend is chosen.
register_backend(Int8Backend("onnxruntime", quantize_for_onnxruntime, int8_file="onnx int8",
                             outputs={"onnx int8": "_int8.onnx"}, preference=1, always=True))

"""INT8 for OpenVINO's CPU plugin by NNCF post-training quantization, with the settings that matter on this CPU
tried and the best kept by measurement; optionally NNCF's accuracy control, which keeps the most damaging
layers in float until the embedding cosine drop is within a bound.

Why a search and not one setting: on a CPU without VNNI the int8 products saturate in int16, and NNCF's
answer (OverflowFix: 7-bit weights, on the first layer by default or everywhere) costs accuracy where the CPU
does not need it; which preset is faster also depends on the CPU. A flag in /proc/cpuinfo says which
settings are worth trying; the cosine and the timing decide.
"""
import logging
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from compression_tool.commen_utils import openvino_io
from compression_tool.commen_utils.cpu_isa import CpuIsa
from compression_tool.commen_utils.openvino_io import OpenVinoModel

from .backends import Int8Backend, Int8Job, Int8Result, register_backend
from .selection import Candidate, keep_best

log = logging.getLogger(__name__)

WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul")


@dataclass(frozen=True)
class OpenVinoSettings:
    preset: str = "mixed"  # nncf.QuantizationPreset: mixed (asymmetric activations, for PReLU) | performance
    overflow_fix: str = "first_layer_only"  # nncf.OverflowFix: first_layer_only (NNCF's default) | enable | disable

    @property
    def label(self) -> str:
        return f"openvino {self.preset}, overflow fix {self.overflow_fix}"


def candidate_settings(isa: CpuIsa) -> list:
    """The first is NNCF's default with the MIXED preset (what a user calling nncf.quantize would get)."""
    default = OpenVinoSettings()
    if isa.saturates_int8:  # 7-bit weights everywhere may be worth their cost; none at all is not safe
        return [default, OpenVinoSettings("mixed", "enable"), OpenVinoSettings("performance", "first_layer_only")]
    # with VNNI nothing saturates: full 8-bit weights on the first layer too
    return [default, OpenVinoSettings("mixed", "disable"), OpenVinoSettings("performance", "disable")]


def _nncf():
    """nncf, imported when first used (it takes seconds), with its INFO lines off: what it chose is printed
    by us, in one table."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # nncf's torch import: "no CUDA"
    import nncf

    nncf.set_log_level(logging.WARNING)
    return nncf


def _calibration_dataset(images: torch.Tensor):
    return _nncf().Dataset([images[i:i + 1].numpy() for i in range(len(images))])


def _advanced(settings: OpenVinoSettings):
    nncf = _nncf()
    return nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix(settings.overflow_fix))


def quantize(ov_fp32, calibration: torch.Tensor, settings: OpenVinoSettings):
    nncf = _nncf()
    return nncf.quantize(ov_fp32, _calibration_dataset(calibration), subset_size=len(calibration),
                         preset=nncf.QuantizationPreset(settings.preset), advanced_parameters=_advanced(settings))


def quantize_with_cosine_control(ov_fp32, calibration: torch.Tensor, validation: torch.Tensor,
                                 reference: torch.Tensor, settings: OpenVinoSettings, max_cosine_drop: float):
    """NNCF's accuracy control with the mean embedding cosine to FP32 on `validation` as the metric: layers
    are put back in float, most damaging first, until the drop from FP32's is at most `max_cosine_drop`."""
    nncf = _nncf()
    items = [(validation[i:i + 1].numpy(), reference[i:i + 1]) for i in range(len(validation))]

    def mean_cosine(compiled: Callable, data: Iterable) -> tuple:
        cosines = [F.cosine_similarity(torch.from_numpy(np.array(compiled(x)[0])), ref, dim=1).item()
                   for x, ref in data]
        return float(np.mean(cosines)), cosines

    return nncf.quantize_with_accuracy_control(
        ov_fp32, _calibration_dataset(calibration), nncf.Dataset(items, lambda item: item[0]), mean_cosine,
        max_drop=max_cosine_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calibration),
        preset=nncf.QuantizationPreset(settings.preset), advanced_quantization_parameters=_advanced(settings))


def _has_int8_weights(op) -> bool:
    """Whether the weights reaching `op` were quantized: NNCF leaves an int8 constant (or a FakeQuantize) at
    the root of the weight input, behind conversions and scalings."""
    node = op.input_value(1).get_node()
    while node.get_type_name() != "Constant":
        if node.get_type_name() == "FakeQuantize":
            return True
        node = node.input_value(0).get_node()
    return node.get_element_type().get_type_name() in ("i8", "u8", "i4", "u4")


def float_layers(ov_model) -> list:
    """Names of the convolutions and matmuls whose weights are not quantized, i.e. that run in float."""
    return [op.get_friendly_name() for op in ov_model.get_ordered_ops()
            if op.get_type_name() in WEIGHTED_OPS and not _has_int8_weights(op)]


def candidates(ov_fp32, calibration: torch.Tensor, isa: CpuIsa) -> list:
    out = []
    for settings in candidate_settings(isa):
        quantized = quantize(ov_fp32, calibration, settings)
        out.append(Candidate(settings.label, OpenVinoModel(quantized), {"backend": "openvino", **asdict(settings)}))
    return out


def search(ov_fp32, reference_model, calibration: torch.Tensor, validation: torch.Tensor, input_size,
           isa: CpuIsa, repeats: int, max_cosine_drop: float | None = None) -> tuple:
    """(chosen, rows): the candidates for this CPU measured and the best kept; with `max_cosine_drop`, the
    chosen settings re-run under accuracy control. The chosen one's settings name its float layers."""
    chosen, rows = keep_best("openvino", candidates(ov_fp32, calibration, isa), reference_model, validation,
                             input_size, repeats)
    if max_cosine_drop is not None:
        with torch.no_grad():
            reference = reference_model(validation)
        settings = OpenVinoSettings(chosen.settings["preset"], chosen.settings["overflow_fix"])
        controlled = quantize_with_cosine_control(ov_fp32, calibration, validation, reference, settings,
                                                  max_cosine_drop)
        kept_float = float_layers(controlled)
        log.info(f"openvino accuracy control (--max_cosine_drop {max_cosine_drop}): {len(kept_float)} layer(s) in "
                 f"float: {', '.join(kept_float) or 'none'}")
        chosen = Candidate(f"{chosen.name}, accuracy control", OpenVinoModel(controlled),
                           {**chosen.settings, "max_cosine_drop": max_cosine_drop})
    chosen.settings["float_layers"] = float_layers(chosen.model.model)
    return chosen, rows


def quantize_for_openvino(job: Int8Job) -> Int8Result:
    """The FP32 IR and the chosen INT8 IR, both carrying the model's name and widths (they reload alone)."""
    metadata = {**job.model_info, "input_size": list(job.input_size)}
    ov_fp32 = openvino_io.to_openvino(job.fp32, job.input_size)
    openvino_io.save_ir(ov_fp32, job.files["openvino fp32"], {**metadata, "precision": "fp32"})
    chosen, rows = search(ov_fp32, job.fp32, job.calibration, job.validation, job.input_size, job.isa,
                          job.config.latency_repeats, job.config.max_cosine_drop)
    openvino_io.save_ir(chosen.model.model, job.files["openvino int8"], {**metadata, "precision": "int8"})
    return Int8Result(chosen, rows, {"openvino fp32": OpenVinoModel(ov_fp32)})


register_backend(Int8Backend(
    "openvino", quantize_for_openvino, int8_file="openvino int8",
    outputs={"openvino fp32": "_fp32.xml", "openvino fp32 weights": "_fp32.bin", "openvino int8": "_int8.xml",
             "openvino int8 weights": "_int8.bin"},
    preference=0, available=openvino_io.available,
    install_hint="openvino and nncf are not installed (pip install -r requirements.txt), or choose "
                 "--quant_backend onnxruntime",
    own_options=lambda config: "--max_cosine_drop" if config.max_cosine_drop is not None else None))

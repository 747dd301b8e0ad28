"""`--mode quantization`'s settings, as plain values (the CLI builds them from flags)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class QuantizationConfig:
    backend: str = "openvino"  # a registered backend's name or alias (quant_module.backends), or auto
    observer: str = "histogram"  # torch and onnxruntime calibration; NNCF calibrates its own way
    prelu: str = "auto"  # torch backend: float | integer | auto
    prelu_batch: int = 32
    calib_batch_size: int = 16
    max_cosine_drop: float | None = None  # openvino: NNCF accuracy control on the validation images
    min_cosine: float = 0.99  # auto: the floor a backend's mean cosine must reach
    fp16: bool = False
    latency_batches: tuple = (1, 32)
    latency_repeats: int = 20
    output_folder: str = "work_space/quantized_model"
    overwrite: bool = False
    calibration_source: str = ""  # shown in the printout

"""`--mode quantization`'s settings, as plain values that check themselves, and the choices the CLI offers."""
from dataclasses import dataclass
from enum import StrEnum

from compression_tool.commen_utils.choices import check_choices
from compression_tool.commen_utils.errors import UserError


class Observer(StrEnum):
    """How activation ranges are calibrated (torch and onnxruntime; NNCF calibrates its own way)."""
    HISTOGRAM = "histogram"
    MINMAX = "minmax"
    PERCENTILE = "percentile"


class PreluMode(StrEnum):
    """torch backend, PReLU between integer layers."""
    FLOAT = "float"
    INTEGER = "integer"  # our fix of torch's kernel
    AUTO = "auto"  # per layer, whichever is faster here at prelu_batch


@dataclass(frozen=True)
class QuantizationConfig:
    backend: str = "openvino"  # a registered backend's name or alias (quant_module.backends), or auto
    observer: Observer = Observer.HISTOGRAM
    prelu: PreluMode = PreluMode.AUTO
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

    def __post_init__(self):
        check_choices(self, observer=Observer, prelu=PreluMode)
        object.__setattr__(self, "latency_batches", tuple(self.latency_batches))
        if self.max_cosine_drop is not None and not 0 < self.max_cosine_drop < 1:
            raise UserError(f"--max_cosine_drop {self.max_cosine_drop}: expected a value in (0, 1), e.g. 0.002")
        if min(self.latency_batches, default=1) < 1 or self.latency_repeats < 1 or self.calib_batch_size < 1:
            raise UserError("--latency_batches, --latency_repeats and --calib_batch_size: expected values >= 1")

"""INT8 in PyTorch: torch.ao's FX flow on the x86/fbgemm kernels (`--quant_backend torch`), for users who must
stay in PyTorch. torch 2.14 deprecates the quantized dtypes it runs on and torch.ao.quantization is slated for
removal; OpenVINO is the maintained path.

Two fixes of our own:
- torch 2.14's quantized PReLU requantizes positive inputs through the *slope's* quantization: it multiplies
  them by 1.0 written in the slope's int8 grid, which saturates whenever 1.0 lies outside the slopes' range
  (SFace's embeddings are wrecked; a test shows it). `PReLUSlopeObserver` puts 1.0 exactly on that grid, and
  PReLU stays integer (`--prelu integer`).
- Or PReLU runs in float between integer layers (`FloatPReLU`). `--prelu auto` picks, layer by layer, the kind
  that is faster on this CPU at `--prelu_batch`.
"""
import copy
import logging
import warnings
from typing import Callable

import torch
import torch.nn as nn
from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig_mapping
from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver, ObserverBase,
                                            PerChannelMinMaxObserver)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.fx import GraphModule
from tqdm import tqdm

from compression_tool.commen_utils.checkpoint import load_weights, save_checkpoint
from compression_tool.commen_utils.hooks import forward_hooks
from compression_tool.commen_utils.latency import median_ms
from compression_tool.model_define.loading import register_precision

from .backends import Int8Backend, Int8Job, Int8Result, register_backend
from .selection import Candidate, candidate_rows, measure

log = logging.getLogger(__name__)

ENGINES = ("x86", "fbgemm")

# torch 2.14 warns on every quantized tensor it creates; the run says once, in one line, that this backend
# is deprecated (quantization.py)
warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")


class FloatPReLU(nn.PReLU):
    """A PReLU that FX's pattern table does not know (it matches exact types), so it stays float."""


class PReLUSlopeObserver(ObserverBase):
    """Slope quantization for the integer PReLU kernel: the range always holds 0 and 1, and the step is 1/n,
    so that 1.0 (the kernel's factor for positive inputs) is exact."""

    def __init__(self, dtype=torch.quint8, **kwargs):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.qscheme = torch.per_tensor_affine
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(1.0))

    def forward(self, slopes: torch.Tensor) -> torch.Tensor:
        self.low = torch.minimum(self.low, slopes.detach().min())
        self.high = torch.maximum(self.high, slopes.detach().max())
        return slopes

    def calculate_qparams(self) -> tuple:
        steps = int(255 // float(self.high - self.low))
        return torch.tensor([1.0 / steps]), torch.tensor([int(round(-float(self.low) * steps))])


class PercentileObserver(ObserverBase):
    """Activation range from the 0.001 % / 99.999 % quantiles of each calibration batch (the widest over
    batches): it ignores the few outliers that stretch a min-max range and waste int8 steps."""

    def __init__(self, dtype=torch.quint8, quantile=0.99999, reduce_range=False, **kwargs):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.quantile, self.reduce_range, self.qscheme = quantile, reduce_range, torch.per_tensor_affine
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().float().flatten()
        if flat.numel() > 2 ** 24:  # torch.quantile's input limit
            flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:2 ** 24]]
        low, high = torch.quantile(flat, torch.tensor([1 - self.quantile, self.quantile]))
        self.low, self.high = torch.minimum(self.low, low), torch.maximum(self.high, high)
        return x

    def calculate_qparams(self) -> tuple:
        levels = 127 if self.reduce_range else 255
        scale = max(float(self.high - self.low) / levels, 1e-8)
        return torch.tensor([scale]), torch.tensor([min(levels, int(round(-float(self.low) / scale)))])


def activation_observer(name: str, reduce_range: bool) -> Callable:
    return {"histogram": HistogramObserver, "minmax": MinMaxObserver,
            "percentile": PercentileObserver}[name].with_args(reduce_range=reduce_range)


def qconfig_mapping(backend: str, observer: str, reduce_range: bool) -> QConfigMapping:
    """Per-channel int8 weights, calibrated activations; nn.PReLU integer with a correct slope grid, FloatPReLU
    left in float."""
    weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    activation = activation_observer(observer, reduce_range)
    return (get_default_qconfig_mapping(backend).set_global(QConfig(activation=activation, weight=weight))
            .set_object_type(nn.PReLU, QConfig(activation=activation, weight=PReLUSlopeObserver))
            .set_object_type(FloatPReLU, None))


def prelu_names(model: nn.Module) -> list:
    return [name for name, module in model.named_modules() if type(module) is nn.PReLU]


def float_prelus(model: nn.Module, integer: list | tuple = ()) -> nn.Module:
    """Swap every nn.PReLU not named in `integer` for a FloatPReLU holding the same slopes."""
    for name in prelu_names(model):
        if name not in integer:
            parent, _, child = name.rpartition(".")
            original = model.get_submodule(name)
            replacement = FloatPReLU(original.num_parameters)
            replacement.weight = original.weight
            setattr(model.get_submodule(parent), child, replacement)
    return model


def prelu_microseconds(shape: tuple, repeats: int = 50) -> tuple:
    """(integer, float) time of one PReLU on a quantized activation of `shape`, in the current engine."""
    x = torch.quantize_per_tensor(torch.randn(shape), 0.05, 128, torch.quint8)
    x = x.contiguous(memory_format=torch.channels_last)  # as quantized convs hand it over
    slopes = torch.rand(shape[1]) - 0.5
    grid = torch.quantize_per_tensor(slopes, 1 / 170, 85, torch.quint8)
    integer = median_ms(lambda: torch.ops.quantized.prelu(x, grid, 0.04, 100), repeats)
    floating = median_ms(lambda: torch.quantize_per_tensor(torch.prelu(x.dequantize(), slopes), 0.04, 100,
                                                           torch.quint8), repeats)
    return 1000 * integer, 1000 * floating


@torch.no_grad()
def faster_integer_prelus(model: nn.Module, input_size: tuple, batch: int, backend: str) -> list:
    """The PReLUs that run faster in integer than in float, measured here at their own input shape and
    `batch`: which kind wins depends on the CPU, the shape and the batch."""
    torch.backends.quantized.engine = backend
    shapes = {}

    def record(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            shapes[name] = tuple(inputs[0].shape)
        return hook

    with forward_hooks({model.get_submodule(name): record(name) for name in prelu_names(model)}):
        model.eval()(torch.zeros(batch, 3, *input_size))
    timings = {shape: prelu_microseconds(shape) for shape in set(shapes.values())}
    return [name for name, shape in shapes.items() if timings[shape][0] < timings[shape][1]]


def prepare_int8(model: nn.Module, input_size: tuple, settings: dict) -> GraphModule:
    """The float model with observers inserted (FX), ready to calibrate; `settings` is what a checkpoint
    stores to rebuild the same structure: engine (torch's kernels), observer, integer_prelus (names),
    reduce_range."""
    engine = settings.get("engine") or settings["backend"]  # checkpoints before "engine" kept it in "backend"
    torch.backends.quantized.engine = engine
    model = float_prelus(copy.deepcopy(model).cpu().eval(), settings["integer_prelus"])
    mapping = qconfig_mapping(engine, settings["observer"], settings["reduce_range"])
    with warnings.catch_warnings():  # torch.ao's deprecation notice, repeated for every module
        warnings.simplefilter("ignore")
        return prepare_fx(model, mapping, example_inputs=(torch.zeros(1, 3, *input_size),))


def convert_int8(prepared: GraphModule) -> GraphModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared)


@torch.no_grad()
def quantize_int8(model: nn.Module, input_size: tuple, images: torch.Tensor, settings: dict, batch_size: int = 16,
                  progress: bool = True) -> GraphModule:
    prepared = prepare_int8(model, input_size, settings)
    for i in tqdm(range(0, len(images), batch_size), desc="calibrating", disable=None if progress else True):
        prepared(images[i:i + batch_size])
    return convert_int8(prepared)


def integer_prelu_state(quantized: nn.Module) -> dict:
    """torch's quantized PReLU keeps its slopes, output scale and zero point as plain attributes, outside the
    state_dict: a checkpoint carries them in its metadata instead."""
    return {name: {"weight": module.weight, "scale": module.scale, "zero_point": module.zero_point}
            for name, module in quantized.named_modules() if isinstance(module, torch.ao.nn.quantized.PReLU)}


def load_int8(model: nn.Module, input_size: tuple, settings: dict, state_dict: dict | None,
              source: str) -> GraphModule:
    """A saved INT8 model: the float model (right widths) -> the same quantized layout -> its weights."""
    quantized = int8_structure(model, input_size, settings)
    if state_dict is not None:
        load_weights(quantized, state_dict, source)
    for name, state in settings.get("integer_prelu_state", {}).items():
        module = quantized.get_submodule(name)
        module.set_weight(state["weight"])
        module.scale, module.zero_point = float(state["scale"]), int(state["zero_point"])
    return quantized


def int8_structure(model: nn.Module, input_size: tuple, settings: dict) -> GraphModule:
    """An uncalibrated INT8 model with the layout a saved one has, to load its state_dict into."""
    with warnings.catch_warnings():  # observers that saw no data warn; their values are about to be loaded
        warnings.simplefilter("ignore")
        return convert_int8(prepare_int8(model, input_size, settings))


def quantize_for_torch(job: Int8Job) -> Int8Result:
    log.info("note: the torch backend runs on torch.ao.quantization, which torch 2.14 deprecates and will remove; "
             "--quant_backend openvino is the maintained path")
    config, fp32 = job.config, job.fp32
    engine = config.backend if config.backend in ENGINES else ENGINES[0]
    integer = {"float": [], "integer": prelu_names(fp32)}.get(config.prelu)
    if integer is None:  # auto
        integer = faster_integer_prelus(fp32, job.input_size, config.prelu_batch, engine)
    settings = {"precision": "int8", "backend": "torch", "engine": engine, "observer": config.observer, "integer_prelus": integer,
                "reduce_range": job.isa.saturates_int8}
    model = quantize_int8(fp32, job.input_size, job.calibration, settings, config.calib_batch_size)
    save_checkpoint(job.files["torch int8"], model, **job.model_info,
                    metadata={**settings, "integer_prelu_state": integer_prelu_state(model)})
    log.info(f"torch INT8: {engine} kernels, observer {config.observer}, {len(integer)} of "
             f"{len(prelu_names(fp32))} PReLUs integer (--prelu {config.prelu}), "
             f"{7 if settings['reduce_range'] else 8}-bit activations")
    candidate = Candidate(f"torch {engine}", model, settings)
    measure([candidate], fp32, job.validation, job.input_size, (1,), config.latency_repeats)
    return Int8Result(candidate, candidate_rows([candidate], candidate))


register_backend(Int8Backend("torch", quantize_for_torch, int8_file="torch int8", outputs={"torch int8": "_int8.pt"},
                             preference=2, aliases=ENGINES,  # the original's values name torch's kernels
                             own_options=lambda config: "--prelu integer" if config.prelu == "integer" else None))
register_precision("int8", load_int8)  # the INT8 checkpoints this backend saves load through model_define

"""INT8 backends by name. Each backend file of quant_module registers the function that quantizes a float
model on its runtime, the files it writes and the one of them that holds its INT8 model; `--mode quantization`
runs the backends a config names, without knowing any of them by name."""
import importlib
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from compression_tool.commen_utils.cpu_isa import CpuIsa
from compression_tool.commen_utils.errors import UserError

from .config import QuantizationConfig
from .selection import Candidate


@dataclass(frozen=True)
class Int8Job:
    """What every backend is given: the float model, images from the training folder (`calibration` to set
    ranges, `validation` to choose between settings), and the staged output paths by row name."""
    config: QuantizationConfig
    isa: CpuIsa
    fp32: nn.Module
    calibration: torch.Tensor
    validation: torch.Tensor
    model_info: dict  # arch, keep, input_size, embedding_size: written into every file so that it reloads alone
    files: dict

    @property
    def input_size(self) -> tuple:
        return self.model_info["input_size"]


@dataclass
class Int8Result:
    chosen: Candidate  # its settings are recorded in --result_json
    rows: list  # every candidate measured, for the printout and --result_json
    float_variants: dict = field(default_factory=dict)  # the runtime's own FP32 model, compared beside torch's


@dataclass(frozen=True)
class Int8Backend:
    name: str
    quantize: Callable[[Int8Job], Int8Result]
    int8_file: str  # the row of `outputs` that holds the INT8 model
    outputs: dict  # row name -> file suffix ('NAME weights' rows are a model's second file)
    preference: int  # the default backend is the available one with the lowest
    available: Callable[[], bool] = lambda: True
    install_hint: str = ""  # what to do when it is not available
    aliases: tuple = ()  # other --quant_backend values that select it (the original's kernel names)
    always: bool = False  # runs in every quantization, whichever backend is chosen (the portable ONNX INT8)
    own_options: Callable[[QuantizationConfig], str | None] = lambda config: None  # the flag set that only it uses


BACKENDS: dict[str, Int8Backend] = {}
BUILT_IN = ("openvino_ptq", "onnxruntime_ptq", "torch_fx")  # the files of quant_module that register one


def register_backend(backend: Int8Backend) -> Int8Backend:
    BACKENDS[backend.name] = backend
    return backend


def registered() -> list:
    """Every backend, the built-in ones imported (and so registered) first."""
    for module in BUILT_IN:
        importlib.import_module(f".{module}", __package__)
    return list(BACKENDS.values())


def backend_named(value: str) -> Int8Backend:
    """The backend a --quant_backend value selects (its name or one of its aliases)."""
    for backend in registered():
        if value == backend.name or value in backend.aliases:
            return backend
    raise UserError(f"--quant_backend {value}: choose one of {', '.join(backend_choices())}")


def by_preference(backends) -> list:
    return sorted(backends, key=lambda b: b.preference)


def backend_choices() -> tuple:
    return tuple(name for b in by_preference(registered()) for name in (b.name, *b.aliases)) + ("auto",)


def default_backend() -> str:
    """The preferred backend that runs here: openvino, else onnxruntime (torch.ao's is deprecated)."""
    return by_preference(b for b in registered() if b.available())[0].name


def backends_to_run(config: QuantizationConfig) -> list:
    """The backends a run quantizes with, in that order: those that always run, then the chosen one (every
    available one for auto) by preference."""
    if config.backend == "auto":
        chosen = {b.name for b in registered() if b.available()}
    else:
        chosen = {backend_named(config.backend).name}
    return sorted((b for b in registered() if b.name in chosen or b.always), key=lambda b: (not b.always, b.preference))


def check_backends(config: QuantizationConfig) -> None:
    """--quant_backend names a backend that runs here, and no flag asks for what only another backend does."""
    selected = None if config.backend == "auto" else backend_named(config.backend)
    if selected is not None and not selected.available():
        raise UserError(f"--quant_backend {config.backend}: {selected.install_hint}")
    running = backends_to_run(config)
    for backend in by_preference(registered()):
        flag = backend.own_options(config)
        if flag and backend not in running:
            names = f" ({', '.join((backend.name, *backend.aliases))})" if backend.aliases else ""
            raise UserError(f"{flag} applies to the {backend.name} backend{names}, not to {config.backend}")

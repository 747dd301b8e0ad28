"""The model zoo: `--model NAME` -> factory, as a registry (timm-style) instead of an if-chain.

A family file registers its factories with @register_model. Every factory takes `input_size` (H, W) and
`embedding_size`; `create_model` adds `keep` (per-layer output widths of a pruned model) for all of them,
so a pruned model is rebuilt by name + keep. A user model is `--model path/to/file.py:factory`.
"""
import importlib
import inspect
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch.nn as nn

from compression_tool.commen_utils.errors import UserError


@dataclass(frozen=True)
class InputSpec:
    """How images become the model's input: pixel = (value_0_255 - mean) / std, in `channel_order`."""
    size: tuple = (112, 112)
    channel_order: str = "RGB"
    mean: float = 127.5
    std: float = 127.5


@dataclass
class ModelEntry:
    name: str
    factory: callable
    spec: InputSpec
    embedding_size: int = 512
    task: str = "verification"          # or "classification" (logits, e.g. liveness)
    input_sizes: tuple = field(default_factory=tuple)  # other sizes the family supports
    # Which prunable layers auto_make_yaml schedules by default (the original's per-family choice).
    schedule_layers: str = r".*"

    def build(self, input_size: tuple | None = None, embedding_size: int | None = None) -> nn.Module:
        return self.factory(input_size=tuple(input_size or self.spec.size),
                            embedding_size=embedding_size or self.embedding_size)


_REGISTRY: dict = {}
_ALIASES: dict = {}  # another name of the same network (arcface_torch's r50 is our resnet50) -> registered name


def register_model(name, spec: InputSpec = InputSpec(), embedding_size=512, task="verification",
                   input_sizes=(), schedule_layers=r".*", aliases=()):
    def wrap(factory: Callable) -> Callable:
        _REGISTRY[name] = ModelEntry(name, factory, spec, embedding_size, task, tuple(input_sizes), schedule_layers)
        _ALIASES.update({alias: name for alias in aliases})
        return factory
    return wrap


def _import_families():
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.name not in ("registry", "keep"):
            importlib.import_module(f".{info.name}", __package__)


def list_models() -> list:
    """Every name --model accepts, aliases included."""
    _import_families()
    return sorted({**_REGISTRY, **_ALIASES})


def _entry_from_file(ref: str) -> ModelEntry:
    file, _, factory_name = ref.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise UserError(f"--model {ref}: file {path} not found")
    spec = importlib.util.spec_from_file_location(f"user_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report, don't crash with its traceback
        raise UserError(f"--model {ref}: importing {path} failed ({type(e).__name__}: {e})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UserError(f"--model {ref}: {path} has no function '{factory_name}'")
    input_spec = getattr(module, "INPUT_SPEC", InputSpec())
    if isinstance(input_spec, dict):  # a user's file need not import ours
        try:
            input_spec = InputSpec(**{k: tuple(v) if k == "size" else v for k, v in input_spec.items()})
        except TypeError as e:
            raise UserError(f"--model {ref}: INPUT_SPEC in {path}: {e} (keys: size, channel_order, mean, std)") \
                from None

    accepted = inspect.signature(factory).parameters

    def build(input_size: tuple, embedding_size: int) -> nn.Module:  # pass only what the user's factory takes
        offered = {"input_size": input_size, "embedding_size": embedding_size}
        return factory(**{k: v for k, v in offered.items() if k in accepted})
    return ModelEntry(ref, build, input_spec, getattr(module, "EMBEDDING_SIZE", 512))


def is_onnx_reference(name: str | None) -> bool:
    return bool(name) and str(name).lower().endswith(".onnx")


def _entry_from_onnx(ref: str) -> ModelEntry:
    from .onnx_import import onnx_entry  # onnx2torch is imported only when an ONNX file is named
    return onnx_entry(ref)


# Models named by a file rather than registered: (does the name refer to such a file, how to read it)
_FILE_REFERENCES = ((lambda name: ".py:" in name, _entry_from_file), (is_onnx_reference, _entry_from_onnx))


def canonical_name(name: str) -> str:
    """The registered name behind an alias; any other name as it is."""
    _import_families()
    return _ALIASES.get(name, name)


def get_entry(name: str) -> ModelEntry:
    for refers, entry_from in _FILE_REFERENCES:
        if name and refers(str(name)):
            return entry_from(str(name))
    name = canonical_name(name)
    if name not in _REGISTRY:
        raise UserError(f"--model {name}: unknown model (known: {', '.join(list_models())}, "
                        "path/to/file.py:factory or path/to/model.onnx)")
    return _REGISTRY[name]


def create_model(name: str, input_size: tuple | None = None, embedding_size: int | None = None,
                 keep: dict | None = None) -> nn.Module:
    entry = get_entry(name)
    model = entry.build(input_size, embedding_size)
    if keep:
        from .keep import apply_keep
        apply_keep(model, keep, tuple(input_size or entry.spec.size))
    return model

"""Forward hooks that are always removed, and the input a layer receives."""
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn as nn


@contextmanager
def forward_hooks(hooks: dict[nn.Module, Callable], pre: bool = False) -> Iterator[None]:
    """Forward hooks (pre-hooks with `pre`) on the given modules for the duration of a `with` block."""
    handles = [m.register_forward_pre_hook(h) if pre else m.register_forward_hook(h) for m, h in hooks.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _Reached(Exception):
    def __init__(self, value):
        self.value = value


@torch.no_grad()
def input_of(model: nn.Module, name: str, batch: torch.Tensor) -> torch.Tensor:
    """What module `name` receives when `model` runs on `batch`; the forward stops there."""
    def stop(_, inputs):
        raise _Reached(inputs[0])

    try:
        with forward_hooks({model.get_submodule(name): stop}, pre=True):
            model(batch)
    except _Reached as reached:
        return reached.value
    raise RuntimeError(f"{name} is not called by the forward pass")


@contextmanager
def layer_outputs(model: nn.Module, names) -> Iterator[dict]:
    """{name: output} of the named submodules, filled by every forward pass inside the `with` block."""
    outputs = {}
    hooks = {model.get_submodule(name): (lambda _, __, output, name=name: outputs.__setitem__(name, output))
             for name in names}
    with forward_hooks(hooks):
        yield outputs

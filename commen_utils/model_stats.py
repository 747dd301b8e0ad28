"""Parameter and MAC counts. MACs count conv and linear multiply-accumulates only, as Distiller did
(BN, activations and adds are free); torch's own FLOP counter does the counting."""
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from compression_tool.commen_utils.hooks import forward_hooks


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model, input_size) -> int:
    h, w = input_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, h, w, device=device))
    model.train(was_training)
    # The counter reports FLOPs of matmuls and convolutions as 2 per multiply-accumulate.
    return counter.get_total_flops() // 2


class ThinnedMacs:
    """MACs of thinned copies of one model without running them. A conv's or linear's MACs are its weight's
    size times the positions it is applied at, and thinning changes only the weight; sensitivity analysis
    needs the count for every (layer, level), where a counted forward per row was a visible share of its time.
    A model with MACs outside nn.Conv2d / nn.Linear modules (functional calls) is counted each time."""

    def __init__(self, model, input_size):
        self.input_size, positions = tuple(input_size), {}

        def record(name: str) -> Callable:
            def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                channels = output.shape[1] if isinstance(module, torch.nn.Conv2d) else output.shape[-1]
                positions[name] = positions.get(name, 0) + output.numel() // channels
            return count

        layers = {m: record(name) for name, m in model.named_modules()
                  if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
        with forward_hooks(layers):
            total = count_macs(model, input_size)
        self.positions = positions if total == self._sum(positions, dict(model.named_modules())) else None

    @staticmethod
    def _sum(positions, modules):
        return sum(n * modules[name].weight.numel() for name, n in positions.items())

    def __call__(self, thinned) -> int:
        if self.positions is None:
            return count_macs(thinned, self.input_size)
        return self._sum(self.positions, dict(thinned.named_modules()))

"""Parameter and MAC counts. MACs count conv and linear multiply-accumulates only, as Distiller did
(BN, activations and adds are free); torch's own FLOP counter does the counting."""
import torch
from torch.utils.flop_counter import FlopCounterMode


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

import torch
import torch.nn as nn


def randomize(model, seed=0):
    """Non-trivial BN statistics and PReLU slopes, so that a wrongly thinned channel shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        elif isinstance(m, nn.PReLU):
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) * 0.5)
    return model.eval()


@torch.no_grad()
def zero_channels(model, plan):
    """The unpruned reference for a pruning plan: its channels silenced in every producer and norm."""
    modules = dict(model.named_modules())
    for name, handler, idxs in plan:
        m = modules[name]
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.weight[idxs] = 0
            m.bias[idxs] = 0
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and handler.__name__ == "prune_out_channels":
            m.weight[idxs] = 0
            if m.bias is not None:
                m.bias[idxs] = 0
    return model

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


class MaskedLayerNorm(nn.Module):
    """A LayerNorm over the channels that ignores some of them: what a LayerNorm becomes when those channels
    are removed (their outputs are zero), the reference for thinning a LayerNorm-normalised group."""

    def __init__(self, norm, removed):
        super().__init__()
        self.norm, self.removed = norm, set(removed)
        self.channel_dim = 1 if type(norm).__name__ == "LayerNorm2d" else -1  # torchvision's channels-first LN

    def forward(self, x):
        x = x.movedim(self.channel_dim, -1)
        keep = [i for i in range(x.shape[-1]) if i not in self.removed]
        out = torch.zeros_like(x)
        out[..., keep] = nn.functional.layer_norm(x[..., keep], (len(keep),), self.norm.weight[keep],
                                                  self.norm.bias[keep], self.norm.eps)
        return out.movedim(-1, self.channel_dim)


@torch.no_grad()
def zero_channels(model, plan):
    """The unpruned reference for a pruning plan: its channels silenced in every producer and norm (a
    LayerNorm normalises the others without them)."""
    modules = dict(model.named_modules())
    for name, _, idxs, outputs, _ in plan:
        m = modules.get(name)
        if isinstance(m, MaskedLayerNorm):
            m.removed.update(idxs)
        elif isinstance(m, nn.LayerNorm):
            owner, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(owner), attribute, MaskedLayerNorm(m, idxs))
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.weight[idxs] = 0
            m.bias[idxs] = 0
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and outputs:
            m.weight[idxs] = 0
            if m.bias is not None:
                m.bias[idxs] = 0
    return model

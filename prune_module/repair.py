"""Repair after thinning, without training: least-squares refit of the layers that lost input channels
(ThiNet / He et al. 2017), and BatchNorm statistics re-estimated on a few images (adaptive BN, EagleEye).

A layer is refitted on its input columns: a conv's unfolded patches (channel-major, as its flattened weight
is), a Linear's features. Any dense conv with zero padding and any Linear can be refitted, as long as its
columns fit in memory (MAX_REFIT_COLUMNS); refit_problem() says why another one is not.
"""
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from compression_tool.commen_utils.batching import batches, device_of
from compression_tool.commen_utils.errors import step
from compression_tool.commen_utils.hooks import forward_hooks, input_of

from .graph import Edit, call_order

# A refit holds a (columns x columns) float64 gram and an equally large cross term: 0.5 GiB each here.
MAX_REFIT_COLUMNS = 8192
# Elements of float64 input columns formed at once (memory, not speed): 256 MiB.
CHUNK_ELEMENTS = 1 << 25


@dataclass
class Repair:
    """What is done after thinning: least-squares refit of the layers that lost inputs on the first
    `reconstruct` images, then BN statistics re-estimated on the first `bn_recalibrate`."""
    images: torch.Tensor = None
    reconstruct: int = 0
    bn_recalibrate: int = 0


# ---------------------------------------------------------------- BN recalibration (adaptive BN)
@torch.no_grad()
def recalibrate_bn(model, inputs: torch.Tensor, batch_size: int = 32, norms=None):
    """Re-estimate BatchNorm running statistics on `inputs` (no training, no labels). `model` may be any
    callable over the inputs (e.g. the part of a network after a cached cut); `norms` limits which BNs
    are re-estimated (default: all of them)."""
    if norms is None:
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if hasattr(model, "eval"):
        model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    device = inputs.device if not norms else norms[0].running_mean.device
    for batch in batches(inputs, batch_size, device):
        model(batch)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
        m.eval()
    return model


# ---------------------------------------------------------------- least-squares reconstruction
def refit_columns(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features
    return module.in_channels * module.kernel_size[0] * module.kernel_size[1]


def gram_bytes(module: nn.Module) -> int:
    return (refit_columns(module) + 1) ** 2 * 8


def refit_problem(module: nn.Module) -> str | None:
    """Why least squares does not refit this layer once it has lost input channels, or None."""
    if isinstance(module, nn.Conv2d):
        if module.groups > 1:
            return f"grouped convolution (groups={module.groups})"
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            return f"padding {module.padding!r} ({module.padding_mode})"
    elif not isinstance(module, nn.Linear):
        return f"a {type(module).__name__}"
    if refit_columns(module) > MAX_REFIT_COLUMNS:
        return f"{refit_columns(module)} input columns, more than a refit holds ({MAX_REFIT_COLUMNS})"
    return None


def images_per_chunk(module: nn.Module, x: torch.Tensor) -> int:
    """How many images' input columns to form at once, so that they take at most CHUNK_ELEMENTS."""
    positions = x.shape[2] * x.shape[3] // (module.stride[0] * module.stride[1]) if x.dim() == 4 else 1
    return max(1, CHUNK_ELEMENTS // max(1, refit_columns(module) * positions))


def columns(module: nn.Module, x: torch.Tensor, per_chunk: int) -> Iterator[torch.Tensor]:
    """What `module` multiplies by its flattened weight, as float64 (columns x samples) chunks of
    `per_chunk` images: a conv's unfolded patches, a Linear's features."""
    for chunk in x.split(per_chunk):
        if isinstance(module, nn.Linear):
            yield chunk.reshape(-1, chunk.shape[-1]).double().T
        else:
            patches = F.unfold(chunk.double(), module.kernel_size, module.dilation, module.padding, module.stride)
            yield patches.transpose(0, 1).flatten(1)


def with_constant(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(1, x.shape[1], dtype=x.dtype, device=x.device)])


@torch.no_grad()
def input_grams(model: nn.Module, images: torch.Tensor, names, batch_size: int = 32) -> dict:
    """{layer name: sum of x x^T over its input columns, with a constant channel appended} over `images`."""
    modules = dict(model.named_modules())
    grams = {name: 0 for name in names}

    def hook(name):
        def record(module, inputs):
            x = inputs[0].detach()
            for x in columns(module, x, images_per_chunk(module, x)):
                x = with_constant(x)
                grams[name] = grams[name] + (x @ x.T).cpu()
        return record

    with forward_hooks({modules[name]: hook(name) for name in names}, pre=True):
        model.eval()
        for batch in batches(images, batch_size, device_of(model)):
            model(batch)
    return grams


def kept_columns(module: nn.Module, removed_channels) -> list[int]:
    """The input columns left once these input channels are gone (a conv's channel owns kh*kw columns)."""
    per_channel = 1 if isinstance(module, nn.Linear) else module.kernel_size[0] * module.kernel_size[1]
    return [c * per_channel + k for c in range(refit_columns(module) // per_channel) if c not in removed_channels
            for k in range(per_channel)]


def reconstruct(pruned: nn.Module, original: nn.Module, plans: list[list[Edit]], grams: dict, following_bn: dict,
                ridge: float = 1e-3) -> nn.Module:
    """Refit every layer in `grams` that lost input channels so that it reproduces its unpruned output from
    the columns left (least squares on calibration activations of the unpruned model, `grams` from
    input_grams). Exact for one pruned group, as in sensitivity analysis; prune mode refits several groups
    with reconstruct_sequentially instead."""
    removed_in, removed_out = removed_channels(plans)
    modules = dict(original.named_modules())
    for name, gone in removed_in.items():
        if name not in grams:
            continue
        gram = grams[name]
        keep = kept_columns(modules[name], gone) + [len(gram) - 1]
        refit(original, pruned, name, removed_out.get(name, ()), gram[keep][:, keep], gram[:-1][:, keep],
              following_bn, ridge)
    return pruned


@torch.no_grad()
def reconstruct_sequentially(pruned: nn.Module, original: nn.Module, plans: list[list[Edit]], images: torch.Tensor,
                             following_bn: dict, order: list[str], batch_size: int = 32,
                             ridge: float = 1e-3) -> dict:
    """Refit the layers that lost input channels one after another in forward order, each on what really
    reaches it in the pruned model (the refits before it included), to reproduce the unpruned model's output
    there (He et al., "Channel pruning", 2017). Fitting each from the unpruned inputs alone ignores the
    error of every pruned layer before it, which BN re-estimation does not undo (BENCHMARKS.md compares
    the two). Returns {layer: why it was not refitted} for those that lost inputs and were left as they are."""
    removed_in, removed_out = removed_channels(plans)
    pruned.eval()
    original.eval()
    modules, before = dict(pruned.named_modules()), dict(original.named_modules())
    skipped = {name: refit_problem(modules[name]) for name in removed_in if refit_problem(modules[name])}
    for name in sorted((n for n in removed_in if n not in skipped), key=order.index):
        with step(f"least-squares refit of {name}"):
            gram = cross = 0
            for batch in batches(images, batch_size, device_of(pruned)):
                full, kept = input_of(original, name, batch), input_of(pruned, name, batch)
                per_chunk = images_per_chunk(before[name], full)
                for full, kept in zip(columns(before[name], full, per_chunk),
                                      columns(modules[name], kept, per_chunk)):
                    kept = with_constant(kept)
                    gram = gram + (kept @ kept.T).cpu()
                    cross = cross + (full @ kept.T).cpu()
            refit(original, pruned, name, removed_out.get(name, ()), gram, cross, following_bn, ridge)
    return skipped


def removed_channels(plans: list[list[Edit]]) -> tuple[dict, dict]:
    """({module: input channels removed}, {module: output channels removed}) over all plans, in the unpruned
    model's own indices. Each plan counts its indices on the model as the plans before it left it: a layer
    that several groups thin (a trunk behind a concatenation, a residual stage) sees its later indices
    shifted, so they are mapped back through the earlier removals."""
    removed = ({}, {})  # (inputs, outputs)
    for plan in plans:
        now = {}  # this plan's indices, all counted on the same state of the model
        for edit in plan:
            now.setdefault((edit.outputs, edit.module), set()).update(edit.idxs)
        for (outputs, module), idxs in now.items():
            gone = removed[outputs].setdefault(module, set())
            gone.update(unpruned_indices(gone, idxs))
    return removed


def unpruned_indices(gone: set, idxs) -> list[int]:
    """Where channels `idxs` of a thinned layer were before the channels `gone` were removed from it."""
    idxs = sorted(idxs)
    left = [c for c in range(idxs[-1] + len(gone) + 1) if c not in gone] if idxs else []
    return [left[i] for i in idxs]


def refit(original: nn.Module, pruned: nn.Module, name: str, removed_out, gram: torch.Tensor, cross: torch.Tensor,
          following_bn: dict, ridge: float) -> None:
    """Least squares for one layer: `gram` = sum of x x^T over the input columns it keeps (plus a constant
    channel), `cross` = sum of x_unpruned x^T. The fitted constant term goes into the following BN's running
    mean (or the layer's bias). A ridge of `ridge` x mean diagonal keeps the solve well posed."""
    before, layer = dict(original.named_modules())[name], dict(pruned.named_modules())[name]
    rows = [i for i in range(before.weight.shape[0]) if i not in removed_out]
    weight = before.weight.detach().double().flatten(1).cpu()[rows]
    bias = before.bias
    bias = torch.zeros(len(rows), dtype=torch.float64) if bias is None else bias.detach().double().cpu()[rows]
    # What the unpruned layer gave, correlated with the inputs left (and the constant).
    target = weight @ cross + bias[:, None] * gram[-1]
    gram = gram + ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    fitted = torch.linalg.solve(gram, target.T).T
    layer.weight.data = fitted[:, :-1].to(layer.weight).reshape(layer.weight.shape)
    bn = dict(pruned.named_modules()).get(following_bn.get(name))
    if layer.bias is not None:
        layer.bias.data = fitted[:, -1].to(layer.bias)
    elif bn is not None:
        bn.running_mean.data -= (fitted[:, -1] - bias).to(bn.running_mean)


def following_norms(model: nn.Module, input_size) -> dict:
    """{conv or linear name: the BatchNorm called right after it on its output}, for bias compensation."""
    order, modules = call_order(model, input_size), dict(model.named_modules())
    return {a: b for a, b in zip(order, order[1:])
            if isinstance(modules[a], (nn.Conv2d, nn.Linear))
            and isinstance(modules[b], nn.modules.batchnorm._BatchNorm)
            and modules[b].num_features == modules[a].weight.shape[0]}


def refittable_consumers(plans: list[list[Edit]], modules: dict) -> list[str]:
    """The layers whose input channels these plans remove and that reconstruction can refit."""
    return sorted({edit.module for plan in plans for edit in plan
                   if not edit.outputs and refit_problem(modules[edit.module]) is None})

"""`keep`: the output width of every conv and linear layer, by module name.

Recorded from a pruned model and stored in its checkpoint; applied to a freshly built full-size model by
removing channels through torch-pruning's dependency graph, so coupled layers (BN, PReLU, depthwise
partners, residual stages, next layers' inputs) follow. Which channels go does not matter here: the
checkpoint's weights are loaded afterwards. This is what makes hand-written "pruned definition" files
unnecessary, for zoo models and user models alike.
"""
import torch.nn as nn

from compression_tool.commen_utils.errors import UserError

from .dependency_graph import build_graph, out_channel_pruner


def layer_width(module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def record_keep(model) -> dict:
    return {name: layer_width(m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def apply_keep(model, keep: dict, input_size):
    modules = dict(model.named_modules())
    unknown = [name for name in keep if name not in modules]
    if unknown:
        raise UserError(f"keep names layers the model does not have: {', '.join(unknown[:3])}")
    graph = None
    for name, target in keep.items():
        module = modules[name]
        current = layer_width(module)
        if target > current:
            raise UserError(f"keep asks {name} for {target} channels but the model has only {current}")
        if target == current:
            continue
        graph = graph or build_graph(model, input_size)
        group = graph.get_pruning_group(module, out_channel_pruner(module), idxs=list(range(target, current)))
        group.prune()
    wrong = [f"{n}: {layer_width(modules[n])} != {t}" for n, t in keep.items() if layer_width(modules[n]) != t]
    if wrong:
        raise UserError(f"keep is inconsistent with the model's coupled layers: {', '.join(wrong[:3])}")
    return model

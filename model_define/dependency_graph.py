"""torch-pruning's dependency graph of a model, made safe for the ops it cannot follow.

It sits here, below the pruning engine, because rebuilding a pruned checkpoint (keep.apply_keep) needs the same
graph as planning a prune (prune_module.graph.ChannelGraph): loading a model never imports the engine.
"""
import os
import traceback
from typing import Callable

import torch
import torch.nn as nn
import torch_pruning as tp

from compression_tool.commen_utils.errors import UserError


def build_graph(model: nn.Module, input_size: tuple, ignored_layers: list | tuple = ()) -> tp.DependencyGraph:
    """torch-pruning's dependency graph, plus `untraceable`: {node of an op whose channel mapping torch-pruning
    does not follow: why}. Such an op (a channel shuffle's view, say) either stops the whole graph, and every
    later get_pruning_group, at an exception, or is mapped wrongly; it is made a dead end instead, so that
    every group that reaches it is found and left out (ChannelGraph does) and the others are not."""
    h, w = input_size
    device = next(model.parameters()).device
    graph, failure = tp.DependencyGraph(), None
    with torch.enable_grad():  # the graph is traced through autograd, even when called under no_grad
        try:
            graph.build_dependency(model, example_inputs=torch.zeros(1, 3, h, w, device=device),
                                   ignored_layers=list(ignored_layers), verbose=False)
        except Exception as error:
            failure = error
    graph.untraceable = untraceable_ops(graph, remap=failure is not None) if hasattr(graph, "module2node") else {}
    if failure is not None and not graph.untraceable:
        raise UserError(f"{type(model).__name__}: torch-pruning cannot trace its graph ({type(failure).__name__}: "
                        f"{failure}, in {innermost_frame(failure)}): nothing can be pruned") from failure
    return graph


def untraceable_ops(graph: tp.DependencyGraph, remap: bool) -> dict:
    """{node: why} for the reshapes that regroup channels and, with `remap` (torch-pruning stopped at the
    first op whose mapping failed), every op whose mapping fails when each is worked out on its own. Empty
    when the graph failed elsewhere (inferring shapes)."""
    from torch_pruning.dependency import index_mapping, shape_infer

    kind = tp.ops.OPTYPE
    mappers = {kind.CONCAT: index_mapping.update_concat_index_mapping,
               kind.SPLIT: index_mapping.update_split_index_mapping,
               kind.RESHAPE: index_mapping.update_reshape_index_mapping,
               kind.UNBIND: index_mapping.update_unbind_index_mapping,
               kind.EXPAND: index_mapping.update_expand_index_mapping,
               kind.SLICE: index_mapping.update_slice_index_mapping}
    failed = {node: why for node in graph.module2node.values() if (why := regrouping_reshape(node))}
    if remap:
        try:
            shape_infer.init_shape_information(graph)
        except Exception:
            return {}
        for node in graph.module2node.values():
            try:
                if node not in failed:
                    mappers.get(node.type, lambda *_: None)(graph, node)
            except Exception as error:
                failed[node] = (f"its channels pass through a {node.type.name.lower()} op "
                                f"({type(node.grad_fn).__name__}) whose channel mapping torch-pruning cannot follow "
                                f"({type(error).__name__}: {error})")
    for node in failed:
        node.type = kind.ELEMENTWISE  # torch-pruning's later updates of the mappings pass over it
        node.dependencies = []  # a group that reaches it stops there
        for neighbour in node.inputs + node.outputs:
            for dep in neighbour.dependencies:
                # torch-pruning's mapping into it could drop every channel: the group must reach it to be left out
                if dep.target is node and isinstance(dep.index_mapping[0], index_mapping._FlattenIndexMapping):
                    dep.index_mapping[0] = None
    return failed


def regrouping_reshape(node) -> str | None:
    """Why a reshape regroups the channels of an (N, C, ...) tensor, or None: a channel shuffle's split of C
    into (g, C/g) or merge back, which torch-pruning maps as if it were a flatten (or fails on)."""
    sizes = getattr(node.grad_fn, "_saved_self_sym_sizes", None)
    metadata = getattr(node.grad_fn, "_input_metadata", None)  # the op's output, as autograd records it
    if node.type != tp.ops.OPTYPE.RESHAPE or sizes is None or not metadata:
        return None
    before, after = tuple(int(s) for s in sizes), tuple(int(s) for s in metadata[0].shape)

    def splits(whole, parts):  # dim 1 of `whole` becomes dims 1 and 2 of `parts`, all others unchanged
        return len(parts) == len(whole) + 1 >= 4 and parts[0] == whole[0] and parts[3:] == whole[2:] \
            and parts[1] * parts[2] == whole[1] and 1 not in parts[1:3]

    if not (splits(before, after) or splits(after, before)):
        return None
    return (f"its channels pass through a reshape {before} -> {after} ({type(node.grad_fn).__name__}) that "
            f"regroups them (a channel shuffle), which torch-pruning does not follow")


def innermost_frame(error: BaseException) -> str:
    """file:line of the deepest frame outside torch and torch-pruning (the model's own op), else the deepest."""
    libraries = tuple(os.path.dirname(m.__file__) for m in (torch, tp))
    frames = traceback.extract_tb(error.__traceback__)[1:]  # [0] is build_graph's own call
    frame = next((f for f in reversed(frames) if not f.filename.startswith(libraries)), frames[-1])
    return f"{os.path.basename(frame.filename)}:{frame.lineno} {frame.line or ''}".strip()


def out_channel_pruner(module: nn.Module) -> Callable:
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels

"""Split a model into the part before a layer and the part from it on, so that sensitivity analysis computes
the unchanged part once. torch.fx traces the forward; a cut is legal where exactly one value is alive (every
chain link, and every residual-block boundary)."""
import operator

import torch.nn as nn
import torch.fx as fx

# Layers whose shapes pruning changes: traced through, a subclass's forward would bake its shape into the
# graph as a constant (torchvision's LayerNorm2d passes `self.normalized_shape` to F.layer_norm).
SHAPED_LAYERS = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.PReLU)


class _ShapedLayersAsLeaves(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, SHAPED_LAYERS) or super().is_leaf_module(module, qualified_name)


class GraphSplitter:
    def __init__(self, model):
        self.graph = _ShapedLayersAsLeaves().trace(model)
        self.nodes = list(self.graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}

    def _alive_before(self, j):
        """Values defined before node j that node j or a later one still reads (parameters aside)."""
        return [n for n in self.nodes[:j] if n.op != "get_attr" and any(self.index[u] >= j for u in n.users)]

    def cut_before(self, module_names: set[str]) -> tuple | None:
        """The last node at or before the first call of any of `module_names` where one value is alive."""
        first = min((i for i, n in enumerate(self.nodes) if n.op == "call_module" and n.target in module_names),
                    default=None)
        if first is None:
            return None
        for j in range(first, 0, -1):
            alive = self._alive_before(j)
            if len(alive) == 1 and not _is_tuple(alive[0]):
                return j, alive[0]
        return None

    def prefix(self, root: nn.Module, cut: tuple) -> fx.GraphModule:
        """GraphModule computing the cut value from the model input."""
        j, value = cut
        graph, env = fx.Graph(), {}
        for node in self.nodes[:j]:
            env[node] = graph.node_copy(node, lambda n: env[n])
        graph.output(env[value])
        return _compiled(root, graph)

    def segment(self, root: nn.Module, start: tuple, end: tuple) -> fx.GraphModule:
        """GraphModule from the value alive at cut `start` to the value alive at the later cut `end`: walking
        down the network cut by cut costs one forward pass in all."""
        (j0, v0), (j1, v1) = start, end
        graph, env = fx.Graph(), {}
        env[v0] = graph.placeholder("cut")
        for node in self.nodes[:j1]:
            if node.op == "get_attr" or (self.index[node] >= j0 and node.op != "placeholder"):
                env[node] = graph.node_copy(node, lambda n: env[n])
        graph.output(env[v1])
        return _compiled(root, graph)

    def suffix(self, root: nn.Module, cut: tuple) -> fx.GraphModule:
        """GraphModule computing the model output from the cut value."""
        j, value = cut
        graph, env = fx.Graph(), {}
        env[value] = graph.placeholder("cut")
        for node in self.nodes:
            if node.op == "get_attr" or self.index[node] >= j:
                if node.op == "placeholder":
                    continue
                env[node] = graph.node_copy(node, lambda n: env[n])
        return _compiled(root, graph)


def _is_tuple(node: fx.Node) -> bool:
    """A value only ever indexed (x.chunk(2)'s pieces, ShuffleNetV2's split): the tensors are what is cached."""
    return all(u.op == "call_function" and u.target is operator.getitem for u in node.users)


def _compiled(root, graph):
    module = fx.GraphModule(root, graph)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module

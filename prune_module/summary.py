"""`--mode summary`: the model's size, its prunable groups and what cannot be pruned, and the original's keep list."""
import logging
from dataclasses import dataclass

import torch.nn as nn

from compression_tool.commen_utils.model_stats import count_macs, count_params
from compression_tool.commen_utils.results import ModeResult
from compression_tool.model_define import get_entry

from .graph import ChannelGraph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryResult(ModeResult):
    params: int
    macs: int
    prunable_layers: list[str]
    unprunable_layers: dict[str, str]  # leader weight -> why it cannot be pruned


def summarize(loaded) -> SummaryResult:
    model, size = loaded.model, loaded.input_size
    graph = ChannelGraph(model, size)
    params, macs = count_params(model), count_macs(model, size)
    others = [f"{h}x{w}" for h, w in get_entry(loaded.arch).input_sizes if (h, w) != tuple(size)]
    also = f" (also built for {', '.join(others)})" if others else ""
    log.info(f"{loaded.arch}: input {size[0]}x{size[1]}{also}, {params / 1e6:.3f} M params, {macs / 1e6:.1f} M MACs")
    log.info(f"{len(graph.groups)} prunable layers (leader weight, width, coupled producers):")
    for g in graph.groups:
        others = [p for p in g.producers if p != g.leader]
        width = f"{g.width} = {g.channel_groups}x{g.width // g.channel_groups}" if g.channel_groups > 1 else g.width
        coupled = f"{', '.join(others[:4])}{' ...' if len(others) > 4 else ''}"
        coupled += " (LayerNorm)" if g.renormalised else ""
        log.info(f"  {g.param:40s} {width:>5}  {coupled}")
    if graph.excluded:
        log.info(f"{len(graph.excluded)} layer(s) that cannot be pruned:")
        for param, why in graph.excluded.items():
            log.info(f"  {param:40s} {why}")
    return SummaryResult(params, macs, [g.param for g in graph.groups], dict(graph.excluded))


def conv_widths(model: nn.Module) -> list[int]:
    """Out-channels of every conv, in state_dict order: the list the original printed as `keep` (unlike the
    `keep` dict a checkpoint records, which names every conv and linear layer)."""
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]

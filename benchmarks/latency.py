"""CPU latency of SFace pruned to about half its MACs vs unpruned, at batch 1 and 32: medians of repeated
runs, measured side by side in one process; with widths rounded to multiples of 8, and as the BN-folded
frozen TorchScript with channels-last weights that `--mode quantization` exports
(`_fp32_folded.torchscript`). Memory reuse on, as in
the CLIs (`--allocator reuse`).

    python benchmarks/latency.py [--threads 1] [--repeats 30]
"""
import argparse
import copy
import torch

from common import SFACE, machine, reuse_memory
from compression_tool.commen_utils.latency import median_latency_ms
from compression_tool.commen_utils.model_stats import count_macs
from compression_tool.commen_utils.torchscript_io import freeze_for_inference
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.thinning import prune_model


def uniform(model, ratio, round_to):
    pruned = copy.deepcopy(model)
    graph = ChannelGraph(pruned, (112, 112))
    prune_model(pruned, (112, 112), {g.param: ratio for g in graph.groups}, round_to=round_to, graph=graph)
    return pruned.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--ratio", type=float, default=0.3, help="uniform fraction removed (0.3: about half the MACs)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    reuse_memory()
    model = load_model("sface", SFACE).model.eval()
    base_macs = count_macs(model, (112, 112))
    pruned, pruned8 = uniform(model, args.ratio, 1), uniform(model, args.ratio, 8)
    exported = "as exported (BN folded, channels-last weights)"
    variants = {"unpruned": (model, model), f"unpruned, {exported}": (model, freeze_for_inference(model, (112, 112))),
                "pruned": (pruned, pruned), "pruned, widths x8": (pruned8, pruned8),
                f"pruned, widths x8, {exported}": (pruned8, freeze_for_inference(pruned8, (112, 112)))}
    print(f"SFace, {args.threads} thread(s), median of {args.repeats}; {machine()}")
    print("| variant | MACs ratio | bs1 ms | bs1 ratio | bs32 ms | bs32 ratio |")
    print("|---|---|---|---|---|---|")
    reference = {}
    for name, (counted, m) in variants.items():
        row = [name, f"{count_macs(counted, (112, 112)) / base_macs:.3f}"]
        for batch in (1, 32):
            ms = median_latency_ms(m, (112, 112), batch, args.repeats if batch == 1 else max(5, args.repeats // 5), 3)
            reference.setdefault(batch, ms)
            row += [f"{ms:.1f}", f"{ms / reference[batch]:.2f}"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()

"""Sensitivity analysis speed: naive path (copy, prune, re-run everything) vs the fast path (baseline once,
cached activations at the cut, only the rest re-run), same CSV required. One process at 1 thread, then
both cores: naive with 2 threads vs fast sharded over 2 processes with torchrun. The naive path also runs
with glibc's default allocator (`--allocator system`): the original's way. First, in this process, the
ceiling of any exact scheme: the naive path runs the whole model per pruned level, an exact fast path at
least the part from each group's cut on (everything the pruned channels reach), so no caching can beat
    (groups x (levels - 1) + 1) x T_model / (T_model + (levels - 1) x sum of T_from_cut)
with unpruned times at 1 thread (pruning shortens both sides by the same seconds, which raises the ratio
a little). The same bound from the first layer that sums over the pruned channels instead of the cut is what
reusing the unpruned activations of the group's own channel-wise layers (indexed by the kept channels)
could reach at most; it is not bit-exact here (BENCHMARKS.md).

    python benchmarks/sa_speed.py [--pairs N] [--levels 0.0,0.1,...,0.9] [--ceiling_only]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import HELDOUT, ORL, SFACE, machine, reuse_memory, timed_cli
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.sensitivity import SensitivityAnalysis, parse_levels
from compression_tool.test_module.evaluate import make_evaluator


FAST = "fast, 1 process x 1 thread"


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_share(part, whole, repeats=3):
    """Median over `repeats` of seconds(part) / seconds(whole), the two timed back to back: on a shared
    machine the speed drifts between measurements taken far apart."""
    return statistics.median(seconds(part) / seconds(whole) for _ in range(repeats))


def ceilings(pairs, levels, batch):
    """Seconds of one whole-model evaluation, and for each group the fraction of it from the group's cut on
    and from its first channel-mixing layer on (the first member that sums over the pruned channels)."""
    torch.set_num_threads(1)
    reuse_memory()
    loaded = load_model("sface", SFACE)
    modules = dict(loaded.model.named_modules())
    evaluator = make_evaluator("lfw", ORL, pairs, loaded.spec, batch_size=batch, cache_images=True, progress=False)
    analysis = SensitivityAnalysis(loaded.model, loaded.input_size, evaluator)
    whole = statistics.median(seconds(lambda: evaluator.outputs(loaded.model)) for _ in range(3))

    def share_from(cut):
        runner, inputs = analysis.splitter.suffix(loaded.model, cut), analysis.activations_at(cut)[0]
        return median_share(lambda: evaluator.outputs(runner, inputs), lambda: evaluator.outputs(loaded.model))

    from_cut, from_mixing = [], []
    for group in analysis.graph.groups:
        from_cut.append(share_from(analysis.cut_of(group)))
        mixing = {edit.module for edit in analysis.graph.plan(group, [0])
                  if not edit.outputs and getattr(modules[edit.module], "groups", 1) == 1}
        from_mixing.append(share_from(analysis.splitter.cut_before(mixing)))
    return whole, from_cut, from_mixing


def bound(levels, shares):
    """The ratio to the naive path of re-running `shares` of the model for each pruned level."""
    n = len(parse_levels(levels)) - 1
    return (len(shares) * n + 1) / (1 + n * sum(shares))


def print_ceilings(levels, whole, from_cut, from_mixing):
    print(f"  one whole-model evaluation {whole:.2f} s; share from each group's cut on: "
          + " ".join(f"{f:.2f}" for f in from_cut))
    print(f"  ceiling when re-running from each group's cut (what stays bit-exact), 1 thread: "
          f"{bound(levels, from_cut):.2f}x")
    print("  share from each group's first channel-mixing layer on: " + " ".join(f"{f:.2f}" for f in from_mixing))
    print(f"  ceiling when reusing each group's own channel-wise layers too (not bit-exact here), 1 thread: "
          f"{bound(levels, from_mixing):.2f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=300, help="first N held-out pairs (300: about 140 images)")
    p.add_argument("--levels", default="0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ceiling_only", action="store_true", help="measure the ceilings, skip the CLI runs")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pairs = tmp / "pairs.txt"
        pairs.write_text("\n".join(HELDOUT.read_text().splitlines()[:args.pairs]) + "\n")
        images = len({p for line in pairs.read_text().splitlines() for p in line.split()[:2]})
        measured = ceilings(pairs, args.levels, args.batch)
        if args.ceiling_only:
            print(f"SFace, {args.pairs} pairs ({images} images), levels {args.levels}, batch {args.batch}; {machine()}")
            return print_ceilings(args.levels, *measured)

        def run(name, threads, nproc=1, naive=False, allocator="reuse"):
            out = tmp / name
            flags = ["--mode", "sa", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
                     "--img_list_label_path", pairs, "--sparsities", args.levels, "--device", "cpu",
                     "--test_batch_size", args.batch, "--sensitivity_csv_path", out, "--allocator", allocator] + \
                (["--sa_naive"] if naive else [])
            seconds = timed_cli(flags, threads, nproc)
            return seconds, next(out.glob("*.csv")).read_text()

        results = {"naive, 1 process x 1 thread, glibc default": run("n1s", 1, naive=True, allocator="system"),
                   "naive, 1 process x 1 thread": run("n1", 1, naive=True),
                   FAST: run("f1", 1),
                   "naive, 1 process x 2 threads": run("n2", 2, naive=True),
                   "fast, torchrun 2 processes x 1 thread": run("f2", 1, nproc=2)}
    # Bit-identical CSVs are expected at equal threads per process (2 threads split reductions differently).
    same = results["naive, 1 process x 1 thread"][1] == results[FAST][1] == \
        results["fast, torchrun 2 processes x 1 thread"][1]
    print(f"SFace, {args.pairs} pairs ({images} images), levels {args.levels}, batch {args.batch}; {machine()}; "
          "--allocator reuse unless said")
    for name, (seconds, _) in results.items():
        print(f"  {name:40s} {seconds:7.1f} s")
    n1, f1 = results["naive, 1 process x 1 thread"][0], results[FAST][0]
    n2, f2 = results["naive, 1 process x 2 threads"][0], results["fast, torchrun 2 processes x 1 thread"][0]
    original, original_csv = results["naive, 1 process x 1 thread, glibc default"]
    print(f"  fast vs naive, same allocator: 1 thread {n1 / f1:.2f}x, both cores {n2 / f2:.2f}x")
    print(f"  fast (1 thread) vs the original's way (naive, 1 thread, glibc default): {original / f1:.2f}x")
    print(f"  CSVs identical at 1 thread per process: {same and original_csv == results[FAST][1]}")
    print_ceilings(args.levels, *measured)


if __name__ == "__main__":
    main()

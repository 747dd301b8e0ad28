"""Sensitivity analysis speed: naive path (copy, prune, re-run everything) vs the fast path (baseline once,
cached activations at the cut, only the rest re-run), same CSV required. One process at 1 thread, then
both cores: naive with 2 threads vs fast sharded over 2 processes with torchrun. The naive path also runs
with glibc's default allocator (`--allocator system`): the original's way. First, in this process, the
ceiling of any exact scheme: the naive path runs the whole model per pruned level, an exact fast path at
least the part from each group's cut on (everything the pruned channels reach), so no caching can beat
    (groups x (levels - 1) + 1) x T_model / (T_model + (levels - 1) x sum of T_from_cut)
with unpruned times at 1 thread (pruning shortens both sides by the same seconds, which raises the ratio
a little).

    python benchmarks/sa_speed.py [--pairs N] [--levels 0.0,0.1,...,0.9]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import HELDOUT, ORL, SFACE, machine, reuse_memory, timed_cli
from model_define.loading import load_model
from sensitivity_analysis import SensitivityAnalysis, parse_levels
from test_module.evaluate import make_evaluator


FAST = "fast, 1 process x 1 thread"


def median_seconds(run, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def exact_ceiling(pairs, levels, batch):
    """(ceiling ratio, seconds of one whole-model evaluation, the fraction of it from each group's cut on)."""
    torch.set_num_threads(1)
    reuse_memory()
    loaded = load_model("sface", SFACE)
    evaluator = make_evaluator("lfw", ORL, pairs, loaded.spec, batch_size=batch, cache_images=True, progress=False)
    analysis = SensitivityAnalysis(loaded.model, loaded.input_size, evaluator)
    whole = median_seconds(lambda: evaluator.outputs(loaded.model))
    fractions = []
    for group in analysis.graph.groups:
        cut = analysis.cut_of(group)
        runner = analysis.splitter.suffix(loaded.model, cut)
        inputs = analysis.activations_at(cut)[0]
        fractions.append(median_seconds(lambda: evaluator.outputs(runner, inputs)) / whole)
    n = len(parse_levels(levels)) - 1
    return (len(fractions) * n + 1) / (1 + n * sum(fractions)), whole, fractions


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=300, help="first N held-out pairs (300: about 140 images)")
    p.add_argument("--levels", default="0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pairs = tmp / "pairs.txt"
        pairs.write_text("\n".join(HELDOUT.read_text().splitlines()[:args.pairs]) + "\n")
        images = len({p for line in pairs.read_text().splitlines() for p in line.split()[:2]})
        ceiling, whole, fractions = exact_ceiling(pairs, args.levels, args.batch)

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
    print(f"  one whole-model evaluation {whole:.2f} s; share from each group's cut on: "
          + " ".join(f"{f:.2f}" for f in fractions))
    print(f"  ceiling of any exact scheme, 1 thread: {ceiling:.2f}x")


if __name__ == "__main__":
    main()

"""SFace forward time per image at several batch sizes, glibc's default allocator against `--allocator
reuse` (freed memory kept for the next call), 1 thread. Each setting runs in its own process, since the
setting holds for a whole process.

    python benchmarks/allocator.py [--batches 1 8 16 32 64] [--repeats 15]
"""
import argparse
import subprocess
import sys

from common import ROOT, machine

PROBE = """
import sys, time, torch
from compression_tool.commen_utils.allocator import reuse_freed_memory
from compression_tool.model_define.sface import sface
if sys.argv[1] == "reuse":
    reuse_freed_memory()
torch.set_num_threads(1)
model = sface().eval()
for batch in map(int, sys.argv[3:]):
    x = torch.rand(batch, 3, 112, 112) * 255
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(int(sys.argv[2])):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    print(batch, sorted(times)[len(times) // 2] / batch * 1000)
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    results = {}
    for mode in ("system", "reuse"):
        out = subprocess.run([sys.executable, "-c", PROBE, mode, str(args.repeats), *map(str, args.batches)],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        results[mode] = {int(b): float(ms) for b, ms in (line.split() for line in out.splitlines())}
    print(f"SFace forward, 1 thread, median of {args.repeats}; {machine()}")
    print("| batch | glibc default ms/image | reuse ms/image | speed-up |")
    print("|---|---|---|---|")
    for b in args.batches:
        print(f"| {b} | {results['system'][b]:.1f} | {results['reuse'][b]:.1f} | "
              f"{results['system'][b] / results['reuse'][b]:.2f}x |")


if __name__ == "__main__":
    main()

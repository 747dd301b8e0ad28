"""Sensitivity CSV -> PNG curves: one line per layer, every layer drawn (the original dropped the last
ones), at most --per_figure lines a figure so that the legend stays readable."""
import argparse
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from compression_tool.commen_utils.errors import exit_code
from compression_tool.pruning_analysis_tools.curves import Curves, read_curves
from compression_tool.test_module.plots import save_figure


def plot_curves(curves: Curves, out_dir, per_figure: int = 8, title: str = "Pruning sensitivity") -> list:
    layers = curves.layers
    out_dir = Path(out_dir)
    paths = []
    for start in range(0, len(layers), per_figure):
        chunk = layers[start:start + per_figure]
        fig, ax = plt.subplots(figsize=(9, 6))
        for layer in chunk:
            levels = sorted(curves.accuracy[layer])
            ax.plot(levels, [curves.accuracy[layer][v] for v in levels], marker="o", linewidth=2,
                    label=layer.removesuffix(".weight"))
        if curves.baseline is not None:
            ax.axhline(curves.baseline, color="grey", linestyle="--", linewidth=1, label="baseline")
        ax.set_xlabel("fraction of filters removed")
        ax.set_ylabel("top1 (headline metric)")
        ax.set_title(f"{title}: layers {start + 1}-{start + len(chunk)} of {len(layers)}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize=9)
        paths.append(save_figure(fig, out_dir / f"sensitivity_{start + 1:03d}-{start + len(chunk):03d}.png"))
    return paths


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", required=True)
    p.add_argument("--output_dir", default="work_space/sensitivity_data/plots")
    p.add_argument("--per_figure", type=int, default=8)
    args = p.parse_args(argv)
    return exit_code(lambda: print("\n".join(map(str, plot_curves(read_curves(args.csv), args.output_dir,
                                                                  args.per_figure)))))


if __name__ == "__main__":
    sys.exit(main())

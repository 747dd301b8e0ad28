"""A report a person can read: each model variant (original, pruned, ...) scored on one pair list, side by
side — table (params, MACs, CPU latency at batch 1, 10-fold accuracy, TPR@FPR, AUC), ROC curves of all
variants on one plot, per-layer widths, and the sensitivity curves when a CSV is given — as report.md + PNGs.

    python pruning_analysis_tools/report.py --variant original=work_space/model_train_best/sface.pth \\
        --variant "pruned 0.5x=work_space/pruned_model/model_sface.pt" --test_root_path ... \\
        --img_list_label_path ... [--csv SA.csv] --output_dir work_space/report/<time>
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from commen_utils.atomic import atomic_path, write_text  # noqa: E402
from commen_utils.errors import UserError, exit_code  # noqa: E402
from commen_utils.model_stats import count_macs, count_params  # noqa: E402
from commen_utils.results import write_result_json  # noqa: E402
from commen_utils.timestamp import time_stamp  # noqa: E402

TARGET_FPRS = (1e-2, 1e-3)


def latency_ms(model, input_size, repeats=20):
    """Median CPU time of one image, 1 thread (the number a person compares variants by)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = torch.zeros(1, 3, *input_size)
    try:
        with torch.no_grad():
            model.cpu()(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return 1000 * statistics.median(times)


def save_figure(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_widths(widths: dict, path):
    fig, ax = plt.subplots(figsize=(10, 5))
    for label, values in widths.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, linewidth=2, label=label)
    ax.set_xlabel("conv layer (forward order)")
    ax.set_ylabel("output channels")
    ax.set_title("Per-layer widths")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def build_report(args):
    from model_define.loading import load_model
    from pruning import keep_widths
    from pruning_analysis_tools.curves import read_curves
    from pruning_analysis_tools.plot_csv import plot_curves
    from test_module.evaluate import make_evaluator
    from test_module.plots import plot_roc

    out = Path(args.output_dir or f"work_space/report/{time_stamp()}")
    variants = [v.partition("=")[::2] for v in args.variant]
    if any(not label or not path for label, path in variants):
        raise UserError("--variant takes LABEL=CHECKPOINT")
    rows, curves, widths, evaluator = [], {}, {}, None
    for label, path in variants:
        loaded = load_model(checkpoint=path)
        if evaluator is None:  # images decoded once for every variant
            evaluator = make_evaluator(args.data_source, args.test_root_path, args.img_list_label_path,
                                       loaded.spec, target_fprs=TARGET_FPRS, batch_size=16, cache_images=True,
                                       progress=False)
        result = evaluator(loaded.model)
        fpr, tpr, _, auc = result.pop("roc")
        curves[label] = (fpr, tpr, auc)
        widths[label] = keep_widths(loaded.model)
        rows.append({"variant": label, "checkpoint": path, "params": count_params(loaded.model),
                     "macs": count_macs(loaded.model, loaded.input_size),
                     "latency_ms_bs1": latency_ms(loaded.model, loaded.input_size), **result})
    lines = ["| variant | params (M) | MACs (M) | latency bs1, 1 thread (ms) | 10-fold accuracy | "
             "TPR@FPR=1e-2 | TPR@FPR=1e-3 | AUC |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tpr = r["tpr_at_fpr"]
        lines.append(f"| {r['variant']} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e6:.0f} | "
                     f"{r['latency_ms_bs1']:.1f} | {r.get('accuracy', float('nan')):.4f} | {tpr[1e-2]:.3f} | "
                     f"{tpr[1e-3]:.3f} | {r['auc']:.4f} |")
    table = "\n".join(lines)
    plot_roc(curves, out / "roc.png", title=f"ROC on {Path(args.img_list_label_path).name}")
    plot_widths(widths, out / "widths.png")
    doc = ["# compression_tool report", "", f"Pairs: `{args.img_list_label_path}` ({rows[0]['num_pairs']} "
           f"pairs, root `{args.test_root_path}`), protocol `{args.data_source}`, made {time_stamp()}.", "",
           "Checkpoints: " + ", ".join(f"{r['variant']}: `{r['checkpoint']}`" for r in rows), "", table, "",
           "![ROC curves](roc.png)", "", "![per-layer widths](widths.png)"]
    if args.csv:
        pngs = plot_curves(read_curves(args.csv), out / "sensitivity")
        doc += ["", f"## Sensitivity curves (`{args.csv}`)", ""]
        doc += [f"![sensitivity]({p.relative_to(out)})" for p in pngs]
    if args.notes:
        doc += ["", "## Settings", ""] + [f"- {note}" for note in args.notes]
    write_text(out / "report.md", "\n".join(doc) + "\n")
    write_result_json(out / "report.json", {"variants": [{k: v for k, v in r.items()} for r in rows]})
    print(table)
    print(f"report: {out / 'report.md'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", required=True, metavar="LABEL=CHECKPOINT")
    p.add_argument("--test_root_path", required=True)
    p.add_argument("--img_list_label_path", required=True)
    p.add_argument("--data_source", default="lfw", choices=("lfw", "company"))
    p.add_argument("--csv", help="sensitivity CSV to plot into the report")
    p.add_argument("--notes", nargs="*", help="settings lines to list in the report")
    p.add_argument("--output_dir", help="default work_space/report/<time>")
    args = p.parse_args(argv)
    return exit_code(lambda: build_report(args))


if __name__ == "__main__":
    sys.exit(main())

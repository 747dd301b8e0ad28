"""A report a person can read: each model variant (original, pruned, ...) scored on one pair list, side by
side — table (params, MACs, CPU latency at batch 1, 10-fold accuracy, TPR@FPR, AUC), ROC curves of all
variants on one plot, per-layer widths, and the sensitivity curves when a CSV is given — as report.md + PNGs.

    python pruning_analysis_tools/report.py --variant original=work_space/model_train_best/sface.pth \\
        --variant "pruned 0.5x=work_space/pruned_model/model_sface.pt" --test_root_path ... \\
        --img_list_label_path ... [--csv SA.csv] --output_dir work_space/report/<time>
"""
import argparse
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if importlib.util.find_spec("compression_tool") is None:  # a clone that was never set up
    sys.exit("error: compression_tool is not installed: run `make setup` (or `pip install -e .`) in the clone")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from compression_tool.commen_utils.atomic import write_text
from compression_tool.commen_utils.allocator import reuse_freed_memory
from compression_tool.commen_utils.cli_flags import (DEFAULT_TRAIN_DATA, add_config_flag, add_pair_list_flags,
                                                    evaluation_settings, parse_flags)
from compression_tool.commen_utils.console import report_to_console
from compression_tool.commen_utils.errors import UserError, exit_code
from compression_tool.commen_utils.model_stats import count_macs, count_params
from compression_tool.commen_utils.results import write_result_json
from compression_tool.commen_utils.timestamp import time_stamp
from compression_tool.test_module.plots import save_figure

log = logging.getLogger("compression_tool.pruning_analysis_tools.report")  # also when run as __main__

TARGET_FPRS = (1e-2, 1e-3)

if TYPE_CHECKING:  # imported where it is used, as late as possible
    from compression_tool.test_module.evaluate import EvaluationConfig


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


def plot_accuracy_vs_macs(rows: list[dict], candidates: list[dict], metric: str, path) -> None:
    """Every variant, plus each candidate schedule auto_make_yaml measured (on its own, analysis pairs)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    base = rows[0]["macs"]
    for r in rows:
        ax.scatter(r["macs"] / 1e6, r["headline"], s=60, zorder=3, label=r["variant"])
    if candidates:
        ax.scatter([c["macs_ratio"] * base / 1e6 for c in candidates], [c["measured"] for c in candidates],
                   marker="x", s=60, color="gray", label="budget candidates (analysis pairs)")
    ax.set_xlabel("MACs (M)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against MACs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    return save_figure(fig, path)


def float_layout(loaded) -> torch.nn.Module:
    """What params, MACs and widths are counted on: an INT8 or exported model's float twin (packed weights
    hide both)."""
    from compression_tool.model_define.registry import create_model

    if isinstance(loaded.model, torch.nn.Module) and loaded.precision != "int8":
        return loaded.model
    return create_model(loaded.arch, loaded.input_size, loaded.embedding_size, keep=loaded.keep).eval()


@dataclass(frozen=True)
class ReportConfig:
    """What report.py compares: labelled checkpoints, the pair list that scores them, and what else to show."""
    variants: tuple  # (label, checkpoint path) pairs
    evaluation: "EvaluationConfig"
    csv: str | None = None
    budgets: tuple = ()  # auto_make_yaml --result_json files
    notes: tuple = ()
    output_dir: str | None = None  # default work_space/report/<time>
    train_root: str = DEFAULT_TRAIN_DATA  # calibration images of the "original INT8" row


def measure(config: ReportConfig) -> dict:
    """Score every variant on one pair list: the report's data, as plain JSON-able values."""
    import json

    from compression_tool.pruning_analysis_tools.frontier import measure_frontier

    from compression_tool.commen_utils.latency import median_latency_ms
    from compression_tool.model_define.loading import load_model
    from compression_tool.prune_module.summary import conv_widths
    from compression_tool.quant_module import torch_fx  # noqa: F401  (it registers how INT8 checkpoints load)
    from compression_tool.test_module.evaluate import evaluation_sets, evaluator_from_config

    if any(not label or not path for label, path in config.variants):
        raise UserError("--variant takes LABEL=CHECKPOINT")
    if config.evaluation.data_source == "classification":
        raise UserError("--data_source classification: the report compares verification models (lfw, company)")
    rows, evaluator, sets = [], None, evaluation_sets(config.evaluation)
    others = {}  # the sets after the first (--val_targets): one table row per variant and set
    budgets = [json.loads(Path(path).read_text()) for path in config.budgets]
    variants = with_original_int8([(label, path, load_model(checkpoint=path)) for label, path in config.variants],
                                  budgets, config.train_root)
    for label, path, loaded in variants:
        if evaluator is None:  # images decoded once for every variant
            evaluator, *extra = [evaluator_from_config(config.evaluation, loaded.spec, pair_list,
                                                       target_fprs=TARGET_FPRS, batch_size=16, cache_images=True,
                                                       progress=False).on("cpu") for _, pair_list in sets]
            others = dict(zip([name for name, _ in sets[1:]], extra))
        result = evaluator(loaded.model.cpu())
        per_set = {sets[0][0]: result, **{name: e(loaded.model.cpu()) for name, e in others.items()}}
        fpr, tpr, _, auc = result.pop("roc")
        layout = float_layout(loaded)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the number a person compares variants by
        try:
            latency = median_latency_ms(loaded.model, loaded.input_size, 1, repeats=20)
        finally:
            torch.set_num_threads(threads)
        rows.append({"variant": label, "checkpoint": path, "precision": loaded.precision,
                     "params": count_params(layout), "macs": count_macs(layout, loaded.input_size),
                     "latency_ms_bs1": latency, "widths": conv_widths(layout), "auc": auc,
                     "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
                     **{k: v for k, v in result.items() if k != "auc"},
                     **({"sets": {name: {k: v for k, v in r.items() if k != "roc"} for name, r in per_set.items()}}
                        if others else {})})
    candidates = [c for data in budgets for c in data.get("candidates", []) if "macs_ratio" in c]
    frontiers = [measure_frontier(data, [(label, loaded) for label, _, loaded in variants if label != ORIGINAL_INT8],
                                  lambda model: evaluator(model)["headline"], variants[0][2].input_size)
                 for data in budgets if "deployment" in data]
    return {"pairs": str(sets[0][1]), "root": str(config.evaluation.test_root),
            "data_source": config.evaluation.data_source, "made": time_stamp(), "variants": rows,
            "candidates": candidates, "frontiers": frontiers, "csv": config.csv, "notes": list(config.notes)}


ORIGINAL_INT8 = "original INT8"


def with_original_int8(variants: list, budgets: list, train_root) -> list:
    """The variants with an "original INT8" row after the first (the unpruned model): the unpruned model a
    latency search quantized for its runtime when there is one, else the first variant, when it is an unpruned
    float model, quantized here (OpenVINO + NNCF's defaults on 64 images of `train_root`), so that every pruned
    row can be compared with what INT8 alone gives. Left out (with a note) where neither is possible."""
    from dataclasses import replace

    from compression_tool.model_define.loading import load_model

    if any(label == ORIGINAL_INT8 for label, _, _ in variants):
        return variants
    label0, path0, first = variants[0]
    searched = [b["unpruned_file"] for b in budgets if "int8" in b.get("deployment", {}).get("runtime", "")
                and b.get("unpruned_file")]
    if searched:
        return [variants[0], (ORIGINAL_INT8, searched[0], load_model(checkpoint=searched[0])), *variants[1:]]
    if not isinstance(first.model, torch.nn.Module) or first.precision != "fp32" or first.keep:
        return variants  # the first variant is not an unpruned float model
    from compression_tool.commen_utils import openvino_io
    from compression_tool.dataloader import sample_images
    from compression_tool.prune_module.runtimes import Deployment, prepare

    if not openvino_io.available() or not Path(train_root).exists():
        log.info(f"note: no {ORIGINAL_INT8} row (needs OpenVINO + NNCF and calibration images in {train_root})")
        return variants
    runner = prepare(first.model, first.input_size, Deployment("openvino-int8"),
                     sample_images(train_root, first.spec, 64))
    int8 = replace(first, model=runner.evaluable(), precision="openvino int8")
    return [variants[0], (ORIGINAL_INT8, f"{path0} (OpenVINO INT8, quantized by the report)", int8), *variants[1:]]


def table(rows: list[dict]) -> str:
    lines = ["| variant | params (M) | MACs (M) | latency bs1, 1 thread (ms) | 10-fold accuracy | "
             "TPR@FPR=1e-2 | TPR@FPR=1e-3 | AUC |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tpr = {float(k): v for k, v in r["tpr_at_fpr"].items()}
        lines.append(f"| {r['variant']} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e6:.0f} | "
                     f"{r['latency_ms_bs1']:.1f} | {r.get('accuracy', float('nan')):.4f} | {tpr[1e-2]:.3f} | "
                     f"{tpr[1e-3]:.3f} | {r['auc']:.4f} |")
    return "\n".join(lines)


def sets_table(rows: list[dict]) -> str:
    """One row per variant and verification set."""
    lines = ["| variant | set | pairs | accuracy ± std | TPR@FPR=1e-2 | TPR@FPR=1e-3 | AUC |", "|" + "---|" * 7]
    for r in rows:
        for name, s in r["sets"].items():
            tpr = {float(k): v for k, v in s["tpr_at_fpr"].items()}
            lines.append(f"| {r['variant']} | {name} | {s['num_pairs']} | {s['accuracy']:.4f} ± "
                         f"{s['accuracy_std']:.4f} | {tpr[1e-2]:.3f} | {tpr[1e-3]:.3f} | {s['auc']:.4f} |")
    return "\n".join(lines)


def render(data: dict, out: Path):
    """report.md and its PNGs from measured data (fresh, or read back from report.json)."""
    import numpy as np

    from compression_tool.pruning_analysis_tools.curves import read_curves
    from compression_tool.pruning_analysis_tools.frontier import frontier_table, plot_frontier
    from compression_tool.pruning_analysis_tools.plot_csv import plot_curves
    from compression_tool.test_module.plots import plot_roc

    out, rows = Path(out), data["variants"]
    metric = {"lfw": "10-fold accuracy", "insightface": "Accuracy-Flip"}.get(data["data_source"],
                                                                              "TPR at the first FPR")
    plot_roc({r["variant"]: (np.array(r["roc"]["fpr"]), np.array(r["roc"]["tpr"]), r["auc"]) for r in rows},
             out / "roc.png", title=f"ROC on {Path(data['pairs']).name}")
    plot_widths({r["variant"]: r["widths"] for r in rows}, out / "widths.png")
    plot_accuracy_vs_macs(rows, data["candidates"], metric, out / "accuracy_vs_macs.png")
    text = table(rows)
    doc = ["# compression_tool report", "", f"Pairs: `{data['pairs']}` ({rows[0]['num_pairs']} pairs, root "
           f"`{data['root']}`), protocol `{data['data_source']}`, measured {data['made']}.", "",
           "Checkpoints: " + ", ".join(f"{r['variant']}: `{r['checkpoint']}`" for r in rows), "", text, "",
           "![ROC curves](roc.png)", "", "![accuracy against MACs](accuracy_vs_macs.png)", "",
           "![per-layer widths](widths.png)"]
    if "sets" in rows[0]:
        doc += ["", "## Every set", "", "Each variant on each of `--val_targets` (the table above: the first).", "",
                sets_table(rows)]
    for i, frontier in enumerate(data.get("frontiers", [])):
        name = f"frontier_{i}.png" if i else "frontier.png"
        plot_frontier(frontier, metric, out / name)
        d = frontier["deployment"]
        doc += ["", f"## Accuracy against latency in {d['runtime']} ({d['threads']} thread(s), batch {d['batch']})",
                "", "Every variant and every schedule the latency search measured, scored on these pairs and timed "
                "side by side in the runtime (float models in its float twin).", "", frontier_table(frontier), "",
                f"![accuracy against latency]({name})"]
        log.info(f"accuracy against latency in {d['runtime']}:\n{frontier_table(frontier)}")
    if data["csv"]:
        pngs = plot_curves(read_curves(data["csv"]), out / "sensitivity")
        doc += ["", f"## Sensitivity curves (`{data['csv']}`)", ""]
        doc += [f"![sensitivity]({p.relative_to(out)})" for p in pngs]
    if data["notes"]:
        doc += ["", "## Settings", ""] + [f"- {note}" for note in data["notes"]]
    write_text(out / "report.md", "\n".join(doc) + "\n")
    log.info(text)
    log.info(f"report: {out / 'report.md'}")
    return out / "report.md"


def build_report(config: ReportConfig):
    out = Path(config.output_dir or f"work_space/report/{time_stamp()}")
    data = measure(config)
    write_result_json(out / "report.json", data)
    return render(data, out)


def rebuild_report(report_json: str | Path, output_dir: str | None = None):
    """`main.py --mode report --result_json report.json`: the same report again, from saved results."""
    import json

    path = Path(report_json)
    try:
        data = json.loads(path.read_text())
        data["variants"][0]["roc"]
    except FileNotFoundError:
        raise UserError(f"{path}: report JSON not found") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise UserError(f"{path}: not a report.json written by report.py") from None
    return render(data, Path(output_dir) if output_dir else path.parent)


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_flag(p)
    p.add_argument("--variant", action="append", required=True, metavar="LABEL=CHECKPOINT")
    add_pair_list_flags(p, val_targets=True)
    p.add_argument("--csv", help="sensitivity CSV to plot into the report")
    p.add_argument("--budgets", nargs="*", help="auto_make_yaml --result_json files: their measured candidates")
    p.add_argument("--notes", nargs="*", help="settings lines to list in the report")
    p.add_argument("--output_dir", help="default work_space/report/<time>")
    p.add_argument("--train_data_path", default=DEFAULT_TRAIN_DATA,
                   help="calibration images of the original INT8 row (never the test pairs)")
    args = parse_flags(p, argv)
    report_to_console()
    reuse_freed_memory()  # as main.py does by default: this CLI runs models too
    return exit_code(lambda: build_report(report_config(args)))


def report_config(args) -> ReportConfig:
    from compression_tool.test_module.evaluate import EvaluationConfig, missing_list_flag
    evaluation = EvaluationConfig(**evaluation_settings(vars(args)))
    if missing_list_flag(evaluation):
        raise UserError(f"--{missing_list_flag(evaluation)} is required")
    return ReportConfig(variants=tuple(tuple(v.partition("=")[::2]) for v in args.variant),
                        evaluation=evaluation, csv=args.csv,
                        budgets=tuple(args.budgets or ()), notes=tuple(args.notes or ()), output_dir=args.output_dir,
                        train_root=args.train_data_path)


if __name__ == "__main__":
    sys.exit(main())

"""`--mode test`: score a model on a pair list (or a liveness list, or several sets at once) and plot its ROC."""
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compression_tool.commen_utils.timestamp import time_stamp

from .evaluate import EvaluationConfig, evaluation_sets, evaluator_from_config, summary_line
from .plots import plot_roc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestConfig:
    evaluation: EvaluationConfig
    roc_png: str | None = None  # default: work_space/report/roc_<model>_<time>.png


def run_test(config: TestConfig, loaded) -> dict:
    spec = loaded.spec
    log.info(f"preprocessing: {spec.size[0]}x{spec.size[1]} {spec.channel_order}, "
             f"(pixel - {spec.mean:g}) / {spec.std:g}")
    sets = evaluation_sets(config.evaluation)
    results = {}
    for name, pair_list in sets:  # every set is read (and refused) before any is scored
        results[name] = evaluator_from_config(config.evaluation, spec, pair_list)
    for name, evaluator in results.items():
        results[name] = evaluator(loaded.model)
        log.info(f"{loaded.arch} on {name}: {summary_line(results[name])}")
    curves = {}
    for name, result in results.items():
        fpr, tpr, _, auc = result.pop("roc")
        curves[name if len(sets) > 1 else loaded.arch] = (fpr, tpr, auc)
    roc_png = Path(config.roc_png or f"work_space/report/roc_{Path(loaded.arch).stem}_{time_stamp()}.png")
    plot_roc(curves, roc_png, title=f"ROC of {loaded.arch} on {', '.join(Path(p).name for _, p in sets)}")
    log.info(f"ROC curve: {roc_png}")
    if len(sets) == 1:
        return results[sets[0][0]]
    log.info(sets_table(results))
    first = next(iter(results.values()))
    return {"sets": results, "headline_name": f"mean {first['headline_name']}",
            "headline": float(np.mean([r["headline"] for r in results.values()]))}


def sets_table(results: dict) -> str:
    """One row per verification set (markdown)."""
    first = next(iter(results.values()))
    fprs = list(first.get("tpr_at_fpr", {}))
    head = ["set", "pairs", "accuracy ± std"] + (["VAL@FAR ± std"] if "val_at_far" in first else []) + \
        ["AUC"] + [f"TPR@FPR={f:g}" for f in fprs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        cells = [name, str(r.get("num_pairs", "")), f"{r['accuracy']:.4f} ± {r['accuracy_std']:.4f}"]
        if "val_at_far" in first:
            cells.append(f"{r['val_at_far']:.4f} ± {r['val_std']:.4f}")
        cells += [f"{r['auc']:.4f}"] + [f"{r['tpr_at_fpr'][f]:.4f}" for f in fprs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

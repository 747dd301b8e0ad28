"""`--mode test`: score a model on a pair list (or a liveness list) and plot its ROC."""
from dataclasses import dataclass
from pathlib import Path

from compression_tool.commen_utils.timestamp import time_stamp

from .evaluate import EvaluationConfig, evaluator_from_config, summary_line
from .plots import plot_roc


@dataclass(frozen=True)
class TestConfig:
    evaluation: EvaluationConfig
    roc_png: str | None = None  # default: work_space/report/roc_<model>_<time>.png


def run_test(config: TestConfig, loaded) -> dict:
    spec = loaded.spec
    print(f"preprocessing: {spec.size[0]}x{spec.size[1]} {spec.channel_order}, (pixel - {spec.mean:g}) / {spec.std:g}")
    result = evaluator_from_config(config.evaluation, spec)(loaded.model)
    print(f"{loaded.arch}: {summary_line(result)}")
    fpr, tpr, _, auc = result.pop("roc")
    roc_png = Path(config.roc_png or f"work_space/report/roc_{Path(loaded.arch).stem}_{time_stamp()}.png")
    plot_roc({loaded.arch: (fpr, tpr, auc)}, roc_png,
             title=f"ROC of {loaded.arch} on {Path(config.evaluation.pair_list).name}")
    print(f"ROC curve: {roc_png}")
    return result

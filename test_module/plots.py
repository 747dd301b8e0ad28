from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from compression_tool.commen_utils.atomic import atomic_path  # noqa: E402


def plot_roc(curves: dict, path, title="ROC"):
    """curves: {label: (fpr, tpr, auc)}; log-scaled FPR so the low-FPR end that matters is readable."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for label, (fpr, tpr, auc) in curves.items():
        keep = fpr > 0
        ax.plot(fpr[keep], tpr[keep], label=f"{label} (AUC {auc:.4f})", linewidth=2)
    ax.set_xscale("log")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def save_figure(fig: Figure, path: Path | str) -> Path | str:
    """Every PNG of the tool: laid out, written whole or not at all, and closed."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path

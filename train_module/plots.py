"""Loss and pair-list metric per epoch, one PNG beside the log."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from compression_tool.test_module.plots import save_figure  # noqa: E402


def plot_history(rows: list[dict], headline: str, path) -> None:
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    trained = [r for r in rows if "loss" in r]
    for key, label in (("loss", "total"), ("head", "margin head"), ("kd", "distillation")):
        if any(key in r for r in trained):
            loss_ax.plot([r["epoch"] for r in trained], [r[key] for r in trained], marker="o", label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    loss_ax.legend()
    metric_ax.plot([r["epoch"] for r in rows], [r[headline] for r in rows], marker="o", color="tab:green")
    metric_ax.set_xlabel("epoch (0 = before fine-tuning)")
    metric_ax.set_ylabel(f"{headline} on the pair list")
    for ax in (loss_ax, metric_ax):
        ax.grid(True, alpha=0.3)
    return save_figure(fig, path)

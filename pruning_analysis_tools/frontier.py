"""The accuracy/latency frontier of a report: every variant and every schedule a latency search measured, scored
on the report's pairs and timed side by side in the deployment runtime, with the Pareto points marked.

Variants that are runtime files (an OpenVINO IR) are timed as they are; float torch models are timed in the
runtime's float twin (OpenVINO FP32 beside OpenVINO INT8), so that every point sits on one latency axis.
"""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from compression_tool.test_module.plots import save_figure

FLOAT_TWIN = {"openvino-int8": "openvino-fp32"}


def searches(budget_files) -> list[dict]:
    """The auto_make_yaml --result_json files that come from a latency search (they name a deployment)."""
    found = []
    for path in budget_files:
        data = json.loads(Path(path).read_text())
        if "deployment" in data:
            found.append(data)
    return found


def pareto(points: list[dict]) -> list[bool]:
    """Whether each point is on the frontier: no other point is at least as fast and as accurate, and better
    in one."""
    def beaten(p, q):
        return (q["latency_ms"] <= p["latency_ms"] and q["accuracy"] >= p["accuracy"]
                and (q["latency_ms"] < p["latency_ms"] or q["accuracy"] > p["accuracy"]))
    return [not any(beaten(p, q) for q in points if q is not p) for p in points]


def measure_frontier(search: dict, variants: list, score, input_size, repeats: int = 15) -> dict:
    """search: one latency search's result JSON; variants: [(label, loaded model)] of the report; score(model) ->
    headline on the report's pairs. Returns the frontier's data (JSON-able)."""
    from compression_tool.model_define.loading import load_model
    from compression_tool.commen_utils.latency import side_by_side_ms
    from compression_tool.prune_module.runtimes import Deployment, prepare

    deployment = Deployment(**search["deployment"])
    twin = Deployment(FLOAT_TWIN.get(str(deployment.runtime), str(deployment.runtime)), deployment.threads,
                      deployment.batch)
    entries = []  # (label, kind, model, deployment it is timed in)
    for label, loaded in variants:
        entries.append((label, "variant", loaded.model,
                        twin if isinstance(loaded.model, torch.nn.Module) else deployment))
    if search.get("unpruned_file"):
        entries.append((f"unpruned, {deployment.runtime}", "variant",
                        load_model(checkpoint=search["unpruned_file"]).model, deployment))
    for point in search["candidates"]:
        if point.get("file"):
            entries.append((point["schedule"], "chosen" if point.get("chosen") else "point",
                            load_model(checkpoint=point["file"]).model, deployment))
    runners = [prepare(model, input_size, runtime) if isinstance(model, torch.nn.Module) else model
               for _, _, model, runtime in entries]
    threads = torch.get_num_threads()
    torch.set_num_threads(deployment.threads)  # OpenVINO files compile with torch's thread count
    try:
        timed = side_by_side_ms(runners, input_size, deployment.batch, repeats)
    finally:
        torch.set_num_threads(threads)
    points = [{"label": label, "kind": kind, "accuracy": score(model), "latency_ms": ms,
               "runtime": str(runtime.runtime)} for (label, kind, model, runtime), ms in zip(entries, timed)]
    for p, on_frontier in zip(points, pareto(points)):
        p["pareto"] = on_frontier
    return {"deployment": search["deployment"], "points": points}


def plot_frontier(frontier: dict, metric: str, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    points = frontier["points"]
    style = {"variant": dict(s=70, zorder=3), "point": dict(marker="x", s=50, color="gray", zorder=2),
             "chosen": dict(marker="*", s=220, color="crimson", zorder=4)}
    for p in points:
        ax.scatter(p["latency_ms"], p["accuracy"], **style[p["kind"]],
                   label=p["label"] if p["kind"] != "point" else None)
    ax.scatter([], [], **style["point"], label="schedules the search measured")
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["latency_ms"])
    ax.plot([p["latency_ms"] for p in front], [p["accuracy"] for p in front], "--", color="black", linewidth=1,
            label="Pareto frontier")
    d = frontier["deployment"]
    ax.set_xlabel(f"latency in {d['runtime']} (ms, {d['threads']} thread(s), batch {d['batch']}; float models in "
                  f"{FLOAT_TWIN.get(d['runtime'], d['runtime'])})")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against measured latency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def frontier_table(frontier: dict) -> str:
    lines = ["| model | runtime | latency (ms) | accuracy | Pareto | |", "|---|---|---|---|---|---|"]
    for p in sorted(frontier["points"], key=lambda p: p["latency_ms"]):
        lines.append(f"| {p['label']} | {p['runtime']} | {p['latency_ms']:.2f} | {p['accuracy']:.4f} | "
                     f"{'yes' if p['pareto'] else ''} | {'chosen' if p['kind'] == 'chosen' else ''} |")
    return "\n".join(lines)

"""SFace pruned for MACs targets and for latency targets in OpenVINO INT8, side by side: held-out accuracy (FP32 and
INT8, identities 21-40) and latency in OpenVINO FP32 and INT8, every model timed in one process in interleaved
rounds (1 thread, batch 1, medians). The demo's steps: the demo's sensitivity analysis (levels 0.0, 0.3, 0.6,
repaired on 64 images, identities 1-20), auto_make_yaml (MACs: --target_macs_ratio with candidates measured and
--round_to 8; latency: --target_latency_ratio or --max_accuracy_drop, candidates measured in OpenVINO INT8),
prune with --reconstruct 200 (--round_to 8), INT8 by NNCF's defaults on 64 images of identities 1-20.

    python benchmarks/latency_target.py [--csv SA_CSV] [--macs 0.9,0.8,0.7,0.6,0.5,0.4] [--latency 0.9,0.8,0.7,0.6,0.5]
                                        [--drops 1.0] [--repeats 15]
"""
import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import ORL, SFACE, TRAIN, TRAIN_PAIRS, HELDOUT, machine, reuse_memory, timed_cli
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.latency import side_by_side_ms
from compression_tool.commen_utils.model_stats import count_macs
from compression_tool.dataloader import sample_images
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.latency_search import LatencyGoal, SavingModel
from compression_tool.prune_module.latency_table import LatencyTable
from compression_tool.prune_module.repair import Repair
from compression_tool.prune_module.runtimes import Deployment, prepare
from compression_tool.prune_module.thinning import prune_and_repair
from compression_tool.pruning_analysis_tools.auto_make_yaml import ScheduleConfig, make_schedule
from compression_tool.test_module.evaluate import EvaluationConfig, make_evaluator

INT8, FP32 = Deployment("openvino-int8"), Deployment("openvino-fp32")


def analysis_csv(folder) -> Path:
    timed_cli(["--mode", "sa", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
               "--img_list_label_path", TRAIN_PAIRS, "--sparsities", "0.0,0.3,0.6", "--device", "cpu",
               "--test_batch_size", "16", "--reconstruct", 64, "--sensitivity_csv_path", folder], threads=2)
    return next(Path(folder).glob("*.csv"))


def schedule(csv, folder, name, **target) -> dict | None:
    choice = EvaluationConfig(data_source="lfw", test_root=str(ORL), pair_list=str(TRAIN_PAIRS))
    config = ScheduleConfig(csv=str(csv), model="sface", output=str(Path(folder) / f"{name}.yaml"), round_to=8,
                            checkpoint=str(SFACE), evaluation=choice, reconstruct=64, train_root=str(TRAIN),
                            **target)
    try:
        return make_schedule(config)
    except UserError as e:  # a target no pruned schedule meets is a row too
        print(f"{name}: {e}", flush=True)
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", help="the demo's sensitivity CSV (without it, the analysis is run)")
    p.add_argument("--macs", default="0.9,0.8,0.7,0.6,0.5,0.4")
    p.add_argument("--latency", default="0.9,0.8,0.7,0.6,0.5")
    p.add_argument("--drops", default="1.0")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(2)
    reuse_memory()
    started = time.time()
    floats = lambda text: [float(v) for v in text.split(",") if v]  # noqa: E731
    loaded = load_model("sface", SFACE)
    size = loaded.input_size
    heldout = make_evaluator("lfw", ORL, HELDOUT, loaded.spec, batch_size=16, cache_images=True, progress=False)
    images = sample_images(TRAIN, loaded.spec, 200)
    with tempfile.TemporaryDirectory() as tmp:
        csv = args.csv or analysis_csv(tmp)
        targets = [(f"MACs {t:g}", dict(target_macs_ratio=t)) for t in floats(args.macs)]
        targets += [(f"latency {t:g}", dict(latency=LatencyGoal(INT8, target_ratio=t))) for t in floats(args.latency)]
        targets += [(f"drop {d:g}", dict(latency=LatencyGoal(INT8, max_accuracy_drop=d))) for d in floats(args.drops)]
        rows = {"unpruned": {"model": loaded.model}}
        for i, (name, target) in enumerate(targets):
            result = schedule(csv, tmp, f"s{i}", **target)
            if result is None:
                continue
            model = copy.deepcopy(loaded.model)
            prune_and_repair(model, size, result["ratios"], round_to=8, repair=Repair(images, 200, 0))
            rows[name] = {"model": model, "predicted": result.get("predicted_ms"),
                          "search_measured": result.get("measured_ms"), "search_ratio": result.get("latency_ratio")}
            print(f"{name}: scheduled ({time.time() - started:.0f} s)", flush=True)
    for row in rows.values():
        row["fp32 accuracy"] = heldout(row["model"])["headline"]
        row["macs"] = count_macs(row["model"], size)
        row["int8"] = prepare(row["model"], size, INT8, images[:64])
        row["fp32"] = prepare(row["model"], size, FP32)
        row["int8 accuracy"] = heldout(row["int8"].evaluable())["headline"]
    names = list(rows)
    int8_ms = side_by_side_ms([rows[n]["int8"] for n in names], size, 1, args.repeats)
    fp32_ms = side_by_side_ms([rows[n]["fp32"] for n in names], size, 1, args.repeats)
    print(f"\nSFace, OpenVINO, 1 thread, batch 1, median of {args.repeats} interleaved rounds; {machine()}")
    print("| target | MACs | held-out FP32 | held-out INT8 | OV FP32 ms | OV INT8 ms | INT8 vs unpruned INT8 | "
          "predicted / measured in the search |")
    print("|---|---|---|---|---|---|---|---|")
    for n, fp, i8 in zip(names, fp32_ms, int8_ms):
        r = rows[n]
        search = (f"{r['predicted']:.2f} / {r['search_measured']:.2f} ms ({r['predicted'] / r['search_measured']:.2f})"
                  if r.get("predicted") else "")
        print(f"| {n} | {r['macs'] / rows['unpruned']['macs']:.2f} | {r['fp32 accuracy']:.4f} | "
              f"{r['int8 accuracy']:.4f} | {fp:.2f} | {i8:.2f} | {i8 / int8_ms[0]:.2f}x | {search} |")
    for table_file in sorted(Path(ScheduleConfig.latency_cache).glob("sface_openvino-int8_*.json")):
        checks = LatencyTable.from_json(table_file.read_text()).checks
        line = SavingModel.fitted(checks)
        print(f"{table_file.name}: {len(checks)} whole-model checks; measured saving = {line.slope:.3f} x the "
              f"table's {line.offset:+.3f} (fractions of the unpruned time)")
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())

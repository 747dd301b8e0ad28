"""The whole pipeline of `make demo` on a tiny configuration: every artifact exists and reloads."""
import os
import shutil
import subprocess
import sys

from tests.cli import ORL, ROOT, read_json, run_in_process

TRAIN = ORL.parent.parent / "train_data/orl_s1-20"


def head_of(source, target, n):
    target.write_text("\n".join(source.read_text().splitlines()[:n]) + "\n")
    return target


def test_demo_pipeline_on_a_tiny_configuration(tmp_path):
    train = tmp_path / "train"
    for identity in sorted(TRAIN.iterdir())[:4]:
        (train / identity.name).mkdir(parents=True)
        for image in sorted(identity.iterdir())[:4]:
            shutil.copy(image, train / identity.name / image.name)
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PY=sys.executable, RUN=str(run), LEVELS="0.0,0.5", EPOCHS="1",
               REPAIR_IMAGES="8", PRUNE_REPAIR_IMAGES="8", TRAIN_BATCH="8", LATENCY_BATCHES="1", TRAIN=str(train),
               SCHEDULE_TARGET="--target_latency_ratio 0.95", LATENCY_STEPS="2", LATENCY_REPEATS="5",
               CHOICE_PAIRS=str(head_of(ORL / "pair_list/orl_train_pairs.txt", tmp_path / "choice.txt", 24)),
               FINAL_PAIRS=str(head_of(ORL / "pair_list/orl_heldout_pairs.txt", tmp_path / "final.txt", 24)))
    proc = subprocess.run(["bash", str(ROOT / "demo.sh")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for pattern in ("sensitivity_sface_*.csv", "schedule.yaml", "schedule.json", "out.txt", "model_sface.pt",
                    "finetune/*/best.pt", "finetune/*/log.csv", "finetune/*/curves.png", "quantized/*_int8.xml",
                    "quantized/*_fp32.onnx", "quantized/*_int8.onnx", "report/report.md", "report/report.json",
                    "report/roc.png", "report/widths.png", "report/accuracy_vs_macs.png", "report/frontier.png",
                    "schedule_points/unpruned.xml", "schedule_points/point_*.xml"):
        assert list(run.glob(pattern)), pattern
    assert "(analysis with --reconstruct 8)" in (run / "schedule.yaml").read_text()
    assert read_json(run / "heldout_bin.json")["num_pairs"] == 1800  # the INT8 model on the packed .bin
    report = read_json(run / "report/report.json")
    assert [v["variant"] for v in report["variants"]] == ["original", "original INT8", "pruned", "fine-tuned", "INT8"]
    assert report["variants"][4]["macs"] == report["variants"][3]["macs"] < report["variants"][0]["macs"]
    # the schedule meets its latency target as measured in the search, and the report's frontier shows it
    schedule = read_json(run / "schedule.json")
    assert schedule["latency_ratio"] <= 0.95 and schedule["deployment"]["runtime"] == "openvino-int8"
    points = report["frontiers"][0]["points"]
    assert [p["kind"] for p in points].count("chosen") == 1 and any(p["pareto"] for p in points)
    # the reloaded INT8 checkpoint scores what the quantization step measured on the same pairs
    assert abs(report["variants"][4]["accuracy"] - read_json(run / "quantization.json")["accuracy_int8"]) <= 0.05
    for name in ("finetune/*/best.pt", "quantized/*_int8.xml", "quantized/*_int8.onnx"):
        checkpoint = next(run.glob(name))
        assert run_in_process("--mode", "test", "--model", "sface", "--best_model_path", checkpoint,
                              "--test_root_path", ORL, "--img_list_label_path", tmp_path / "final.txt", "--device",
                              "cpu", "--roc_png", tmp_path / "r.png", "--result_json", tmp_path / "t.json").returncode == 0
        expected = {v["checkpoint"]: v["accuracy"] for v in report["variants"]}.get(str(checkpoint))
        if expected is not None:
            assert abs(read_json(tmp_path / "t.json")["accuracy"] - expected) <= 0.02
    assert run_in_process("--mode", "report", "--report_json", run / "report/report.json", "--report_dir",
                          tmp_path / "again").returncode == 0
    assert (tmp_path / "again/report.md").read_text() == (run / "report/report.md").read_text()

"""Every mode called as a library function with its config, as the CLIs do after parsing their flags: test,
summary, sa, schedule (budget mode), prune, finetune, quantization and report, one after another on a small
concatenating model given by file (random weights: this checks the modes' contracts, not accuracy)."""
import json

import pytest
import torch

from compression_tool.dataloader import sample_images
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.summary import summarize
from compression_tool.pruning import PruneConfig, run_prune
from compression_tool.pruning_analysis_tools.auto_make_yaml import ScheduleConfig, make_schedule
from compression_tool.pruning_analysis_tools.report import ReportConfig, build_report
from compression_tool.quantization import QuantizationConfig, run_quantization
from compression_tool.sensitivity_analysis import SensitivityConfig, run_sensitivity
from compression_tool.test_module.evaluate import EvaluationConfig, evaluator_from_config
from compression_tool.test_module import runner  # not its TestConfig by name: pytest would take it for a test class
from tests.cli import ORL, subset_pairs
from tests.helpers import randomize
from tests.inception_face import build
from compression_tool.train_module.trainer import FineTuneConfig, FineTuneRun, run_finetune

MODEL = "tests/inception_face.py:build"
TRAIN = ORL.parent.parent / "train_data/orl_s1-20"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("modes")
    torch.manual_seed(0)
    weights = tmp / "w.pth"
    torch.save(randomize(build()).state_dict(), weights)
    evaluation = EvaluationConfig("lfw", str(ORL), str(subset_pairs(tmp, 16)), batch_size=16)
    return tmp, weights, evaluation


def test_every_mode_as_a_function(setup):
    tmp, weights, evaluation = setup
    loaded = load_model(MODEL, weights)
    evaluator = evaluator_from_config(evaluation, loaded.spec, cache_images=True, progress=False)
    images = sample_images(TRAIN, loaded.spec, 16)

    tested = runner.run_test(runner.TestConfig(evaluation, roc_png=str(tmp / "roc.png")), loaded)
    assert 0 <= tested["accuracy"] <= 1 and (tmp / "roc.png").stat().st_size > 10_000
    summary = summarize(loaded)
    assert summary.prunable_layers and not summary.unprunable_layers

    sa = run_sensitivity(SensitivityConfig(levels="0.0,0.5", output_folder=str(tmp / "sa"), reconstruct=8),
                         loaded, evaluator, calibration=images)
    assert sa.layers == len(summary.prunable_layers) and sa.levels == [0.0, 0.5]

    schedule = make_schedule(ScheduleConfig(csv=sa.csv, model=MODEL, output=str(tmp / "s.yaml"),
                                            target_macs_ratio=0.5, checkpoint=str(weights), evaluation=evaluation,
                                            reconstruct=8, train_root=str(TRAIN)))
    assert schedule["ratios"] and schedule["macs_ratio"] <= 0.52 and len(schedule["candidates"]) > 1

    pruned = run_prune(PruneConfig(schedule_path=str(tmp / "s.yaml"), reconstruct=8, save_checkpoint=True,
                                   output_folder=str(tmp), layers_out_path=str(tmp / "out.txt")),
                       load_model(MODEL, weights), evaluator, images)
    assert pruned.macs_after < 0.75 * pruned.macs_before
    layers = dict(loaded.model.named_modules())
    assert any(getattr(layers[name], "kernel_size", (1, 1)) != (1, 1) for name in pruned.refitted)
    reloaded = load_model(checkpoint=pruned.checkpoint)
    assert evaluator(reloaded.model)["headline"] == pytest.approx(pruned.accuracy_after, abs=1e-9)

    teacher = load_model(MODEL, weights).model
    tuned = run_finetune(FineTuneRun(train_root=str(TRAIN), work_path=str(tmp / "ft")), reloaded, evaluator,
                         FineTuneConfig(epochs=1, lr=0.001, milestones=(), batch_size=32, head="none", kd_weight=1.0,
                                        feature_kd=100.0, best_of_trained=True), teacher)
    assert tuned.epochs == 1 and load_model(checkpoint=tuned.best_checkpoint).keep == reloaded.keep

    quantized = run_quantization(QuantizationConfig(latency_batches=(1,), latency_repeats=2,
                                                    output_folder=str(tmp / "q")),
                                 reloaded, evaluator, images[:8], images[8:])
    assert quantized.cosine_mean > 0.9

    build_report(ReportConfig(variants=(("pruned", pruned.checkpoint), ("INT8", quantized.files["int8"])),
                              evaluation=evaluation, csv=sa.csv, output_dir=str(tmp / "report")))
    report = json.loads((tmp / "report" / "report.json").read_text())
    assert [row["variant"] for row in report["variants"]] == ["pruned", "INT8"]
    assert report["variants"][0]["accuracy"] == pytest.approx(pruned.accuracy_after, abs=1e-9)


def test_a_mode_result_writes_only_the_fields_that_apply(tmp_path):
    from compression_tool.commen_utils.results import write_result_json
    from compression_tool.pruning import PruneResult

    result = PruneResult(params_before=2, macs_before=4, params_after=1, macs_after=2, keep={"conv": 1}, criterion="l1",
                         bn_recalibration_images=0, reconstruction_images=0)
    write_result_json(tmp_path / "p.json", result)
    assert json.loads((tmp_path / "p.json").read_text()) == {
        "params_before": 2, "macs_before": 4, "params_after": 1, "macs_after": 2, "keep": {"conv": 1},
        "criterion": "l1", "bn_recalibration_images": 0, "reconstruction_images": 0}

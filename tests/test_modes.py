"""Every mode called as a library function with its config, as the CLIs do after parsing their flags: test,
summary, sa, schedule (budget mode), prune, finetune, quantization and report, one test each, on a small
concatenating model given by file (random weights: this checks the modes' contracts, not accuracy). The
artefacts one mode hands the next (the CSV, the schedule, the pruned checkpoint) are module-scoped fixtures,
made once; a mode that fails fails its own test and errors the ones built on its output, no others."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from compression_tool.commen_utils.model_stats import count_macs, count_params
from compression_tool.commen_utils.schedule import read_schedule
from compression_tool.dataloader import sample_images
from compression_tool.model_define import create_model
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.summary import summarize
from compression_tool.prune_module.thinning import prune_model
from compression_tool.pruning import PruneConfig, run_prune
from compression_tool.pruning_analysis_tools.auto_make_yaml import ScheduleConfig, make_schedule
from compression_tool.pruning_analysis_tools.curves import read_curves
from compression_tool.pruning_analysis_tools.report import ReportConfig, build_report
from compression_tool.quantization import QuantizationConfig, run_quantization
from compression_tool.sensitivity_analysis import SensitivityConfig, run_sensitivity
from compression_tool.test_module.evaluate import EvaluationConfig, evaluator_from_config
from compression_tool.test_module import runner  # not its TestConfig by name: pytest would take it for a test class
from tests.cli import ORL, subset_pairs
from tests.helpers import randomize
from tests.inception_face import INPUT_SPEC, build
from compression_tool.train_module.trainer import FineTuneConfig, FineTuneRun, run_finetune

MODEL = "tests/inception_face.py:build"
TRAIN = ORL.parent.parent / "train_data/orl_s1-20"
SIZE = INPUT_SPEC["size"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("modes")
    torch.manual_seed(0)
    weights = tmp / "w.pth"
    torch.save(randomize(build()).state_dict(), weights)
    evaluation = EvaluationConfig("lfw", str(ORL), str(subset_pairs(tmp, 16)), batch_size=16)
    return tmp, weights, evaluation


@pytest.fixture(scope="module")
def loaded(setup):
    """The unpruned model, for the modes that only read it (a mode that changes its model gets its own)."""
    return load_model(MODEL, setup[1])


@pytest.fixture(scope="module")
def evaluator(setup, loaded):
    return evaluator_from_config(setup[2], loaded.spec, cache_images=True, progress=False)


@pytest.fixture(scope="module")
def images(loaded):
    return sample_images(TRAIN, loaded.spec, 16)


@pytest.fixture(scope="module")
def sa(setup, loaded, evaluator, images):
    return run_sensitivity(SensitivityConfig(levels="0.0,0.5", output_folder=str(setup[0] / "sa"), reconstruct=8),
                           loaded, evaluator=evaluator, images=images)


@pytest.fixture(scope="module")
def schedule(setup, sa):
    tmp, weights, evaluation = setup
    return make_schedule(ScheduleConfig(csv=sa.csv, model=MODEL, output=str(tmp / "s.yaml"), target_macs_ratio=0.5,
                                        checkpoint=str(weights), evaluation=evaluation, reconstruct=8,
                                        train_root=str(TRAIN)))


@pytest.fixture(scope="module")
def pruned(setup, schedule, evaluator, images):
    tmp, weights, _ = setup
    return run_prune(PruneConfig(schedule_path=schedule["yaml"], reconstruct=8, save_checkpoint=True,
                                 output_folder=str(tmp), layers_out_path=str(tmp / "out.txt")),
                     load_model(MODEL, weights), evaluator=evaluator, images=images)


@pytest.fixture(scope="module")
def quantized(setup, pruned, evaluator, images):
    return run_quantization(QuantizationConfig(latency_batches=(1,), latency_repeats=2,
                                               output_folder=str(setup[0] / "q")),
                            load_model(checkpoint=pruned.checkpoint), evaluator=evaluator, calibration=images[:8],
                            validation=images[8:])


def build_from(weights) -> nn.Module:
    """The test model built from its file and weights directly, without the tool's loader."""
    model = build()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


def lfw_protocol(model, pair_list: Path) -> tuple:
    """The LFW protocol written out again, apart from test_module: decode and normalise each image as
    INPUT_SPEC says, cosine of the two embeddings, and for each of the 10 consecutive folds the threshold
    that is best on the other folds (the lowest of equally good ones). Returns (accuracy, mean threshold, AUC):
    on 16 pairs the accuracy moves in steps of 1/20, the threshold and the AUC with every score."""
    pairs = [line.split() for line in pair_list.read_text().splitlines() if line.strip()]

    def embed(name):
        pixels = np.asarray(Image.open(ORL / name).convert("RGB"), dtype=np.float32)
        x = torch.from_numpy((pixels - INPUT_SPEC["mean"]) / INPUT_SPEC["std"]).permute(2, 0, 1)[None]
        return F.normalize(model(x), dim=1)[0]

    with torch.no_grad():
        model.eval()
        scores = np.array([float(embed(a) @ embed(b)) for a, b, _ in pairs])
    labels = np.array([int(label) for *_, label in pairs])
    folds = np.array_split(np.arange(len(pairs)), 10)
    accuracies, thresholds = [], []
    for fold in folds:
        train = np.setdiff1d(np.arange(len(pairs)), fold)
        s, y = scores[train], labels[train]
        candidates = np.concatenate([[s.min() - 1], (np.sort(s)[1:] + np.sort(s)[:-1]) / 2, [s.max() + 1]])
        correct = [np.sum((s >= t) == y) for t in candidates]
        thresholds.append(candidates[int(np.argmax(correct))])
        accuracies.append(np.mean((scores[fold] >= thresholds[-1]) == labels[fold]))
    positive, negative = scores[labels == 1], scores[labels == 0]
    auc = np.mean((positive[:, None] > negative[None]) + 0.5 * (positive[:, None] == negative[None]))
    return float(np.mean(accuracies)), float(np.mean(thresholds)), float(auc)


def test_test_mode_scores_the_pairs_as_the_lfw_protocol_says(setup, loaded):
    tmp, _, evaluation = setup
    tested = runner.run_test(runner.TestConfig(evaluation, roc_png=str(tmp / "roc.png")), loaded)
    accuracy, threshold, auc = lfw_protocol(build_from(setup[1]), Path(evaluation.pair_list))
    assert tested["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert tested["threshold"] == pytest.approx(threshold, abs=1e-5) and tested["auc"] == pytest.approx(auc, abs=1e-9)
    assert (tmp / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp / "roc.png").stat().st_size > 10_000


def test_summary_counts_the_model_and_lists_its_convs(setup, loaded):
    summary = summarize(loaded)
    model = build_from(setup[1])
    assert summary.params == sum(p.numel() for p in model.parameters())
    assert summary.macs == count_macs(model, SIZE)
    convs = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert summary.prunable_layers and set(summary.prunable_layers) <= convs and not summary.unprunable_layers


def test_sa_writes_every_layer_at_every_level(loaded, evaluator, sa):
    table = read_curves(sa.csv)
    layers = summarize(loaded).prunable_layers
    assert sa.levels == [0.0, 0.5] and sa.layers == len(layers) and set(table.layers) == set(layers)
    assert table.criterion == "l1" and table.repair["reconstruct"] == 8
    # level 0.0 is the unpruned model on every row; pruning half a layer's channels removes MACs
    assert sa.baseline == pytest.approx(evaluator(loaded.model)["headline"], abs=1e-9)
    for layer in layers:
        assert set(table.accuracy[layer]) == {0.0, 0.5}
        assert table.accuracy[layer][0.0] == pytest.approx(sa.baseline, abs=1e-9)
        assert table.cosine[layer][0.0] == pytest.approx(1.0, abs=1e-6)
        assert table.macs[layer][0.5] < table.macs[layer][0.0] == count_macs(loaded.model, SIZE)


def test_schedule_meets_the_budget_and_keeps_the_best_measured_candidate(schedule):
    assert read_schedule(schedule["yaml"]) == schedule["ratios"]
    tried = schedule["candidates"]
    assert len(tried) > 1 and all(c["macs_ratio"] <= 0.5 for c in tried)
    best = max(tried, key=lambda c: c["measured"])  # ties: the first, as the tool says
    assert schedule["macs_ratio"] == best["macs_ratio"]
    # the reported ratio is the real pruned model's, counted here apart from the schedule's bisection
    model = create_model(MODEL).eval()
    full = count_macs(model, SIZE)
    prune_model(model, SIZE, schedule["ratios"])
    assert schedule["macs_ratio"] == pytest.approx(count_macs(model, SIZE) / full, rel=1e-12)


def test_prune_saves_what_it_reports(setup, loaded, evaluator, schedule, pruned):
    assert pruned.macs_before == count_macs(loaded.model, SIZE)
    assert pruned.macs_after / pruned.macs_before == pytest.approx(schedule["macs_ratio"], rel=1e-12)
    assert pruned.accuracy_before == pytest.approx(evaluator(loaded.model)["headline"], abs=1e-9)
    layers = dict(loaded.model.named_modules())
    assert any(getattr(layers[name], "kernel_size", (1, 1)) != (1, 1) for name in pruned.refitted)
    reloaded = load_model(checkpoint=pruned.checkpoint)
    assert reloaded.keep == pruned.keep and count_params(reloaded.model) == pruned.params_after
    assert count_macs(reloaded.model, SIZE) == pruned.macs_after
    assert evaluator(reloaded.model)["headline"] == pytest.approx(pruned.accuracy_after, abs=1e-9)
    widths = [m.out_channels for m in reloaded.model.modules() if isinstance(m, nn.Conv2d)]
    assert (setup[0] / "out.txt").read_text() == f"{widths}\n"


def test_finetune_trains_the_pruned_model_and_keeps_its_widths(setup, evaluator, pruned):
    tmp, weights, _ = setup
    start = load_model(checkpoint=pruned.checkpoint)
    tuned = run_finetune(FineTuneConfig(epochs=1, lr=0.001, milestones=(), batch_size=32, head="none", kd_weight=1.0,
                                        feature_kd=100.0, best_of_trained=True), start, evaluator=evaluator,
                         run=FineTuneRun(train_root=str(TRAIN), work_path=str(tmp / "ft")),
                         teacher=load_model(MODEL, weights).model)
    assert tuned.epochs == 1 and tuned.accuracy_start == pytest.approx(pruned.accuracy_after, abs=1e-9)
    best = load_model(checkpoint=tuned.best_checkpoint)
    assert best.keep == pruned.keep
    assert evaluator(best.model)["headline"] == pytest.approx(tuned.accuracy, abs=1e-9)
    before = load_model(checkpoint=pruned.checkpoint).model.state_dict()
    assert any(not torch.equal(before[k], v) for k, v in best.model.state_dict().items())  # it was trained


def test_quantization_keeps_the_embeddings(evaluator, pruned, quantized):
    fp32 = quantized.variants["fp32"]
    assert fp32["accuracy"] == pytest.approx(pruned.accuracy_after, abs=1e-9)
    assert fp32["cosine_min"] == pytest.approx(1.0, abs=1e-6)
    assert quantized.variants["fp32 folded"]["cosine_min"] > 0.9999  # BN folding changes only rounding
    assert 0.9 < quantized.cosine_min <= quantized.cosine_mean <= 1.0 + 1e-6
    assert quantized.cosine_mean == quantized.variants[quantized.int8_variant]["cosine_mean"]
    assert all(Path(f).exists() for f in quantized.files.values())


def test_report_scores_every_variant(setup, sa, pruned, quantized):
    tmp, _, evaluation = setup
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

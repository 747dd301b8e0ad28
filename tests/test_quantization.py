import copy

import pytest
import torch
import torch.nn.functional as F

from dataloader import sample_images
from model_define.loading import load_model
from pruning import ChannelGraph, prune_model
from quantization import convert_int8, faster_integer_prelus, prelu_names, qconfig_mapping, quantize_int8
from tests.cli import ORL, SFACE, one_line_error, read_json, run_cli, subset_pairs

TRAIN = ORL.parent.parent / "train_data/orl_s1-20"


@pytest.fixture(scope="module")
def sface_and_images():
    loaded = load_model("sface", SFACE)
    images = sample_images(TRAIN, loaded.spec, 32)
    return loaded.model.eval(), images[:16], images[16:]


def cosine_to_float(model, quantized, images):
    with torch.no_grad():
        return F.cosine_similarity(model(images), quantized(images), dim=1)


def settings(**overrides):
    return {"backend": "fbgemm", "observer": "histogram", "integer_prelus": [], "reduce_range": False, **overrides}


@pytest.mark.parametrize("kind", ["float", "integer", "auto"])
def test_int8_keeps_prelu_embeddings(sface_and_images, kind):
    model, calibration, held_out = sface_and_images
    integer = {"float": [], "integer": prelu_names(model)}.get(kind)
    if kind == "auto":
        integer = faster_integer_prelus(model, (112, 112), 32, "fbgemm")
        assert set(integer) <= set(prelu_names(model))
    quantized = quantize_int8(model, (112, 112), calibration, settings(integer_prelus=integer), progress=False)
    assert cosine_to_float(model, quantized, held_out).mean() >= 0.98


def test_the_default_fx_flow_would_fail_that_check(sface_and_images):
    """The check above catches torch's quantized-PReLU bug: the stock FX flow wrecks the embeddings."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    model, calibration, held_out = sface_and_images
    torch.backends.quantized.engine = "fbgemm"
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("fbgemm"),
                          example_inputs=(calibration[:1],))
    with torch.no_grad():
        prepared(calibration)
    assert cosine_to_float(model, convert_int8(prepared), held_out).mean() < 0.5
    assert qconfig_mapping("fbgemm", "minmax", False).object_type_qconfigs[torch.nn.PReLU] is not None


def test_int8_of_a_pruned_model(sface_and_images):
    model, calibration, held_out = sface_and_images
    pruned = copy.deepcopy(model)
    graph = ChannelGraph(pruned, (112, 112))
    prune_model(pruned, (112, 112), {g.param: 0.25 for g in graph.groups[:6]}, graph=graph)
    quantized = quantize_int8(pruned, (112, 112), calibration, settings(observer="percentile"), progress=False)
    assert cosine_to_float(pruned, quantized, held_out).mean() >= 0.98


def test_quantization_mode_end_to_end(tmp_path):
    """INT8 + fp16 + BN-folded TorchScript + both ONNX files on a few pairs; every file reloads and scores as
    reported."""
    pairs = subset_pairs(tmp_path, 24)
    common = ["--test_root_path", ORL, "--img_list_label_path", pairs, "--device", "cpu"]
    out = tmp_path / "q"
    run_cli("--mode", "quantization", "--model", "sface", "--best_model_path", SFACE, "--fp16", "--calib_batches",
            "1", "--observer", "minmax", "--prelu", "integer", "--latency_batches", "1", "2", "--latency_repeats", "1",
            "--quantized_save_model_path", out, "--result_json", tmp_path / "q.json", *common)
    result = read_json(tmp_path / "q.json")
    for key in ("accuracy_fp32", "accuracy_int8", "accuracy_fp16", "cosine_min", "cosine_mean", "size_mb_fp32",
                "size_mb_int8", "latency_ms_fp32_bs1", "latency_ms_int8_bs1", "latency_ms_fp32_bs2",
                "latency_ms_int8_bs2", "latency_ms_fp32_folded_bs1", "accuracy_fp32_folded"):
        assert key in result, key
    assert result["cosine_mean"] >= 0.98 and result["size_mb_int8"] < 0.3 * result["size_mb_fp32"]
    onnx = result["variants"]
    assert onnx["onnx fp32"]["cosine_min"] > 0.9999 and onnx["onnx int8"]["cosine_mean"] >= 0.98
    assert onnx["fp32 folded"]["cosine_min"] > 0.9999
    assert sorted(p.name for p in out.iterdir()) == sorted(p.rsplit("/", 1)[1] for p in result["files"].values())
    for name, expected in (("int8", result["accuracy_int8"]), ("onnx int8", onnx["onnx int8"]["accuracy"]),
                           ("fp16", result["accuracy_fp16"]), ("fp32 folded", result["accuracy_fp32_folded"])):
        run_cli("--mode", "test", "--model", "sface", "--best_model_path", result["files"][name], "--result_json",
                tmp_path / "t.json", "--roc_png", tmp_path / "roc.png", *common)
        assert read_json(tmp_path / "t.json")["accuracy"] == pytest.approx(expected, abs=0.03 if name == "fp16"
                                                                          else 1e-9), name


def test_conflicting_quantization_flags(tmp_path):
    line = one_line_error(run_cli("--mode", "quantization", "--model", "sface", "--device", "cpu", "--prelu", "integer",
                                  "--quant_backend", "onnxruntime", "--test_root_path", ORL,
                                  "--img_list_label_path", subset_pairs(tmp_path, 40),
                                  "--quantized_save_model_path", tmp_path / "q", check=False))
    assert "--prelu integer" in line and not (tmp_path / "q").exists()

"""INT8 on any x86 CPU. Every cosine floor here holds with and without VNNI: run the suite once more with
`make test-avx2` (oneDNN, OpenVINO and FBGEMM limited to AVX2) on a VNNI machine to see the other path."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from compression_tool.commen_utils import openvino_io
from compression_tool.commen_utils.cpu_isa import read_cpu_isa
from compression_tool.dataloader import sample_images
from compression_tool.model_define.loading import load_model
from compression_tool.prune_module.graph import ChannelGraph
from compression_tool.prune_module.thinning import prune_model
from compression_tool.quant_module import openvino_ptq, torch_fx
from compression_tool.quant_module.selection import Candidate, best_not_slower, fastest_accurate
from compression_tool.quantization import default_backend
from compression_tool.test_module.evaluate import make_evaluator
from tests.cli import ORL, SFACE, one_line_error, read_json, run_cli, subset_pairs

TRAIN = ORL.parent.parent / "train_data/orl_s1-20"
AVX2 = "flags : sse4_2 avx avx2 fma\nmodel name : AMD EPYC 7B13\n"
VNNI = "model name : Intel Xeon\nflags : avx2 avx512f avx512_vnni amx_int8\n"


@pytest.fixture(scope="module")
def sface_and_images():
    """SFace (PReLU everywhere) and three disjoint sets of training faces: calibration, validation (the
    choices), held out (the checks)."""
    loaded = load_model("sface", SFACE)
    images = sample_images(TRAIN, loaded.spec, 48)
    return loaded.model.eval(), images[:16], images[16:32], images[32:]


def cosine_to_float(model, quantized, images):
    with torch.no_grad():
        return F.cosine_similarity(model(images), quantized(images), dim=1)


def default_int8(model, calibration, validation):
    """What --mode quantization does with its default backend: candidates measured, the best kept."""
    assert default_backend() == "openvino"
    ov_fp32 = openvino_io.to_openvino(model, (112, 112))
    return openvino_ptq.search(ov_fp32, model, calibration, validation, (112, 112), read_cpu_isa(), repeats=3)[0]


def test_default_backend_keeps_prelu_embeddings(sface_and_images):
    model, calibration, validation, held_out = sface_and_images
    chosen = default_int8(model, calibration, validation)
    assert cosine_to_float(model, chosen.model, held_out).mean() >= 0.99


def test_default_backend_on_a_pruned_model(sface_and_images):
    model, calibration, validation, held_out = sface_and_images
    pruned = copy.deepcopy(model)
    graph = ChannelGraph(pruned, (112, 112))
    prune_model(pruned, (112, 112), {g.param: 0.25 for g in graph.groups[:6]}, graph=graph)
    chosen = default_int8(pruned, calibration, validation)
    assert cosine_to_float(pruned, chosen.model, held_out).mean() >= 0.99


@pytest.mark.parametrize("kind", ["float", "integer"])
def test_torch_int8_keeps_prelu_embeddings(sface_and_images, kind):
    """The torch backend needs 7-bit activations where int8 products saturate; with them it holds on any
    CPU (the floor is lower than OpenVINO's: that is the point of the default)."""
    model, calibration, _, held_out = sface_and_images
    settings = {"engine": "fbgemm", "observer": "histogram", "reduce_range": read_cpu_isa().saturates_int8,
                "integer_prelus": torch_fx.prelu_names(model) if kind == "integer" else []}
    quantized = torch_fx.quantize_int8(model, (112, 112), calibration, settings, progress=False)
    assert cosine_to_float(model, quantized, held_out).mean() >= 0.975


def test_the_default_fx_flow_would_fail_that_check(sface_and_images):
    """The check above catches torch's quantized-PReLU bug: the stock FX flow wrecks the embeddings."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    model, calibration, _, held_out = sface_and_images
    torch.backends.quantized.engine = "fbgemm"
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("fbgemm"),
                          example_inputs=(calibration[:1],))
    with torch.no_grad():
        prepared(calibration)
    assert cosine_to_float(model, torch_fx.convert_int8(prepared), held_out).mean() < 0.5
    assert torch_fx.qconfig_mapping("fbgemm", "minmax", False).object_type_qconfigs[torch.nn.PReLU] is not None


def test_cpu_isa_reads_flags_and_the_onednn_cap():
    assert read_cpu_isa(AVX2, cap="").saturates_int8
    vnni = read_cpu_isa(VNNI, cap="")
    assert vnni.vnni and vnni.amx and not vnni.saturates_int8 and "Intel Xeon" in vnni.describe()
    capped = read_cpu_isa(VNNI, cap="AVX2")
    assert capped.saturates_int8 and not capped.avx512 and "ONEDNN_MAX_CPU_ISA=AVX2" in capped.describe()
    assert not read_cpu_isa(VNNI, cap="AVX512_CORE_VNNI").saturates_int8


def test_saturation_settings_are_tried_where_they_matter():
    """Without VNNI the 7-bit-weight fix is a candidate; with VNNI, leaving it off is. The first candidate is
    always NNCF's default, the anchor the others must beat."""
    avx2 = openvino_ptq.candidate_settings(read_cpu_isa(AVX2, cap=""))
    vnni = openvino_ptq.candidate_settings(read_cpu_isa(VNNI, cap=""))
    assert avx2[0] == vnni[0] == openvino_ptq.OpenVinoSettings()
    assert {s.overflow_fix for s in avx2} == {"first_layer_only", "enable"}
    assert "disable" in {s.overflow_fix for s in vnni}


def candidate(name, cosine, ms):
    return Candidate(name, None, cosine_mean=cosine, latency_ms={1: ms})


def test_choice_rules():
    default, better_slow, better = candidate("a", 0.990, 10.0), candidate("b", 0.999, 12.0), candidate("c", 0.995, 10.3)
    assert best_not_slower([default, better_slow, better])[0] is better
    assert best_not_slower([default, better_slow])[0] is default
    saturated = candidate("s", 0.92, 9.0)  # a default that lost accuracy: speed does not keep it
    assert best_not_slower([saturated, better_slow, better])[0] is better
    assert best_not_slower([saturated, better_slow])[0] is better_slow
    fast_bad, slow_good = candidate("x", 0.95, 2.0), candidate("y", 0.995, 5.0)
    assert fastest_accurate([fast_bad, slow_good], 0.99)[0] is slow_good
    assert fastest_accurate([fast_bad, slow_good], 0.999)[0] is slow_good  # none reaches it: most accurate
    assert fastest_accurate([fast_bad, slow_good], 0.9)[0] is fast_bad


def tiny_prelu_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.PReLU(16), nn.Conv2d(16, 32, 3, 2, 1),
                         nn.BatchNorm2d(32), nn.PReLU(32), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 8)).eval()


def test_accuracy_control_keeps_layers_in_float():
    """With a bound no INT8 layer can meet, NNCF's accuracy control puts layers back in float, and we name
    them."""
    model = tiny_prelu_net()
    images = torch.rand(48, 3, 32, 32) * 4 - 2
    ov_fp32 = openvino_io.to_openvino(model, (32, 32))
    assert openvino_ptq.float_layers(ov_fp32)  # nothing quantized: every conv and matmul is float
    plain, _ = openvino_ptq.search(ov_fp32, model, images[:16], images[16:], (32, 32), read_cpu_isa(), repeats=2)
    controlled, _ = openvino_ptq.search(ov_fp32, model, images[:16], images[16:], (32, 32), read_cpu_isa(),
                                        repeats=2, max_cosine_drop=1e-7)
    assert not plain.settings["float_layers"]
    assert controlled.settings["float_layers"] and controlled.settings["max_cosine_drop"] == 1e-7
    plain_cos = cosine_to_float(model, plain.model, images[16:]).mean()
    assert cosine_to_float(model, controlled.model, images[16:]).mean() >= plain_cos - 1e-6


def test_quantization_mode_end_to_end(tmp_path):
    """--quant_backend auto runs every backend: the OpenVINO, ONNX Runtime and torch files, fp16 and the
    BN-folded TorchScript all reload and score as reported."""
    pairs = subset_pairs(tmp_path, 24)
    common = ["--test_root_path", ORL, "--img_list_label_path", pairs, "--device", "cpu"]
    out = tmp_path / "q"
    run_cli("--mode", "quantization", "--model", "sface", "--best_model_path", SFACE, "--quant_backend", "auto",
            "--fp16", "--calib_batches", "1", "--validation_images", "16", "--observer", "minmax", "--prelu",
            "float", "--latency_batches", "1", "--latency_repeats", "1", "--quantized_save_model_path", out,
            "--result_json", tmp_path / "q.json", *common)
    result = read_json(tmp_path / "q.json")
    for key in ("accuracy_fp32", "accuracy_int8", "accuracy_fp16", "cosine_min", "cosine_mean", "size_mb_fp32",
                "size_mb_int8", "latency_ms_fp32_bs1", "latency_ms_int8_bs1", "latency_ms_fp32_folded_bs1",
                "accuracy_fp32_folded", "latency_ms_openvino_int8_bs1", "accuracy_openvino_fp32", "backend", "cpu"):
        assert key in result, key
    assert len(result["candidates"]["auto"]) == 3 and result["size_mb_int8"] < 0.3 * result["size_mb_fp32"]
    rows = result["variants"]
    assert rows["openvino int8"]["cosine_mean"] >= 0.99 and rows["onnx int8"]["cosine_mean"] >= 0.975
    assert rows["fp32 folded"]["cosine_min"] > 0.9999 and rows["openvino fp32"]["cosine_min"] > 0.9999
    written = {p.name for p in out.iterdir()}
    listed = {p.rsplit("/", 1)[1] for p in result["files"].values()}
    assert written == listed | {n.replace(".xml", ".bin") for n in listed if n.endswith(".xml")}
    assert {n.rsplit("_", 1)[1] for n in written} >= {"int8.xml", "int8.bin", "fp32.xml", "fp32.bin", "int8.pt",
                                                      "int8.onnx", "fp16.pt"}
    evaluator = make_evaluator("lfw", ORL, pairs, load_model("sface").spec, batch_size=32, progress=False)
    for name in ("torch int8", "onnx int8", "fp16", "fp32 folded", "openvino fp32"):
        reloaded = load_model("sface", result["files"][name]).model
        assert evaluator(reloaded)["accuracy"] == pytest.approx(rows[name]["accuracy"],
                                                                abs=0.03 if name == "fp16" else 1e-9), name
    run_cli("--mode", "test", "--model", "sface", "--best_model_path", result["files"]["openvino int8"],
            "--result_json", tmp_path / "t.json", "--roc_png", tmp_path / "roc.png", *common)
    assert read_json(tmp_path / "t.json")["accuracy"] == pytest.approx(rows["openvino int8"]["accuracy"], abs=1e-9)
    (out / result["files"]["openvino int8"].rsplit("/", 1)[1].replace(".xml", ".bin")).unlink()
    line = one_line_error(run_cli("--mode", "test", "--model", "sface", "--best_model_path",
                                  result["files"]["openvino int8"], *common, check=False))
    assert "int8.bin" in line


def test_conflicting_quantization_flags(tmp_path):
    common = ["--mode", "quantization", "--model", "sface", "--device", "cpu", "--test_root_path", ORL,
              "--img_list_label_path", subset_pairs(tmp_path, 40), "--quantized_save_model_path", tmp_path / "q"]
    line = one_line_error(run_cli(*common, "--prelu", "integer", "--quant_backend", "onnxruntime", check=False))
    assert "--prelu integer" in line and not (tmp_path / "q").exists()
    line = one_line_error(run_cli(*common, "--max_cosine_drop", "0.01", "--quant_backend", "torch", check=False))
    assert "--max_cosine_drop" in line and not (tmp_path / "q").exists()


def test_an_int8_checkpoint_from_before_engine_was_recorded_still_rebuilds(sface_and_images):
    """Checkpoints written before the metadata split `backend` (torch) from `engine` (its kernels) kept the
    kernels under `backend`: they rebuild the same layout."""
    model = sface_and_images[0]
    common = {"observer": "histogram", "reduce_range": False, "integer_prelus": []}
    old = torch_fx.int8_structure(model, (112, 112), {"backend": "x86", **common})
    new = torch_fx.int8_structure(model, (112, 112), {"backend": "torch", "engine": "x86", **common})
    assert old.state_dict().keys() == new.state_dict().keys()


def test_an_int8_checkpoint_needs_its_engine_registered(monkeypatch, tmp_path):
    from compression_tool.commen_utils.errors import UserError
    from compression_tool.model_define import loading

    monkeypatch.delitem(loading.PRECISIONS, "int8")
    with pytest.raises(UserError, match="int8 checkpoint; import .*quant_module"):
        loading.rebuilder_of("int8", tmp_path / "x_int8.pt")

"""ONNX face models as input: converted to torch, they compute what the exported model computed, prune
exactly, reload after pruning by the file they name, and run through the CLI; files that are no face model
or hold an op the converter lacks are refused in one line."""
import copy

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from compression_tool.commen_utils.checkpoint import save_checkpoint
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.onnx_io import export_onnx
from compression_tool.dataloader import load_image
from compression_tool.model_define import create_model, get_entry
from compression_tool.model_define.keep import record_keep
from compression_tool.model_define.loading import load_model
from compression_tool.model_define.sface import bundled_onnx_path
from compression_tool.prune_module.criteria import L1
from compression_tool.prune_module.graph import ChannelGraph, apply_plan
from compression_tool.prune_module.thinning import prune_model
from tests.cli import ORL, SFACE, one_line_error, run_in_process, subset_pairs
from tests.helpers import randomize, zero_channels


def assert_same_embeddings(got, expected):
    cosine = torch.nn.functional.cosine_similarity(got, expected)
    assert cosine.min().item() >= 0.9999
    assert (got - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()


def assert_prunes_exactly(model, size, x, count=3):
    graph = ChannelGraph(model, size)
    groups = graph.groups
    for group in (groups[0], groups[len(groups) // 2], groups[-1])[:count]:
        idxs = group.channels_to_remove(L1().scores(model, group), 0.4)
        plan = graph.plan(group, idxs)
        pruned, reference = apply_plan(copy.deepcopy(model), plan), zero_channels(copy.deepcopy(model), plan)
        with torch.no_grad():
            expected = reference(x)
            assert (pruned(x) - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())


@pytest.fixture(scope="module")
def zoo_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize(create_model("mobilefacenet", embedding_size=32))
    return model, export_onnx(model, (112, 112), tmp_path_factory.mktemp("onnx") / "mfn.onnx")


def test_zoo_model_round_trips_prunes_exactly_and_reloads_pruned(zoo_onnx, tmp_path):
    model, path = zoo_onnx
    loaded = load_model(checkpoint=path)
    assert loaded.arch == str(path) and loaded.embedding_size == 32 and loaded.input_size == (112, 112)
    assert loaded.spec.mean == 127.5 and loaded.spec.channel_order == "RGB"  # the defaults, flags override them
    x = torch.randn(4, 3, 112, 112)
    with torch.no_grad():
        assert_same_embeddings(loaded.model(x), model(x))
    assert_prunes_exactly(loaded.model, (112, 112), x)

    graph = ChannelGraph(loaded.model, (112, 112))
    prune_model(loaded.model, (112, 112), {g.param: 0.5 for g in graph.groups[::3]})
    checkpoint = save_checkpoint(tmp_path / "pruned.pt", loaded.model, loaded.arch, keep=record_keep(loaded.model),
                                 input_size=loaded.input_size, embedding_size=loaded.embedding_size)
    reloaded = load_model(checkpoint=checkpoint)
    with torch.no_grad():
        assert torch.equal(reloaded.model(x), loaded.model(x))


def test_sface_export_and_original_file_round_trip_and_prune_exactly(tmp_path):
    sface = load_model("sface", SFACE)
    spec = get_entry("sface").spec
    faces = torch.stack([load_image(ORL / face, spec) for face in ("s1/1.png", "s17/4.png", "s40/10.png")])
    with torch.no_grad():
        expected = sface.model(faces)
        exported = load_model(checkpoint=export_onnx(sface.model, (112, 112), tmp_path / "sface.onnx"))
        assert_same_embeddings(exported.model(faces), expected)
        # OpenCV zoo's own file (opset 21, block-quantized weights) converts to the same network
        assert_same_embeddings(load_model(checkpoint=bundled_onnx_path()).model(faces), expected)
    assert_prunes_exactly(exported.model, (112, 112), faces, count=2)


def test_cli_prunes_an_onnx_model_with_preprocessing_from_flags(zoo_onnx, tmp_path):
    _, path = zoo_onnx
    (tmp_path / "s.yaml").write_text(
        "version: 1\npruners:\n  p:\n    class: L1RankedStructureParameterPruner\n    desired_sparsity: 0.5\n"
        "    weights: [conv_3/model/model/0/conv/conv/Conv.weight]\npolicies:\n  - pruner: {instance_name: p}\n")
    common = ("--best_model_path", path, "--test_root_path", ORL, "--img_list_label_path", subset_pairs(tmp_path, 8),
              "--channel_order", "BGR", "--pixel_mean", "127.5", "--pixel_std", "128")
    proc = run_in_process("--mode", "prune", *common, "--yaml_path", tmp_path / "s.yaml", "--save_model_pt",
                          "--pruned_save_model_path", tmp_path / "out", "--layers_out_path", tmp_path / "keep.txt")
    assert proc.returncode == 0, proc.stderr
    pruned = next((tmp_path / "out").glob("*.pt"))
    assert load_model(checkpoint=pruned).keep["conv_3/model/model/0/conv/conv/Conv"] == 64
    assert run_in_process("--mode", "summary", "--best_model_path", pruned).returncode == 0


def face_graph(tmp_path, name, op="Relu", out_shape=("N", 48), extra=()):
    """A tiny graph: image [N, 3, 4, 4] -> op -> Flatten -> output of `out_shape` (declared)."""
    nodes = [helper.make_node(op, ["image"], ["a"], **dict(extra)), helper.make_node("Flatten", ["a"], ["embedding"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, list(out_shape))])
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_bad_onnx_files_refused_in_one_line(tmp_path, zoo_onnx):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a protobuf" * 10)
    feature_map = tmp_path / "feature_map.onnx"
    export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), (16, 16), feature_map)
    cases = {
        garbage: "not an ONNX file",
        feature_map: "not a face model (expected one embedding output [N, D])",
        face_graph(tmp_path, "hardmax.onnx", "Hardmax", extra={"axis": 1}): "cannot convert ONNX op Hardmax",
    }
    for path, cause in cases.items():
        line = one_line_error(run_in_process("--mode", "summary", "--best_model_path", path))
        assert str(path) in line and cause in line, line
    from onnxruntime.quantization import quantize_dynamic
    float_file = export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                                                 torch.nn.Linear(4 * 14 * 14, 8)), (16, 16), tmp_path / "f.onnx")
    quantize_dynamic(str(float_file), str(tmp_path / "int8.onnx"))
    line = one_line_error(run_in_process("--mode", "summary", "--model", "mobilefacenet", "--best_model_path",
                                         tmp_path / "int8.onnx"))
    assert "int8.onnx: this onnx file can only be scored (--mode test)" in line, line
    with pytest.raises(UserError, match="takes 112x112 input, not 96x96"):
        load_model(checkpoint=zoo_onnx[1], input_size="96x96")
    assert load_model(checkpoint=face_graph(tmp_path, "ok.onnx"), input_size="4x4").embedding_size == 48

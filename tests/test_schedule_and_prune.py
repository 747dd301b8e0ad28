"""Schedules (original rule, budget mode, hand-edited YAML) and --mode prune end to end on SFace."""
import pytest

from compression_tool.commen_utils.checkpoint import weights_digest
from compression_tool.commen_utils.errors import UserError
from compression_tool.commen_utils.schedule import read_schedule, write_schedule
from compression_tool.prune_module.shapes import level_at_damage
from compression_tool.pruning_analysis_tools.auto_make_yaml import budget_schedules, original_rule
from compression_tool.pruning_analysis_tools.curves import Curves
from compression_tool.model_define.loading import load_model
from compression_tool.pruning_analysis_tools.plot_csv import plot_curves
from tests.cli import ORL, SFACE, one_line_error, read_json, run_cli, subset_pairs


def test_original_rule_closest_then_rightmost():
    curve = {0.0: 0.98, 0.1: 0.97, 0.2: 0.95, 0.3: 0.96, 0.4: 0.90, 0.5: 0.955}
    assert original_rule(curve, 0.95) == 0.5   # closest 0.2 (0.95); 0.3 and 0.5 score at least as well
    assert original_rule(curve, 0.99) == 0.1   # never 0.0


def test_level_at_damage_interpolates():
    damage = {0.0: 0.0, 0.2: 0.01, 0.4: 0.03, 0.6: 0.2}
    assert level_at_damage(damage, 0.01) == 0.2
    assert level_at_damage(damage, 0.02) == pytest.approx(0.3)
    assert level_at_damage(damage, 1.0) == 0.6


def test_budget_candidates_meet_the_budget_and_spare_the_fragile_layer():
    curves = Curves(accuracy={"a": {0.0: 0.9, 0.4: 0.5, 0.8: 0.1}, "b": {0.0: 0.9, 0.4: 0.89, 0.8: 0.8}},
                    cosine={"a": {0.0: 1.0, 0.4: 0.8, 0.8: 0.5}, "b": {0.0: 1.0, 0.4: 0.99, 0.8: 0.95}})
    counts = lambda r: {"macs": 100 - 25 * sum(r.values()), "params": 1}  # noqa: E731
    candidates = budget_schedules(curves, ["a", "b"], {"macs": 0.8}, counts)
    uniform, _ = candidates["uniform"]
    shaped, reached = candidates["equal damage"]
    assert uniform["a"] == uniform["b"] and abs(uniform["a"] - 0.4) <= 0.01
    assert shaped["a"] < shaped["b"] and reached["macs"] <= 0.8


def test_damage_per_mac_prunes_where_macs_are_cheap():
    same = {0.0: 1.0, 0.4: 0.9, 0.8: 0.7}  # both layers hurt alike per level; b saves three times the MACs
    curves = Curves(accuracy={"a": {0.0: 0.9, 0.4: 0.8, 0.8: 0.7}, "b": {0.0: 0.9, 0.4: 0.8, 0.8: 0.7}},
                    cosine={"a": same, "b": same},
                    macs={"a": {0.0: 100, 0.4: 96, 0.8: 92}, "b": {0.0: 100, 0.4: 88, 0.8: 76}})
    counts = lambda r: {"macs": 100 - 10 * r.get("a", 0) - 30 * r.get("b", 0), "params": 1}  # noqa: E731
    candidates = budget_schedules(curves, ["a", "b"], {"macs": 0.8}, counts)
    equal, _ = candidates["equal damage"]
    per_mac, reached = candidates["damage per MAC"]
    assert equal["a"] == equal["b"]
    assert per_mac["a"] < per_mac["b"] and reached["macs"] <= 0.8


def test_schedule_round_trip_and_validation(tmp_path):
    path = write_schedule(tmp_path / "s.yaml", {"x.weight": 0.3, "y.weight": 0.55}, (144, 122), ["hello"])
    assert read_schedule(path) == {"x.weight": 0.3, "y.weight": 0.55}
    assert "dataset: 144x122" in path.read_text()
    (tmp_path / "bad.yaml").write_text("version: 1\npruners:\n  p: {desired_sparsity: 1.0, weights: [x.weight]}\n")
    with pytest.raises(UserError, match=r"desired_sparsity 1.0 is outside \[0, 1\)"):
        read_schedule(tmp_path / "bad.yaml")
    (tmp_path / "notyaml.yaml").write_text("pruners: [\n  : :\n")
    with pytest.raises(UserError, match="notyaml.yaml:.*not valid YAML"):
        read_schedule(tmp_path / "notyaml.yaml")


def test_plot_draws_every_layer(tmp_path):
    curves = Curves({f"l{i}.weight": {0.0: 0.9, 0.5: 0.8 - i / 100} for i in range(11)})
    paths = plot_curves(curves, tmp_path, per_figure=4)
    assert [p.name for p in paths] == ["sensitivity_001-004.png", "sensitivity_005-008.png",
                                       "sensitivity_009-011.png"]


def test_prune_mode_saves_a_reloadable_checkpoint(tmp_path):
    pairs = subset_pairs(tmp_path, 40)
    schedule = write_schedule(tmp_path / "s.yaml", {"body.conv_3.conv.weight": 0.5,
                                                    "body.conv_12.conv.weight": 0.25}, (112, 112))
    common = ["--test_root_path", ORL, "--img_list_label_path", pairs, "--device", "cpu"]
    run_cli("--mode", "prune", "--model", "sface", "--best_model_path", SFACE, "--yaml_path", schedule,
            "--save_model_pt", "--pruned_save_model_path", tmp_path, "--layers_out_path", tmp_path / "out.txt",
            "--bn_recalibrate", "16", "--reconstruct", "16", "--result_json", tmp_path / "prune.json", *common)
    result = read_json(tmp_path / "prune.json")
    assert result["macs_after"] < result["macs_before"] and result["params_after"] < result["params_before"]
    assert result["keep"]["body.conv_3.conv"] == 64 and result["keep"]["body.conv_4_dw.conv"] == 64
    assert result["keep"]["body.conv_12.conv"] == 384 and result["bn_recalibration_images"] == 16
    assert result["reconstruction_images"] == 16
    assert (tmp_path / "out.txt").read_text().startswith("[32, 32, 64, 64, 64, 64, 128,")
    run_cli("--mode", "test", "--best_model_path", tmp_path / "model_sface.pt", "--result_json",
            tmp_path / "test.json", "--roc_png", tmp_path / "roc.png", *common)
    assert read_json(tmp_path / "test.json")["accuracy"] == pytest.approx(result["accuracy_after"])
    proc = run_cli("--variant", f"original={SFACE}", "--variant", f"pruned={tmp_path / 'model_sface.pt'}",
                   "--test_root_path", ORL, "--img_list_label_path", pairs, "--output_dir", tmp_path / "report",
                   script="pruning_analysis_tools/report.py")
    report = (tmp_path / "report/report.md").read_text()
    assert "| original | 9.64 | 574 |" in report and "| pruned |" in report and "![ROC curves](roc.png)" in report
    assert (tmp_path / "report/roc.png").is_file() and (tmp_path / "report/widths.png").is_file()
    assert f"{result['accuracy_after']:.4f}" in proc.stdout


def test_prune_rejects_unknown_layer(tmp_path):
    schedule = write_schedule(tmp_path / "s.yaml", {"body.nope.weight": 0.5}, (112, 112))
    line = one_line_error(run_cli("--mode", "prune", "--model", "sface", "--yaml_path", schedule, "--device", "cpu",
                                  "--test_root_path", ORL, "--img_list_label_path", subset_pairs(tmp_path, 10),
                                  check=False))
    assert "body.nope.weight: not a prunable layer" in line


def test_prune_with_hrank_caches_its_ranks(tmp_path):
    pairs = subset_pairs(tmp_path, 12)
    schedule = write_schedule(tmp_path / "s.yaml", {"body.conv_13.conv.weight": 0.5}, (112, 112))
    run_cli("--mode", "prune", "--model", "sface", "--best_model_path", SFACE, "--yaml_path", schedule,
            "--hrank", "--hrank_batches", "1", "--rank_path", tmp_path / "ranks", "--test_root_path", ORL,
            "--img_list_label_path", pairs, "--device", "cpu", "--layers_out_path", tmp_path / "out.txt",
            "--result_json", tmp_path / "r.json")
    assert read_json(tmp_path / "r.json")["keep"]["body.conv_13.conv"] == 512
    # keyed by the weights, not by a file name that other checkpoints share
    digest = weights_digest(load_model("sface", SFACE).model)
    assert [p.name for p in (tmp_path / "ranks").iterdir()] == [f"sface_{digest}_112x112_b1.npz"]

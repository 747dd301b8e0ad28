import pytest

from tests.cli import ORL, SFACE, one_line_error, read_json, run_cli, subset_pairs


def test_fp16_keeps_sface_and_reloads(tmp_path):
    pairs = subset_pairs(tmp_path, 40)
    common = ["--test_root_path", ORL, "--img_list_label_path", pairs, "--device", "cpu"]
    run_cli("--mode", "quantization", "--fp16", "--model", "sface", "--best_model_path", SFACE,
            "--quantized_save_model_path", tmp_path, "--result_json", tmp_path / "q.json", *common)
    result = read_json(tmp_path / "q.json")
    assert result["cosine_min"] > 0.999 and abs(result["accuracy_fp16"] - result["accuracy_fp32"]) <= 0.03
    assert result["size_mb_fp16"] < 0.55 * result["size_mb_fp32"]
    run_cli("--mode", "test", "--best_model_path", result["checkpoint"], "--result_json", tmp_path / "t.json",
            "--roc_png", tmp_path / "roc.png", *common)
    assert read_json(tmp_path / "t.json")["accuracy"] == pytest.approx(result["accuracy_fp16"], abs=0.03)


def test_int8_says_it_is_not_there_yet(tmp_path):
    line = one_line_error(run_cli("--mode", "quantization", "--model", "sface", "--device", "cpu",
                                  "--test_root_path", ORL, "--img_list_label_path", subset_pairs(tmp_path, 40),
                                  check=False))
    assert "only --fp16 is available so far" in line

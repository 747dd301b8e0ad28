from tests.cli import ORL, SFACE, one_line_error, read_json, run_cli, subset_pairs


def test_mode_test_on_orl_subset(tmp_path):
    pairs = subset_pairs(tmp_path)
    run_cli("--mode", "test", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
            "--img_list_label_path", pairs, "--device", "cpu", "--target_fpr", "1e-2", "1e-3",
            "--result_json", tmp_path / "r.json", "--roc_png", tmp_path / "roc.png")
    result = read_json(tmp_path / "r.json")
    assert result["num_pairs"] == 120 and 0.9 <= result["accuracy"] <= 1.0
    assert set(result["tpr_at_fpr"]) == {"0.01", "0.001"} and 0.9 < result["auc"] <= 1.0
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_pruning_py_takes_the_same_flags(tmp_path):
    run_cli("--mode", "summary", "--model", "mobilefacenet", "--embedding_size", "128", "--device", "cpu",
            "--result_json", tmp_path / "s.json", script="pruning.py")
    result = read_json(tmp_path / "s.json")
    assert 0.99e6 <= result["params"] <= 1.01e6 and 219e6 <= result["macs"] <= 223e6
    assert "conv_3.model.0.conv.conv.weight" in result["prunable_layers"]


def test_errors_are_one_line(tmp_path):
    assert "--model nosuch: unknown model" in one_line_error(
        run_cli("--mode", "summary", "--model", "nosuch", check=False))
    assert "nope.pth: checkpoint not found" in one_line_error(
        run_cli("--mode", "summary", "--model", "sface", "--best_model_path", "nope.pth", check=False))
    assert "--fpgm and --hrank are two rankings" in one_line_error(
        run_cli("--mode", "sa", "--model", "sface", "--fpgm", "--hrank", check=False))
    assert "--img_list_label_path is required" in one_line_error(
        run_cli("--mode", "test", "--model", "sface", "--device", "cpu", check=False))


def test_corrupt_image_is_named_or_skipped(tmp_path):
    import shutil
    root = tmp_path / "faces"
    shutil.copytree(ORL / "s1", root / "s1")
    shutil.copytree(ORL / "s2", root / "s2")
    (root / "s2/3.png").write_bytes(b"broken")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("s1/1.png s1/2.png 1\ns1/3.png s1/4.png 1\ns2/1.png s2/2.png 1\n"
                     "s1/1.png s2/1.png 0\ns1/2.png s2/3.png 0\ns1/5.png s2/4.png 0\n")
    common = ["--mode", "test", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", root,
              "--img_list_label_path", pairs, "--device", "cpu", "--roc_png", tmp_path / "roc.png"]
    line = one_line_error(run_cli(*common, "--result_json", tmp_path / "bad.json", check=False))
    assert "s2/3.png: not a readable image" in line and not (tmp_path / "bad.json").exists()
    proc = run_cli(*common, "--skip_bad_images", "--result_json", tmp_path / "r.json")
    assert "skipped 1 unreadable image(s)" in proc.stderr and "dropped 1 of 6 entries" in proc.stderr
    assert read_json(tmp_path / "r.json")["num_pairs"] == 5

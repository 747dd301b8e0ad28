"""Settings as data: a run's --result_json carries the settings it was computed with, and --config takes them
back (flags override the file)."""
import importlib
from dataclasses import replace

import pytest
import yaml

from compression_tool import main

from cli import ORL, SFACE, one_line_error, read_json, run_in_process, subset_pairs


def scored(tmp_path, *extra):
    pairs = subset_pairs(tmp_path, n=60)
    return ("--mode", "test", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
            "--img_list_label_path", pairs, "--device", "cpu", "--target_fpr", "1e-2", "--roc_png",
            tmp_path / "roc.png", *extra)


def test_a_run_is_reproduced_from_its_written_config(tmp_path):
    assert run_in_process(*scored(tmp_path), "--result_json", tmp_path / "a.json").returncode == 0
    first = read_json(tmp_path / "a.json")
    config = first["config"]
    assert config["mode"] == "test" and config["target_fpr"] == [0.01] and "result_json" not in config
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert run_in_process("--config", tmp_path / "run.yaml", "--result_json", tmp_path / "b.json").returncode == 0
    assert read_json(tmp_path / "b.json") == first


def test_flags_override_the_config_file(tmp_path):
    (tmp_path / "run.yaml").write_text("mode: summary\nmodel: mobilefacenet\nembedding_size: 256\ndevice: cpu\n")
    run_in_process("--config", tmp_path / "run.yaml", "--embedding_size", "128", "--result_json", tmp_path / "s.json")
    written = read_json(tmp_path / "s.json")
    assert written["config"]["embedding_size"] == 128 and written["config"]["model"] == "mobilefacenet"
    assert 0.99e6 <= written["params"] <= 1.01e6  # the 128-wide embedding's parameter count, not the 256-wide


def test_config_file_mistakes_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, expected in (("mode: test\nno_such_flag: 1\n", "'no_such_flag' is not a flag"),
                           ("mode: nosuch\n", "mode: 'nosuch' is not one of"),
                           ("- mode\n", "expected a mapping"),
                           ("mode: [unclosed\n", "cannot be read as YAML")):
        bad.write_text(text)
        assert expected in one_line_error(run_in_process("--config", bad))
    assert "cannot be read" in one_line_error(run_in_process("--config", tmp_path / "missing.yaml"))


@pytest.mark.parametrize("mode, config_class", [("sa", "compression_tool.sensitivity_analysis:SensitivityConfig"),
                                                 ("prune", "compression_tool.pruning:PruneConfig"),
                                                 ("quantization", "compression_tool.quant_module.config:QuantizationConfig"),
                                                 ("finetune", "compression_tool.train_module.config:FineTuneConfig")])
def test_the_cli_defaults_are_the_configs_defaults(mode, config_class):
    module, _, name = config_class.partition(":")
    defaults = getattr(importlib.import_module(module), name)()
    args = main.build_parser().parse_args(["--mode", mode, "--device", "cpu"])
    built = importlib.import_module(f"compression_tool.modes.{mode}").config_from(args)
    if mode == "quantization":  # what only the run knows: the backend available here, the images' folder
        defaults = replace(defaults, backend=built.backend, calibration_source=args.train_data_path)
    assert built == defaults


def test_a_bad_setting_is_refused_when_the_config_is_built():
    from compression_tool.commen_utils.errors import UserError
    from compression_tool.train_module.config import FineTuneConfig

    for bad, message in (({"head": "x"}, "--head x: choose one of auto, arcface, cosface, none"),
                         ({"lr_schedule": "linear"}, "--lr_schedule linear: choose one of step, cosine"),
                         ({"scale_jitter": 1.5}, "--scale_jitter 1.5: expected a fraction"),
                         ({"mixup": 1.0, "head": "arcface"}, "--mixup 1.0: blends have no identity label")):
        with pytest.raises(UserError, match=message):
            FineTuneConfig(**bad)


def test_a_schedule_is_reproduced_from_its_written_config(tmp_path):
    from tests.fixtures.make_fixtures import HERE, MODEL

    script = "pruning_analysis_tools/auto_make_yaml.py"
    first = run_in_process("--csv", HERE / "sensitivity.csv", "--model", MODEL, "--target_macs_ratio", "0.5",
                           "--output", tmp_path / "a.yaml", "--result_json", tmp_path / "a.json", script=script)
    assert first.returncode == 0, first.stderr
    config = read_json(tmp_path / "a.json")["config"]
    assert config["target_macs_ratio"] == 0.5 and config["csv"] == str(HERE / "sensitivity.csv")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({**config, "output": str(tmp_path / "b.yaml")}))
    second = run_in_process("--config", tmp_path / "run.yaml", "--result_json", tmp_path / "b.json", script=script)
    assert second.returncode == 0, second.stderr
    assert read_json(tmp_path / "b.json")["ratios"] == read_json(tmp_path / "a.json")["ratios"]
    assert (tmp_path / "b.yaml").read_text().replace("b.yaml", "a.yaml") == (tmp_path / "a.yaml").read_text()


@pytest.mark.parametrize("build, message", [
    (lambda: importlib.import_module("compression_tool.pruning").PruneConfig(criterion="l2"),
     "criterion l2: choose one of l1, fpgm, hrank"),
    (lambda: importlib.import_module("compression_tool.pruning").PruneConfig(round_to=0), "--round_to 0"),
    (lambda: importlib.import_module("compression_tool.sensitivity_analysis").SensitivityConfig(levels="0.5,2"),
     "--sparsities 0.5,2: every level must be in"),
    (lambda: importlib.import_module("compression_tool.sensitivity_analysis").SensitivityConfig(reconstruct=-1),
     "--reconstruct -1: a number of training images"),
])
def test_a_bad_pruning_setting_is_refused_when_the_config_is_built(build, message):
    from compression_tool.commen_utils.errors import UserError

    with pytest.raises(UserError, match=message):
        build()


def test_the_default_repair_asks_for_its_images():
    """PruneConfig() repairs (its default is the measured recipe): called without images it says so first."""
    from compression_tool.commen_utils.errors import UserError
    from compression_tool.pruning import PruneConfig, run_prune

    with pytest.raises(UserError, match="reconstruct 200 / bn_recalibrate 0: the repair needs training images"):
        run_prune(PruneConfig(), None)

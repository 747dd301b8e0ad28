"""Every user mistake, through the CLI's main() (in this process: tests/test_cli.py runs the real
subprocess): exit code 2, one line on stderr naming the file/flag and the cause, no traceback, and no output
left behind."""
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.cli import ORL, SFACE, one_line_error, run_in_process

PAIR = "s1/1.png s1/2.png 1\ns1/1.png s2/1.png 0\n"


def pair_list(tmp, text):
    path = tmp / "pairs.txt"
    path.write_text(text)
    return path


def wrong_size_root(tmp):
    root = tmp / "faces"
    for identity in ("s1", "s2"):
        shutil.copytree(ORL / identity, root / identity)
    from PIL import Image
    Image.new("RGB", (92, 112)).save(root / "s2/1.png")
    return root


def schedule(tmp, text):
    path = tmp / "s.yaml"
    path.write_text(text)
    return path


def sensitivity_csv(tmp, text):
    path = tmp / "s.csv"
    path.write_text(text)
    return path


CONV = "body.conv_14.conv.weight"
PRUNER = ("version: 1\npruners:\n  p1:\n    class: L1RankedStructureParameterPruner\n    desired_sparsity: {r}\n"
          "    group_type: Filters\n    weights: [{w}]\n")


def mode_test_args(tmp, pairs=None, root=ORL):
    return ["--mode", "test", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", root,
            "--img_list_label_path", pairs or pair_list(tmp, PAIR), "--device", "cpu", "--roc_png", tmp / "out/roc.png"]


def prune_args(tmp, yaml_text):
    return ["--mode", "prune", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
            "--img_list_label_path", pair_list(tmp, PAIR), "--device", "cpu", "--yaml_path", schedule(tmp, yaml_text),
            "--save_model_pt", "--pruned_save_model_path", tmp / "out", "--layers_out_path", tmp / "out/out.txt"]


CASES = {
    "missing pair list": (lambda t: mode_test_args(t, t / "none.txt"), "none.txt: pair list not found"),
    "missing image folder": (lambda t: mode_test_args(t, root=t / "nowhere"), "s1/1.png: image not found"),
    "non-image file": (lambda t: (shutil.copytree(ORL / "s1", t / "s1"), mode_test_args(
        t, pair_list(t, "s1/1.png pairs.txt 1\ns1/1.png s1/3.png 0\n"), root=t))[1], "pairs.txt: not a readable image"),
    "wrong field count": (lambda t: mode_test_args(t, pair_list(t, "s1/1.png s1/2.png\n")),
                          "pairs.txt:1: expected 'path1 path2 label', got 2 fields"),
    "label not 0/1": (lambda t: mode_test_args(t, pair_list(t, "s1/1.png s1/2.png 2\n")), "pairs.txt:1: label must be 0 or 1"),
    "duplicate pair": (lambda t: mode_test_args(t, pair_list(t, PAIR + "s1/1.png s1/2.png 1\n")), "duplicate pair"),
    "empty list": (lambda t: mode_test_args(t, pair_list(t, "\n")), "pairs.txt: pair list is empty"),
    "one class": (lambda t: mode_test_args(t, pair_list(t, "s1/1.png s1/2.png 1\n")), "all pairs have the same label"),
    "wrong image size": (lambda t: mode_test_args(t, root=wrong_size_root(t)), "image is 112x92, the model needs 112x112"),
    "unknown model": (lambda t: ["--mode", "summary", "--model", "nosuch"], "--model nosuch: unknown model"),
    "checkpoint of another model": (lambda t: ["--mode", "summary", "--model", "mobilefacenet", "--best_model_path",
                                               SFACE], "holds a 'sface' model"),
    "state_dict that does not match": (
        lambda t: (torch.save({"conv.weight": torch.zeros(1)}, t / "sd.pth"),
                   ["--mode", "summary", "--model", "sface", "--best_model_path", t / "sd.pth"])[1],
        "does not match the model: missing keys"),
    "not a checkpoint": (lambda t: ((t / "x.pth").write_bytes(b"hello"),
                                    ["--mode", "summary", "--model", "sface", "--best_model_path", t / "x.pth"])[1],
                         "x.pth: not a PyTorch checkpoint"),
    "not a TorchScript file": (lambda t: ((t / "x.torchscript").write_bytes(b"hello"),
                                          ["--mode", "summary", "--model", "sface", "--best_model_path",
                                           t / "x.torchscript"])[1], "x.torchscript: not a TorchScript file"),
    "pickle that runs code": (lambda t: ((t / "evil.pth").write_bytes(pickle.dumps(Evil(t))),
                                         ["--mode", "summary", "--model", "sface", "--best_model_path",
                                          t / "evil.pth"])[1], "refused to load"),
    "YAML that is not YAML": (lambda t: prune_args(t, "pruners: [\n  - {"), "s.yaml:2: not valid YAML"),
    "YAML with an unknown layer": (lambda t: prune_args(t, PRUNER.format(r=0.5, w="body.nosuch.weight")),
                                   "body.nosuch.weight: not a prunable layer"),
    "YAML ratio outside [0, 1)": (lambda t: prune_args(t, PRUNER.format(r=1.0, w=CONV)), "is outside [0, 1)"),
    "CSV missing columns": (lambda t: ["--csv", sensitivity_csv(t, "parameter,sparsity\nx,0.0\n"), "--model", "sface",
                                       "--expected_acc", "0.9", "--output", t / "out/a.yaml"], "missing column(s)"),
    "expected_acc no level reaches": (
        lambda t: ["--csv", sensitivity_csv(t, "parameter,sparsity,top1,top5,loss\n" + CONV + ",0.0,0.9,0,0\n"
                                            + CONV + ",0.5,0.8,0,0\n"), "--model", "sface", "--expected_acc", "0.95",
                   "--output", t / "out/a.yaml"], "--expected_acc 0.95: no layer reaches it"),
    "output folder not writable": (lambda t: ["--mode", "summary", "--model", "mobilefacenet", "--result_json",
                                              "/proc/out/r.json"], "/proc/out: cannot write there"),
    "fpgm with hrank": (lambda t: ["--mode", "sa", "--model", "sface", "--fpgm", "--hrank"], "choose one"),
    "negative SA cache budget": (lambda t: ["--mode", "sa", "--model", "sface", "--best_model_path", SFACE,
                                            "--test_root_path", ORL, "--img_list_label_path", pair_list(t, PAIR),
                                            "--device", "cpu", "--sa_cache_gb", "-1",
                                            "--sensitivity_csv_path", t / "out"], "--sa_cache_gb -1.0: must be >= 0"),
    "two names for the model to fine-tune": (lambda t: ["--mode", "finetune", "--model", "sface", "--best_model_path",
                                                        SFACE, "--pruned_checkpoint", SFACE], "give one"),
    "bad milestones": (lambda t: ["--mode", "finetune", "--best_model_path", SFACE, "--milestones", "3,x",
                                  "--test_root_path", ORL, "--img_list_label_path", pair_list(t, PAIR),
                                  "--device", "cpu", "--work_path", t / "out"], "--milestones 3,x"),
    "report without its JSON": (lambda t: ["--mode", "report", "--result_json", t / "none.json"],
                                "none.json: report JSON not found"),
    "report with no JSON named": (lambda t: ["--mode", "report"], "needs --report_json"),
}
SCRIPTS = {"CSV missing columns": "pruning_analysis_tools/auto_make_yaml.py",
           "expected_acc no level reaches": "pruning_analysis_tools/auto_make_yaml.py"}


class Evil:
    def __init__(self, tmp):
        self.marker = str(tmp / "pwned")

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("case", list(CASES))
def test_user_mistake(case, tmp_path):
    make_args, expected = CASES[case]
    args = [str(a) for a in make_args(tmp_path)]
    if "--result_json" not in args and not case.startswith("report"):
        args += ["--result_json", str(tmp_path / "out/r.json")]
    proc = run_in_process(*args, script=SCRIPTS.get(case, "main.py"))
    assert expected in one_line_error(proc)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*")), "output left behind"
    assert not (tmp_path / "pwned").exists()


def test_internal_error_is_one_line_naming_a_traceback_file(tmp_path, monkeypatch):
    """An exception no check foresaw (here: the least-squares refit made to fail): one line with the mode, the
    step and the exception, the traceback in the file it names, exit code 1, no output; --debug re-raises."""
    import tempfile

    def broken(*args, **kwargs):
        raise RuntimeError("shape '[8, 4, 1, 1]' is invalid\nsecond line")

    monkeypatch.setattr("compression_tool.prune_module.repair.refit", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = prune_args(tmp_path, PRUNER.format(r=0.5, w="body.conv_12.conv.weight")) + ["--reconstruct", "4",
                                                                 "--result_json", tmp_path / "out/r.json"]
    proc = run_in_process(*args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    match = re.fullmatch(r"internal error in --mode prune at least-squares refit of body.conv_13.conv: RuntimeError: "
                         r"shape '\[8, 4, 1, 1\]' is invalid \(traceback: (\S+)\)", lines[0])
    assert match, lines[0]
    saved = Path(match[1]).read_text()
    assert saved.startswith("Traceback") and "second line" in saved and "in broken" in saved
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*")), "output left behind"
    with pytest.raises(RuntimeError, match="is invalid"):
        run_in_process(*args, "--debug")

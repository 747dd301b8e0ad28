"""Outputs appear whole or not at all, and existing ones are refused before any work unless overwritten."""
import pytest

from compression_tool.commen_utils.atomic import staged_files
from compression_tool.commen_utils.errors import UserError
from tests.cli import run_cli


def test_staged_files_refuse_an_existing_file_before_the_work(tmp_path):
    (tmp_path / "b.onnx").write_text("kept")
    ran = []
    with pytest.raises(UserError, match="b.onnx: already exists"):
        with staged_files({"a": tmp_path / "a.pt", "b": tmp_path / "b.onnx"}):
            ran.append(True)
    assert not ran and (tmp_path / "b.onnx").read_text() == "kept" and not (tmp_path / "a.pt").exists()


def test_staged_files_appear_together_or_not_at_all(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_files({"a": tmp_path / "a.pt", "b": tmp_path / "b.onnx"}) as files:
            files["a"].write_text("half")
            raise RuntimeError("failed between the two files")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with staged_files({"a": tmp_path / "a.pt"}, overwrite=True) as files:
        files["a"].write_text("whole")
    assert (tmp_path / "a.pt").read_text() == "whole"


def test_auto_make_yaml_keeps_a_hand_edited_schedule(tmp_path):
    schedule = tmp_path / "auto.yaml"
    schedule.write_text("# hand edits\n")
    csv = tmp_path / "s.csv"
    csv.write_text("parameter,sparsity,top1,top5,loss\nbody.conv_1.conv.weight,0.0,0.9,0,0\n"
                   "body.conv_1.conv.weight,0.5,0.8,0,0\n")
    proc = run_cli("--csv", csv, "--model", "sface", "--expected_acc", "0.85", "--output", schedule,
                   script="pruning_analysis_tools/auto_make_yaml.py", check=False)
    assert proc.returncode == 2 and "auto.yaml: already exists (pass --overwrite" in proc.stderr
    assert schedule.read_text() == "# hand edits\n"

"""Sensitivity analysis: the fast path writes exactly the naive path's CSV; torchrun with 2 processes writes
the same CSV as one; a resumed run equals an uninterrupted one."""
import csv
import os
import subprocess
import sys

import pytest

from compression_tool.prune_module.sensitivity import parse_levels
from compression_tool.prune_module.sensitivity_csv import level_text
from tests.cli import ORL, ROOT, SFACE, one_line_error, run_cli, subset_pairs

LEVELS = "0.0,0.5"


def sa_args(pairs, out, *extra):
    return ["--mode", "sa", "--model", "sface", "--best_model_path", SFACE, "--test_root_path", ORL,
            "--img_list_label_path", pairs, "--sparsities", LEVELS, "--sensitivity_csv_path", out,
            "--device", "cpu", "--test_batch_size", "16", *extra]


def only_csv(folder):
    files = list(folder.glob("*.csv"))
    assert len(files) == 1, files
    return files[0].read_text()


@pytest.fixture(scope="module")
def fast_csv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sa")
    pairs = subset_pairs(tmp, 24)
    run_cli(*sa_args(pairs, tmp / "fast"))
    return pairs, only_csv(tmp / "fast")


def test_csv_format(fast_csv):
    rows = list(csv.DictReader(fast_csv[1].splitlines()))
    assert fast_csv[1].splitlines()[0].startswith("parameter,sparsity,top1,top5,loss")
    assert len(rows) == 14 * 2 and rows[0]["parameter"] == "body.conv_1.conv.weight"
    assert {r["sparsity"] for r in rows} == {"0.0", "0.5"}
    baseline = {r["top1"] for r in rows if r["sparsity"] == "0.0"}
    assert len(baseline) == 1  # level 0.0 is the same baseline for every layer
    assert int(rows[1]["macs"]) < int(rows[0]["macs"])


def test_fast_path_equals_naive_path(fast_csv, tmp_path):
    pairs, fast = fast_csv
    run_cli(*sa_args(pairs, tmp_path / "naive", "--sa_naive"))
    assert only_csv(tmp_path / "naive") == fast


def test_activations_over_the_memory_budget_are_not_cached(fast_csv, tmp_path):
    pairs, fast = fast_csv  # 46 images: 0.005 to 0.07 GiB at the cuts, so 0.03 caches only some layers
    proc = run_cli(*sa_args(pairs, tmp_path, "--sa_cache_gb", "0.03"))
    assert only_csv(tmp_path) == fast
    skipped = int(proc.stderr.split("note: ")[1].split(" of 14 layers re-ran the whole model")[0])
    assert 0 < skipped < 14


def test_torchrun_two_processes_write_the_same_csv(fast_csv, tmp_path):
    pairs, fast = fast_csv
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(ROOT / "main.py"), *map(str, sa_args(pairs, tmp_path))],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert only_csv(tmp_path) == fast
    assert not list(tmp_path.glob("*.part*"))


def test_resume_after_kill_gives_the_same_csv(fast_csv, tmp_path):
    pairs, fast = fast_csv
    lines = fast.splitlines(keepends=True)
    partial = tmp_path / "partial.csv"
    partial.write_text("".join(lines[:9]) + lines[9][:12])  # killed in the middle of writing a row
    run_cli(*sa_args(pairs, tmp_path, "--resume", partial))
    assert partial.read_text() == fast


def replace_column(lines, column, value, row=1):
    header = lines[0].strip().split(",")
    cells = lines[row].strip().split(",")
    cells[header.index(column)] = value
    return lines[:row] + [",".join(cells) + "\n"] + lines[row + 1:]


MISMATCHES = {  # what is wrong: (edit of the CSV's lines, extra flags, what the one line must say)
    "another model": (lambda lines: replace_column(lines, "parameter", "layer1.0.conv1.weight"), [],
                      "layer1.0.conv1.weight is not a prunable layer"),
    "other levels": (lambda lines: lines, ["--sparsities", "0.0,0.3"], "level 0.5 is not one of --sparsities"),
    "another criterion": (lambda lines: lines, ["--fpgm"], "criterion differs: the CSV has l1, this run fpgm"),
    "another repair": (lambda lines: lines, ["--reconstruct", "8"], "--reconstruct differs: the CSV has 0"),
    "other weights": (lambda lines: replace_column(lines, "weights", "0123456789abcdef", row=3), [],
                      "hash differs"),
    "another pair list": (lambda lines: lines, ["--img_list_label_path", "OTHER_PAIRS"], "baseline (level 0.0)"),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_resume_refuses_a_csv_of_another_run(fast_csv, tmp_path, case):
    pairs, fast = fast_csv
    edit, extra, message = MISMATCHES[case]
    other_pairs = subset_pairs(tmp_path, 40, ORL / "pair_list/orl_heldout_pairs.txt")
    extra = [str(other_pairs) if a == "OTHER_PAIRS" else a for a in extra]
    partial = tmp_path / "partial.csv"
    partial.write_text("".join(edit(fast.splitlines(keepends=True)[:9])))
    before = partial.read_bytes()
    line = one_line_error(run_cli(*sa_args(pairs, tmp_path / "out", "--resume", partial, *extra), check=False))
    assert message in line and f"{partial}:" in line, line
    assert partial.read_bytes() == before and not (tmp_path / "out").exists()


def test_resume_of_a_csv_written_before_the_run_columns(fast_csv, tmp_path):
    """A CSV of the previous version (no criterion and weights columns) resumes, and stays in its format."""
    pairs, fast = fast_csv
    old = "".join(line.rsplit(",", 2)[0] + "\n" for line in fast.splitlines())
    partial = tmp_path / "partial.csv"
    partial.write_text("".join(old.splitlines(keepends=True)[:9]))
    run_cli(*sa_args(pairs, tmp_path, "--resume", partial))
    assert partial.read_text() == old


def test_levels_are_clean():
    assert [level_text(v) for v in parse_levels("0.0,0.1,0.2,0.30000000000000004")] == ["0.0", "0.1", "0.2", "0.3"]


def test_adaptive_bn_fast_path_equals_naive_path(tmp_path):
    pairs = subset_pairs(tmp_path, 16)
    extra = ["--bn_recalibrate", "8", "--sparsities", "0.0,0.6"]
    run_cli(*sa_args(pairs, tmp_path / "fast", *extra))
    run_cli(*sa_args(pairs, tmp_path / "naive", "--sa_naive", *extra))
    fast = only_csv(tmp_path / "fast")
    assert fast == only_csv(tmp_path / "naive")
    rows = list(csv.DictReader(fast.splitlines()))
    assert {r["bn_recalibration"] for r in rows} == {"8"}


def test_sigkill_then_resume_gives_the_same_csv(fast_csv, tmp_path):
    """Killed with SIGKILL mid-run (no chance to clean up), resumed: the same CSV as an uninterrupted run."""
    import signal
    import time
    pairs, fast = fast_csv
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *map(str, sa_args(pairs, out))], cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(out.glob("*.csv"))
        if files and files[0].read_text().count("\n") >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = next(out.glob("*.csv"))
    assert 8 <= partial.read_text().count("\n") < fast.count("\n")
    run_cli(*sa_args(pairs, out, "--resume", partial))
    assert partial.read_text() == fast


def test_ctrl_c_says_what_was_saved(fast_csv, tmp_path):
    import signal
    import time
    pairs, _ = fast_csv
    out = tmp_path / "run"
    # As started from a terminal: a test run in the background hands SIGINT down ignored, and Python then installs
    # no KeyboardInterrupt handler. The child installs it itself (preexec_fn may deadlock a threaded parent's fork).
    as_from_a_terminal = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                          "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", as_from_a_terminal, str(ROOT / "main.py"),
                             *map(str, sa_args(pairs, out))], cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (list(out.glob("*.csv")) and next(out.glob("*.csv")).read_text().count("\n") >= 4):
        assert time.time() < deadline and proc.poll() is None, "the analysis never wrote 3 rows"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: every finished row is in" in stderr and "continue with --resume" in stderr

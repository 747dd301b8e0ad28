import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORL = ROOT / "data/test_data/orl_112x112"
SFACE = ROOT / "work_space/model_train_best/sface.pth"


# the switches that limit oneDNN, OpenVINO, FBGEMM and ATen to an instruction set (`make test-avx2`)
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "OV_CPU_MAX_ISA", "FBGEMM_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def run_cli(*args, script="main.py", check=True):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", **{k: os.environ[k] for k in ISA_CAPS if k in os.environ}}
    proc = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_in_process(*args, script="main.py"):
    """The CLI's main(argv) called in this process, with the warning filters a plain `python` run has: what a
    subprocess would give (exit code, stdout, stderr) without paying for a new interpreter and torch."""
    module = importlib.import_module("compression_tool." + script.removesuffix(".py").replace("/", "."))
    out, err = io.StringIO(), io.StringIO()
    # the CLIs tune glibc malloc to never give memory back: right for one run, not for a test worker that
    # runs many, whose memory would only grow
    tuned = getattr(module, "reuse_freed_memory", None)
    if tuned is not None:
        module.reuse_freed_memory = lambda: False
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        try:
            code = module.main([str(a) for a in args])
        except SystemExit as e:  # argparse's own errors
            code = e.code
        finally:
            if tuned is not None:
                module.reuse_freed_memory = tuned
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def one_line_error(proc):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def subset_pairs(tmp_path, n=120, source=ORL / "pair_list/orl_pairs.txt"):
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(source.read_text().splitlines()[:n]) + "\n")
    return path


def read_json(path):
    return json.loads(Path(path).read_text())

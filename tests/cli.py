import json
import os
import subprocess
import sys
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

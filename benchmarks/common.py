"""Shared by the benchmark scripts: where things are, how to run the CLI, what machine this is."""
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from compression_tool.commen_utils.console import report_to_console
from compression_tool.data.prepare_default import (HELDOUT_PAIRS as HELDOUT, PAIRS, ROOT,  # noqa: F401 (the
                                                     SFACE_CHECKPOINT as SFACE, TEST_ROOT as ORL,  # scripts' names)
                                                     TRAIN_PAIRS, TRAIN_ROOT as TRAIN)

sys.path.insert(0, str(ROOT))  # benchmarks/any_model.py builds the test suite's models (tests/)
report_to_console()  # the library's reports, as the CLIs show them, for the scripts that call it in-process


REUSE = False  # set by reuse_memory(), reported by machine()


def reuse_memory():
    """What the CLIs do by default (--allocator reuse), for the benchmarks that run models in-process."""
    global REUSE
    from compression_tool.commen_utils.allocator import reuse_freed_memory
    REUSE = reuse_freed_memory()


def cpu():
    """The CPU's model name and the instruction sets INT8 speed depends on, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model} ({'+'.join(isa) or 'no AVX2'})"


def machine():
    allocator = "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else \
        "glibc malloc, freed memory reused" if REUSE else "glibc malloc"
    return f"{cpu()}, {os.cpu_count()} cores, {allocator}, torch {__import__('torch').__version__}"


def timed_cli(args, threads, nproc=1, script="main.py"):
    """Wall time of one CLI run (process start included), with `threads` torch threads per process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, str(ROOT / script)] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
         str(ROOT / script)]
    threads_flag = ["--threads", str(threads)] if script == "main.py" else []
    start = time.perf_counter()
    proc = subprocess.run(command + [str(a) for a in args] + threads_flag, cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return time.perf_counter() - start

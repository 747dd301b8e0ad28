"""`--allocator reuse` (the default): freed activation buffers stay in the process for the next batch."""
import platform
import subprocess
import sys

import pytest

from tests.cli import ROOT

PROBE = """
import sys, torch
from compression_tool.commen_utils.allocator import reuse_freed_memory
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
before = rss_mb()
buffer = torch.ones(64, 1024, 1024)  # 256 MiB, written
del buffer
print(rss_mb() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's; elsewhere it does nothing")
def test_reuse_keeps_a_freed_buffer_and_system_returns_it():
    kept = {mode: int(subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout) for mode in ("reuse", "system")}
    assert kept["reuse"] >= 200 and kept["system"] < 50, kept

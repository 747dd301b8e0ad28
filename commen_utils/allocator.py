"""Keep freed memory for reuse instead of handing it back to the kernel.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and unmaps it on
free, so each large activation buffer of an eager forward pass is page-faulted in again on every call
(BENCHMARKS.md measures what that costs). Serving everything from the
heap and never trimming it makes freed buffers reusable at once. Same effect as running under jemalloc with
purging disabled, without LD_PRELOAD; the numbers computed are unchanged. The cost: the process keeps its
peak memory until it exits.
"""
import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Tune glibc malloc for this process; False where the C library is not glibc (nothing changes)."""
    if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    # mallopt returns 1 on success. No mmap for large blocks, and no trimming of the heap's top.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))

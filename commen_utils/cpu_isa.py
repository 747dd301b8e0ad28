"""What the CPU's integer kernels can use, read from /proc/cpuinfo and capped the way oneDNN is capped.

Without VNNI (or AMX), u8 x s8 products are summed pairwise in saturating int16, so the same INT8 model
computes other numbers on an AVX2-only CPU than on a VNNI one. `ONEDNN_MAX_CPU_ISA` (with `OV_CPU_MAX_ISA`
for OpenVINO) makes a VNNI machine take the AVX2 path, so this reads the cap too: what matters is what the
kernels will use, not what the silicon has.
"""
import os
from dataclasses import dataclass
from pathlib import Path

_NO_VNNI_CAPS = ("SSE41", "AVX", "AVX2", "AVX512_CORE")  # oneDNN's names of the levels below VNNI


@dataclass(frozen=True)
class CpuIsa:
    model: str
    avx2: bool
    avx512: bool
    vnni: bool  # AVX512-VNNI or AVX-VNNI: int8 products summed in int32, no saturation
    amx: bool
    cap: str = ""  # ONEDNN_MAX_CPU_ISA, when set

    @property
    def saturates_int8(self) -> bool:
        return not (self.vnni or self.amx)

    def describe(self) -> str:
        flags = [name for name, present in (("AVX2", self.avx2), ("AVX-512", self.avx512), ("VNNI", self.vnni),
                                           ("AMX", self.amx)) if present]
        capped = f", capped by ONEDNN_MAX_CPU_ISA={self.cap}" if self.cap else ""
        return f"{self.model}: {', '.join(flags) or 'no AVX2'}{capped}"


def read_cpu_isa(cpuinfo: str | None = None, cap: str | None = None) -> CpuIsa:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA", "") if cap is None else cap).upper()
    flags = set()
    model = "unknown CPU"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
    avx512 = "avx512f" in flags and not cap.startswith(("SSE", "AVX2", "AVX_")) and cap != "AVX"
    vnni = bool(flags & {"avx512_vnni", "avx_vnni"}) and cap not in _NO_VNNI_CAPS
    amx = "amx_int8" in flags and (not cap or "AMX" in cap or cap == "ALL")
    return CpuIsa(model, "avx2" in flags, avx512, vnni, amx, cap)

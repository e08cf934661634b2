"""``device.precision``: ``auto`` | ``bf16`` | ``fp32`` (or a Lightning Fabric precision).

``auto`` is bfloat16 autocast (Fabric's ``bf16-mixed``) where the hardware computes in
bfloat16 natively, float32 (``32-true``) elsewhere: a CUDA device that supports bfloat16,
or a CPU with AVX512-BF16 or AMX-BF16 (read from ``/proc/cpuinfo``'s flags; another OS
counts as no). ``bf16`` and ``fp32`` name the two without asking. The run's configuration
stores the resolved Fabric value, so a resume (or a copy of ``config.yaml``) trains in the
same precision on another host; a resume asked for ``auto`` keeps the stored one. The
run's first line prints the choice and why (docs/benchmarks.md, section 11).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

ALIASES = {"bf16": "bf16-mixed", "fp32": "32-true"}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def device_type(accelerator: str) -> str:
    """The device type an accelerator setting trains on (``auto``: CUDA when present)."""
    if accelerator in ("cuda", "gpu"):
        return "cuda"
    if accelerator == "auto" and torch.cuda.is_available():
        return "cuda"
    return "mps" if accelerator == "mps" else "cpu"


def native_bf16(device: str) -> tuple[bool, str]:
    """Whether ``device`` (a device type) computes bfloat16 natively, and the reason."""
    if device == "cuda":
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return supported, f"CUDA {'with' if supported else 'without'} bfloat16"
    if device == "cpu":
        found = [flag for flag in CPU_BF16_FLAGS if flag in cpu_flags()]
        if found:
            return True, f"CPU with {'/'.join(found)}"
        return False, "CPU without avx512_bf16/amx_bf16"
    return False, f"{device}: float32"


def resolve_precision(choice: str, accelerator: str) -> tuple[str, str]:
    """``(fabric precision, why)`` for ``device.precision = choice``."""
    if choice in ALIASES:
        return ALIASES[choice], f"device.precision={choice}"
    if choice != "auto":
        return choice, f"device.precision={choice}"
    native, why = native_bf16(device_type(accelerator))
    return ("bf16-mixed" if native else "32-true"), f"auto: {why}"

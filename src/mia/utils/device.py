"""Device and precision choices, checked before any work starts.

``train.precision: auto`` picks bf16 only where it is native: on a CPU with the
``avx512_bf16`` or ``amx_bf16`` instructions (read from /proc/cpuinfo; elsewhere bf16 is
emulated and a convolution runs tens of times slower than in fp32), on a CUDA GPU that
supports it; fp32 otherwise. fp16 is never chosen automatically (it needs loss scaling).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from mia.utils.choices import AUTOCAST, PRECISIONS
from mia.utils.errors import ConfigError

log = logging.getLogger(__name__)

# explicit precision -> autocast dtype (None: fp32, no autocast); the names are
# mia.utils.choices' (PRECISIONS, re-exported here, adds auto)
AUTOCAST_DTYPES = {name: None if dtype is None else getattr(torch, dtype)
                   for name, dtype in AUTOCAST.items()}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 CPU flags of native bf16 arithmetic


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available "
                          "(use --device cpu or --device auto)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r} (valid: auto, cpu, cuda)")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an explicit precision (fp32/bf16/fp16) on ``device``."""
    if precision not in AUTOCAST_DTYPES:
        raise ConfigError(f"train.precision: unknown precision {precision!r} "
                          f"(valid: {', '.join(PRECISIONS)})")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA GPU (loss scaling); on CPU use auto, "
                          "bf16 or fp32")
    return AUTOCAST_DTYPES[precision]


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags (the first ``flags`` line of /proc/cpuinfo); None where
    they cannot be read (not Linux, or no such line)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def cpu_bf16_native(flags: Iterable[str] | None = None) -> tuple[bool, str]:
    """Whether the CPU computes bf16 natively, and why: ``flags`` is the CPU's flag set
    (read from /proc/cpuinfo when None). Deliberately not torch's own check
    (``torch.backends.mkldnn.is_bf16_supported``), which also says yes on AVX-512 CPUs
    without bf16 instructions, where bf16 is emulated."""
    if flags is None:
        flags = cpu_flags()
        if flags is None:
            return False, "CPU flags unreadable (no /proc/cpuinfo): bf16 not known to be native"
    found = [f for f in NATIVE_BF16_FLAGS if f in set(flags)]
    if found:
        return True, f"CPU with native bf16 ({', '.join(found)})"
    return False, f"CPU without native bf16: no {'/'.join(NATIVE_BF16_FLAGS)} flag"


def cuda_bf16_supported() -> bool:
    """bf16 in the GPU's hardware (Ampere or newer); recent torch also says yes for
    emulated bf16 unless asked not to."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch without the argument
        return bool(torch.cuda.is_bf16_supported())


def bf16_native(device: torch.device, flags: Iterable[str] | None = None) -> tuple[bool, str]:
    """Whether bf16 is native on ``device`` (CPU: ``flags`` as in cpu_bf16_native)."""
    if device.type == "cuda":
        if cuda_bf16_supported():
            return True, "CUDA GPU with bf16 support"
        return False, "CUDA GPU without bf16 support"
    if device.type == "cpu":
        return cpu_bf16_native(flags)
    return False, f"device {device.type!r}: bf16 not known to be native"


def resolve_precision(precision: str, device: torch.device,
                      flags: Iterable[str] | None = None) -> tuple[str, str]:
    """``(resolved, reason)``: ``auto`` -> bf16 where bf16 is native on ``device``, else
    fp32; an explicit fp32/bf16/fp16 stays as it is (checked by check_precision). An
    explicit bf16 on a CPU without native bf16 is kept but warned about (emulated, very
    slow). ``flags``: the CPU's flags, read from /proc/cpuinfo when None."""
    if precision == "auto":
        native, why = bf16_native(device, flags)
        return ("bf16" if native else "fp32"), why
    check_precision(precision, device)
    if precision == "bf16" and device.type == "cpu":
        native, why = cpu_bf16_native(flags)
        if not native:
            log.warning("precision bf16: %s; bf16 is then emulated and very slow (tens of "
                        "times slower than fp32 for convolutions); use --precision auto or "
                        "fp32", why)
            return precision, f"set explicitly; emulated and very slow here ({why})"
    return precision, "set explicitly"

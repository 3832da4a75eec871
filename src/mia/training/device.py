"""Device and precision choices, checked before any work starts."""

from __future__ import annotations

import torch

from mia.utils.errors import ConfigError

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    if precision not in AUTOCAST_DTYPES:
        raise ConfigError(f"unknown precision {precision!r} (valid: fp32, bf16, fp16)")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA GPU (loss scaling); on CPU use bf16 "
                          "or fp32")
    return AUTOCAST_DTYPES[precision]

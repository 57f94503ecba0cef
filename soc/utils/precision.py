"""The precisions of ``MODEL.SOC.TEST.PRECISION`` / ``SOLVER.AMP.DTYPE``, and whether reduced precision is
native on a device, to warn when ``bf16`` would be slower than ``fp32``."""

import logging

import torch
from detectron2.utils.logger import log_first_n

__all__ = ["PRECISIONS", "has_native_bf16", "warn_if_bf16_is_emulated"]

# precision name → the autocast dtype (None: float32, no autocast)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def has_native_bf16(device_type: str) -> bool:
    """True on CUDA, and on CPUs with AVX512-BF16 or AMX; elsewhere (e.g. AVX2 only) oneDNN emulates bf16
    matrix products, several times slower than float32."""
    if device_type != "cpu":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def warn_if_bf16_is_emulated(device_type: str, what: str) -> None:
    """Log once that ``what`` (a config key) asks for bfloat16 on a CPU without native bfloat16."""
    if not has_native_bf16(device_type):
        log_first_n(
            logging.WARNING,
            f"{what} = 'bf16' on a CPU without AVX512-BF16 or AMX (capability "
            f"{torch.backends.cpu.get_cpu_capability()}): bfloat16 is emulated here and slower than float32; "
            "the results are still correct",
            n=1,
            name="soc",
            key="message",
        )

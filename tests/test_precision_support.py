"""The bf16 warning: bfloat16 on a CPU that emulates it is said once, and never on native hardware."""

import logging

import pytest
import torch

from soc.utils import precision


@pytest.mark.parametrize(
    "avx512_bf16, amx, native", [(False, False, False), (True, False, True), (False, True, True)]
)
def test_native_bf16_follows_the_cpu_flags(monkeypatch, avx512_bf16, amx, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert precision.has_native_bf16("cpu") is native
    assert precision.has_native_bf16("cuda")


def test_emulated_bf16_is_warned_once_naming_the_key(monkeypatch, caplog):
    monkeypatch.setattr(precision, "has_native_bf16", lambda device_type: device_type != "cpu")
    logger = logging.getLogger("soc")  # its own handler: detectron2's setup_logger may stop its propagation
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="soc"):
            precision.warn_if_bf16_is_emulated("cpu", "SOLVER.AMP.DTYPE (test)")
            precision.warn_if_bf16_is_emulated("cpu", "SOLVER.AMP.DTYPE (test)")
            precision.warn_if_bf16_is_emulated("cuda", "MODEL.SOC.TEST.PRECISION (test)")
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate
    messages = [r.getMessage() for r in caplog.records if r.name == "soc"]
    assert len(messages) == 1 and "SOLVER.AMP.DTYPE (test) = 'bf16'" in messages[0]
    assert "slower than float32" in messages[0]

"""Trainer.build_step_trainer: bfloat16 autocast training (SOLVER.AMP) on the CPU, against float32."""

import copy
import itertools
from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.engine import SimpleTrainer
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

import soc.modeling  # noqa: F401  (registers everything)
from soc.config import add_soc_config
from soc.engine.trainer import AutocastForward, Trainer

from helpers import perturb_parameters

CONFIG = Path(__file__).parent / "configs" / "soc_tiny.yaml"


def tiny_cfg(*opts):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(str(CONFIG))
    cfg.merge_from_list(["MODEL.SOC.DECODER.DROPOUT", 0.0, "MODEL.SOC.VOC.DROPOUT", 0.0, *opts])
    return cfg


def batch(T=2, H=64, W=96):
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(T, H, W, dtype=torch.bool)
    masks[:, 16:40, 30:60] = True
    boxes = torch.tensor([[45 / W, 28 / H, 30 / W, 24 / H]]).repeat(T, 1)
    frames = torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8, generator=g)
    target = {"masks": masks, "boxes": boxes, "is_visible": torch.ones(T, dtype=torch.bool)}
    return [{"frames": frames, "expression": "the red box", "targets": target}]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return perturb_parameters(build_model(tiny_cfg())).train()


def test_bf16_losses_are_finite_and_close_to_float32(model):
    data = batch()
    torch.manual_seed(1)
    ref = model(data)
    torch.manual_seed(1)
    bf16 = AutocastForward(model, "cpu", torch.bfloat16)(data)
    assert set(bf16) == set(ref)
    for k, v in bf16.items():
        assert torch.isfinite(v), k
        assert abs(v.item() - ref[k].item()) <= 0.05 * max(1.0, abs(ref[k].item())), k
    total = sum(bf16.values())
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)


def test_amp_step_trainer_runs_one_bf16_step(model):
    cfg = tiny_cfg("SOLVER.AMP.ENABLED", True, "SOLVER.AMP.DTYPE", "bf16")
    net = copy.deepcopy(model)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    step = Trainer.build_step_trainer(cfg, net, itertools.repeat(batch()), optimizer)
    assert isinstance(step, SimpleTrainer) and isinstance(step.model, AutocastForward)
    step.iter = 0
    with EventStorage(0):
        step.run_step()
    changed = [not torch.equal(a, p) for a, p in zip(before, net.parameters())]
    assert any(changed) and all(torch.isfinite(p).all() for p in net.parameters())
    # eval mode: the wrapper calls the model as is (inference precision is MODEL.SOC.TEST.PRECISION)
    step.model.eval()
    out = step.model([{"frames": batch()[0]["frames"], "expression": "a box"}])[0]
    assert out["mask_probs"].dtype == torch.float32


def test_fp16_amp_on_the_cpu_names_the_key(model):
    cfg = tiny_cfg("SOLVER.AMP.ENABLED", True, "SOLVER.AMP.DTYPE", "fp16")
    with pytest.raises(ValueError, match="SOLVER.AMP.DTYPE"):
        Trainer.build_step_trainer(cfg, model, [], torch.optim.SGD(model.parameters(), lr=0.1))

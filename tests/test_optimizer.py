"""SOC's optimizer: learning-rate groups by module, no decay on norms/embeddings, whole-model clipping."""

import pytest
import torch
from detectron2.config import get_cfg
from torch import nn

from soc.config import add_soc_config
from soc.engine.optimizer import build_soc_optimizer, soc_lr_factor


@pytest.mark.parametrize(
    "name, expected",
    [
        ("backbone.swin.features.0.0.proj.weight", 0.1),
        ("text_encoder.encoder.layer.0.attention.self.query.weight", 0.05),
        ("text_encoder.txt_proj.fc.weight", 1.0),
        ("txt_proj.fc.weight", 1.0),
        ("decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.weight", 3.0),
        ("decoder.transformer.reference_points.weight", 3.0),
        ("decoder.transformer.encoder.layers.0.self_attn.value_proj.weight", 1.0),
        ("class_embed.0.weight", 1.0),
    ],
)
def test_soc_lr_factor(name, expected):
    assert soc_lr_factor(name, backbone=0.1, text_encoder=0.05, linear_proj=3.0) == expected


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.norm = nn.LayerNorm(2)
        self.query_embed = nn.Embedding(3, 2)
        self.head = nn.Linear(2, 1)

    def forward(self, x):
        return self.head(self.norm(self.backbone(x)) + self.query_embed.weight.sum(0))


def _cfg():
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WEIGHT_DECAY = 1e-2
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.1
    return cfg


def test_groups():
    model = _Toy()
    opt = build_soc_optimizer(_cfg(), model)
    assert isinstance(opt, torch.optim.AdamW)
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(model.backbone.weight)]["lr"] == pytest.approx(1e-4)
    assert by_param[id(model.backbone.weight)]["weight_decay"] == pytest.approx(1e-2)
    assert by_param[id(model.head.weight)]["lr"] == pytest.approx(1e-3)
    assert by_param[id(model.norm.weight)]["weight_decay"] == 0.0
    assert by_param[id(model.query_embed.weight)]["weight_decay"] == 0.0
    assert by_param[id(model.query_embed.weight)]["lr"] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_adamw_is_fused_and_steps_like_the_plain_loop():
    """The optimizer uses AdamW's fused kernel; its steps (clipping, groups, weight decay) equal the plain
    per-tensor AdamW's on the same gradients."""
    torch.manual_seed(0)
    fused_model = _Toy()
    plain_model = _Toy()
    plain_model.load_state_dict(fused_model.state_dict())
    fused = build_soc_optimizer(_cfg(), fused_model)
    assert fused.defaults["fused"]
    plain = build_soc_optimizer(_cfg(), plain_model)
    for group in plain.param_groups:
        group["fused"] = False
    for _ in range(3):
        for m, opt in ((fused_model, fused), (plain_model, plain)):
            torch.manual_seed(1)
            opt.zero_grad()
            m(torch.randn(4, 2)).pow(2).sum().backward()
            opt.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    assert not torch.equal(fused_model.head.weight, _Toy().head.weight)


def test_full_model_clipping_scales_global_norm():
    model = _Toy().double()
    cfg = _cfg()
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.BACKBONE_MULTIPLIER = 1.0
    opt = build_soc_optimizer(cfg, model)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    total = (10.0**2 * sum(p.numel() for p in model.parameters())) ** 0.5
    opt.step()
    for n, p in model.named_parameters():
        # SGD step = lr * clipped grad, and the clipped grad is 10 * (0.1 / total) for every element
        step = (before[n] - p.detach()).flatten()
        torch.testing.assert_close(
            step, torch.full_like(step, 1e-3 * 10.0 * 0.1 / total), rtol=1e-6, atol=0
        )  # clip_grad_norm_ adds 1e-6 to the norm


def test_unknown_optimizer():
    cfg = _cfg()
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_soc_optimizer(cfg, _Toy())

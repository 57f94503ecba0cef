"""Heads and post-processing: MLP, FPN pixel decoder, dynamic mask head, query selection, mask resizing."""

import pytest
import torch
import torch.nn.functional as F

from soc.modeling.heads import MLP, DynamicMaskHead, FPNSpatialDecoder
from soc.modeling.postprocessing import boxes_to_original, resize_mask_logits, select_query


def test_mlp():
    mlp = MLP(6, 5, 3, 3)
    assert [(l.in_features, l.out_features) for l in mlp.layers] == [(6, 5), (5, 5), (5, 3)]
    x = torch.randn(2, 4, 6)
    expected = mlp.layers[2](F.relu(mlp.layers[1](F.relu(mlp.layers[0](x)))))
    torch.testing.assert_close(mlp(x), expected)


@pytest.mark.parametrize("hw", [(16, 24), (15, 25)])
def test_pixel_decoder_shapes(hw):
    h, w = hw
    dec = FPNSpatialDecoder(128, [128, 128, 24], 8)
    sizes = [(-(-h // 8), -(-w // 8)), (-(-h // 4), -(-w // 4)), (-(-h // 2), -(-w // 2)), (h, w)]
    x = torch.randn(2, 128, *sizes[0])
    feats = [torch.randn(2, 128, *sizes[1]), torch.randn(2, 128, *sizes[2]), torch.randn(2, 24, *sizes[3])]
    assert dec(x, feats).shape == (2, 8, h, w)
    assert [g.num_channels for g in (dec.gn1, dec.gn2, dec.gn3, dec.gn4, dec.gn5)] == [128, 64, 32, 16, 8]
    short = FPNSpatialDecoder(128, [128, 128], 8)
    assert not hasattr(short, "adapter3")
    assert short(x, feats[:2]).shape == (2, 8, *sizes[2])


def _grouped_conv_reference(head, queries, references, feats, sizes):
    """The authors' formulation: concat coordinates, parse parameters, one grouped 1×1 conv per layer."""
    B, T, Q, _ = queries.shape
    D, h, w = feats.shape[2:]
    params = head.controller(queries).reshape(B * T * Q, -1)
    ys, xs = torch.meshgrid(torch.arange(h) * 4.0 + 2, torch.arange(w) * 4.0 + 2, indexing="ij")
    loc = torch.stack([xs, ys], -1)  # (h, w, 2) as (x, y)
    ref_px = references * torch.stack([sizes[:, 1], sizes[:, 0]], -1).float().view(B, 1, 1, 2)
    rel = (ref_px.view(B, T, Q, 1, 1, 2) - loc).permute(0, 1, 2, 5, 3, 4)
    x = torch.cat([feats[:, :, None].expand(B, T, Q, D, h, w), rel], 3).reshape(1, -1, h, w)
    ws, bs = params.split([sum(head.weight_nums), sum(head.bias_nums)], 1)
    ws, bs = ws.split(head.weight_nums, 1), bs.split(head.bias_nums, 1)
    n = len(head.weight_nums)
    for i, ((_, c), wi, bi) in enumerate(zip(head.layer_shapes, ws, bs)):
        x = F.conv2d(x, wi.reshape(-1, c, 1, 1), bi.reshape(-1), groups=B * T * Q)
        if i < n - 1:
            x = F.relu(x)
    return x.view(B, T, Q, h, w)


def test_dynamic_mask_head_matches_grouped_convolutions():
    torch.manual_seed(0)
    head = DynamicMaskHead(hidden_dim=32, mask_dim=8, controller_layers=3, dynamic_channels=8)
    assert sum(head.weight_nums) + sum(head.bias_nums) == 169  # (8+2)·8+8 + 8·8+8 + 8+1
    with torch.no_grad():
        for p in head.controller.parameters():
            p.add_(0.05 * torch.randn_like(p))
    B, T, Q, h, w = 2, 3, 4, 5, 6
    queries, refs = torch.randn(B, T, Q, 32), torch.rand(B, T, Q, 2)
    feats, sizes = torch.randn(B, T, 8, h, w), torch.tensor([[20, 24], [18, 22]])
    out = head(queries, refs, feats, sizes)
    assert out.shape == (B, T, Q, h, w)
    torch.testing.assert_close(
        out, _grouped_conv_reference(head, queries, refs, feats, sizes), rtol=1e-4, atol=1e-4
    )


def test_relative_coordinates_are_in_pixels():
    """One dynamic layer reading only the x (then y) coordinate channel returns it: ref·W − (4j + 2)."""
    head = DynamicMaskHead(hidden_dim=4, mask_dim=2, controller_layers=1, dynamic_channels=8)
    assert head.layer_shapes == [(1, 4)]
    refs = torch.tensor([[[[0.25, 0.5]]]])  # (cx, cy) normalised
    sizes = torch.tensor([[40, 60]])  # (h, w) of the unpadded input
    feats = torch.randn(1, 1, 2, 3, 4)
    for channel, expected in (
        (2, 0.25 * 60 - (torch.arange(4.0) * 4 + 2).expand(3, 4)),
        (3, 0.5 * 40 - (torch.arange(3.0) * 4 + 2)[:, None].expand(3, 4)),
    ):
        with torch.no_grad():
            for layer in head.controller.layers:
                layer.weight.zero_()
                layer.bias.zero_()
            head.controller.layers[-1].bias[channel] = 1.0  # weight on that input channel, bias 0
        out = head(torch.randn(1, 1, 1, 4), refs, feats, sizes)
        torch.testing.assert_close(out[0, 0, 0], expected)


def test_select_query():
    # 2 frames, 3 queries, 2 classes; query 1 has the best mean over frames of its best class.
    logits = torch.logit(
        torch.tensor([[[0.1, 0.2], [0.9, 0.1], [0.95, 0.0]], [[0.1, 0.3], [0.7, 0.8], [0.1, 0.0]]])
    )
    scores, idx, mean_scores = select_query(logits)
    assert idx == 1
    # per query, the best class's mean over frames: max(0.1, 0.25), max(0.8, 0.45), max(0.525, 0.0)
    torch.testing.assert_close(mean_scores, torch.tensor([0.25, 0.8, 0.525]))
    torch.testing.assert_close(scores, torch.tensor([[0.2, 0.9, 0.95], [0.3, 0.8, 0.1]]))


def test_resize_without_padding_is_the_authors_straight_resize():
    logits = torch.randn(2, 6, 8)
    out = resize_mask_logits(logits, (24, 32), (50, 70))
    torch.testing.assert_close(out, F.interpolate(logits[:, None], size=(50, 70), mode="bilinear")[:, 0])


def test_resize_crops_the_padding():
    logits = torch.randn(1, 6, 8)  # padded input 24×32, image 16×20
    out = resize_mask_logits(logits, (16, 20), (40, 50))
    torch.testing.assert_close(
        out, F.interpolate(logits[:, None, :4, :5], size=(40, 50), mode="bilinear")[:, 0]
    )


@pytest.mark.parametrize("input_size,output_size", [((18, 22), (45, 33)), ((23, 31), (23, 31))])
def test_resize_reproduces_linear_ramps_for_any_size(input_size, output_size):
    """Logits linear in the input coordinate (cell j centred at 4j + 2) come back linear at every original
    pixel centre: bilinear resampling is exact for linear functions, so this checks the coordinate mapping."""
    h, w = input_size
    H0, W0 = output_size
    hm, wm = 8, 10  # padded logit map
    x_centres = torch.arange(wm) * 4.0 + 2
    y_centres = torch.arange(hm) * 4.0 + 2
    logits = (0.3 * x_centres[None, :] - 0.2 * y_centres[:, None])[None]
    out = resize_mask_logits(logits, (h, w), (H0, W0))
    x_in = (torch.arange(W0) + 0.5) * w / W0  # original pixel centre in input pixels
    y_in = (torch.arange(H0) + 0.5) * h / H0
    expected = 0.3 * x_in[None, :] - 0.2 * y_in[:, None]
    # away from the outermost half cell, where bilinear clamps to the border value
    inner_y = (y_in >= 2) & (y_in <= 4 * (-(-h // 4)) - 2)
    inner_x = (x_in >= 2) & (x_in <= 4 * (-(-w // 4)) - 2)
    torch.testing.assert_close(
        out[0][inner_y][:, inner_x], expected[inner_y][:, inner_x], rtol=1e-5, atol=1e-4
    )


def test_boxes_to_original():
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.5, 0.5]])
    out = boxes_to_original(boxes, (100, 200))
    torch.testing.assert_close(out, torch.tensor([[80.0, 30.0, 120.0, 70.0], [0.0, 50.0, 100.0, 100.0]]))

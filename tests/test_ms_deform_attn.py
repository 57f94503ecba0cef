"""Multi-scale deformable attention: hand-computed values, kernels vs reference, gradcheck, dispatch."""

import importlib
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from soc.layers import MSDeformAttn, ms_deform_attn, ms_deform_attn_backend, ms_deform_attn_reference

# The package re-exports the function `ms_deform_attn`, which hides the submodule of the same name.
mda = importlib.import_module("soc.layers.ms_deform_attn")

HAS_EXT = mda._extension()[0] is not None
needs_ext = pytest.mark.skipif(not HAS_EXT, reason="soc._C is not built (run `pip install -e .`)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _level_index(shapes):
    shapes = torch.as_tensor(shapes, dtype=torch.long).view(-1, 2)
    areas = shapes.prod(1)
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    return shapes, starts, int(areas.sum())


def _inputs(N, Lq, M, D, shapes, P, dtype=torch.float32, seed=0, device="cpu"):
    """Random op inputs; about a fifth of the locations fall outside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    spatial_shapes, starts, S = _level_index(shapes)
    L = spatial_shapes.shape[0]
    value = torch.randn(N, S, M, D, generator=g, dtype=dtype)
    loc = torch.rand(N, Lq, M, L, P, 2, generator=g, dtype=dtype) * 1.5 - 0.25
    weights = torch.rand(N, Lq, M, L, P, generator=g, dtype=dtype)
    to = dict(device=device)
    return value.to(**to), spatial_shapes.to(**to), starts.to(**to), loc.to(**to), weights.to(**to)


def _forward_backward(value, shapes, starts, loc, weights, backend, grad_seed=1):
    leaves = [t.detach().clone().requires_grad_() for t in (value, loc, weights)]
    out = ms_deform_attn(leaves[0], shapes, starts, leaves[1], leaves[2], im2col_step=4, backend=backend)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=out.dtype)
    grads = (
        torch.autograd.grad(out, leaves, g.to(out.device))
        if out.numel()
        else [torch.zeros_like(t) for t in leaves]
    )
    return [out.detach(), *grads]


def _rel_err(a, b):
    """max |a - b| normalised by the reference's largest magnitude (0 for empty tensors)."""
    if b.numel() == 0:
        return 0.0
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12)).item()


# (N, Lq, M, D, level shapes, P): one level; four non-square levels with a 1×1 one, odd D and N·Lq = 33 not a
# multiple of im2col_step; single head and channel; D = 32 (the CPU kernel's specialised head size); empty
# queries; empty batch.
CASES = [
    (2, 5, 2, 4, [(6, 7)], 3),
    (3, 11, 4, 5, [(9, 13), (5, 7), (3, 4), (1, 1)], 4),
    (1, 7, 1, 1, [(4, 3), (2, 5)], 2),
    (2, 6, 3, 32, [(5, 6), (3, 3)], 2),
    (2, 0, 2, 3, [(4, 4), (2, 2)], 2),
    (0, 3, 2, 3, [(3, 2)], 1),
]


@pytest.mark.parametrize("backend", ["reference", pytest.param("kernel", marks=needs_ext)])
def test_hand_computed_values(backend):
    # One level of 2×3 pixels, one head, two channels: channel 0 holds 1..6 row-major, channel 1 ten times it.
    H, W = 2, 3
    value = torch.arange(1.0, 7.0).view(1, H * W, 1, 1) * torch.tensor([1.0, 10.0])
    shapes, starts, _ = _level_index([(H, W)])
    cx = lambda j: (j + 0.5) / W  # noqa: E731  pixel-centre coordinates
    cy = lambda i: (i + 0.5) / H  # noqa: E731
    points = [
        ((cx(1), cy(0)), 2.0),  # centre of pixel (0, 1)
        ((cx(2), cy(1)), 6.0),  # centre of pixel (1, 2)
        ((0.5 * (cx(0) + cx(1)), cy(1)), 4.5),  # halfway between (1, 0) = 4 and (1, 1) = 5
        ((0.5, 0.5), 3.5),  # centre column, between its rows: mean of 2 and 5
        (
            (cx(0) + 0.25 / W, cy(0) + 0.5 / H),
            2.75,
        ),  # 1/4 to the right: 0.5·(0.75·1 + 0.25·2) + 0.5·(0.75·4 + 0.25·5)
        ((0.0, cy(0)), 0.5),  # left edge of pixel (0, 0): half of it, half zero padding
        ((-0.2, 0.5), 0.0),  # left of the map
        ((0.5, 1.3), 0.0),  # below the map
    ]
    loc = torch.tensor([p for p, _ in points]).view(1, len(points), 1, 1, 1, 2)
    weights = torch.ones(1, len(points), 1, 1, 1)
    out = ms_deform_attn(value, shapes, starts, loc, weights, backend=backend)
    expected = torch.tensor([e for _, e in points])
    torch.testing.assert_close(out[0, :, 0], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0, :, 1], 10 * expected, rtol=0, atol=1e-5)

    # Two points and two levels, weighted: 0.25 · pixel 2 of level 0 + 0.5 · 1×1 level 1 (=7) + 2 · outside.
    value2 = torch.cat([torch.arange(1.0, 7.0), torch.tensor([7.0])]).view(1, 7, 1, 1)
    shapes2, starts2, _ = _level_index([(H, W), (1, 1)])
    loc2 = torch.tensor([[[cx(1), cy(0)], [-1.0, -1.0]], [[0.5, 0.5], [0.5, 0.5]]]).view(1, 1, 1, 2, 2, 2)
    weights2 = torch.tensor([[0.25, 2.0], [0.5, 0.0]]).view(1, 1, 1, 2, 2)
    out2 = ms_deform_attn(value2, shapes2, starts2, loc2, weights2, backend=backend)
    torch.testing.assert_close(out2.view(()), torch.tensor(0.25 * 2 + 0.5 * 7), rtol=0, atol=1e-6)


@needs_ext
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_cpu_kernel_matches_reference_float32(case):
    inputs = _inputs(*case)
    kernel = _forward_backward(*inputs, backend="kernel")
    reference = _forward_backward(*inputs, backend="reference")
    for name, a, b in zip(["output", "grad_value", "grad_locations", "grad_weights"], kernel, reference):
        assert a.shape == b.shape and a.dtype == b.dtype == torch.float32, name
        assert _rel_err(a, b) < 1e-5, f"{name}: relative error {_rel_err(a, b):.2e}"


@needs_ext
@pytest.mark.parametrize("case", CASES[:4], ids=[f"case{i}" for i in range(4)])
def test_cpu_kernel_matches_reference_float64(case):
    inputs = _inputs(*case, dtype=torch.float64, seed=3)
    kernel = _forward_backward(*inputs, backend="kernel")
    reference = _forward_backward(*inputs, backend="reference")
    for name, a, b in zip(["output", "grad_value", "grad_locations", "grad_weights"], kernel, reference):
        assert _rel_err(a, b) < 1e-12, f"{name}: relative error {_rel_err(a, b):.2e}"


@pytest.mark.parametrize("backend", ["reference", pytest.param("kernel", marks=needs_ext)])
def test_gradcheck_float64(backend):
    # Mask2Former ops/test.py-sized problem, with points outside the map and a 1×1 level.
    value, shapes, starts, loc, weights = _inputs(
        1, 3, 2, 3, [(3, 4), (2, 2), (1, 1)], 2, torch.float64, seed=5
    )
    leaves = [t.requires_grad_() for t in (value, loc, weights)]

    def fn(v, lc, w):
        return ms_deform_attn(v, shapes, starts, lc, w, backend=backend)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


@needs_ext
def test_cpu_kernel_independent_of_thread_count():
    inputs = _inputs(2, 40, 4, 8, [(7, 9), (4, 5)], 3, seed=7)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _forward_backward(*inputs, backend="kernel")
        torch.set_num_threads(2)
        two = _forward_backward(*inputs, backend="kernel")
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@needs_ext
def test_cpu_kernel_baseline_isa_matches_reference():
    # The dev machine runs the AVX2 loops; check the baseline (SSE2) build of the loops in a subprocess.
    script = textwrap.dedent("""
        import torch
        from soc import _C
        from soc.layers import ms_deform_attn
        assert _C.cpu_isa() == "default", _C.cpu_isa()
        g = torch.Generator().manual_seed(0)
        shapes = torch.tensor([[5, 7], [2, 3]]); starts = torch.tensor([0, 35])
        for D in (5, 32):  # generic and specialised head sizes
            v = torch.randn(2, 41, 3, D, generator=g, requires_grad=True)
            loc = (torch.rand(2, 6, 3, 2, 2, 2, generator=g) * 1.5 - 0.25).requires_grad_()
            w = torch.rand(2, 6, 3, 2, 2, generator=g, requires_grad=True)
            res = []
            for backend in ("kernel", "reference"):
                out = ms_deform_attn(v, shapes, starts, loc, w, backend=backend)
                res.append([out, *torch.autograd.grad(out, (v, loc, w), torch.ones_like(out))])
            for a, b in zip(*res):
                assert ((a - b).abs().max() / b.abs().max()).item() < 1e-5
        print("ok")
        """)
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1")
    env.pop(mda.ENV_VAR, None)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@needs_ext
def test_cpu_half_inputs_computed_in_float32():
    value, shapes, starts, loc, weights = _inputs(2, 5, 2, 4, [(4, 6)], 2)
    half = [t.bfloat16() for t in (value, loc, weights)]
    out = ms_deform_attn(half[0], shapes, starts, half[1], half[2], backend="kernel")
    assert out.dtype == torch.bfloat16
    expected = ms_deform_attn_reference(*(t.float() for t in (half[0], shapes, starts, half[1], half[2])))
    torch.testing.assert_close(out.float(), expected, rtol=1e-2, atol=1e-2)


def test_autocast_runs_in_float32():
    value, shapes, starts, loc, weights = _inputs(1, 4, 2, 4, [(3, 5)], 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ms_deform_attn(value.bfloat16(), shapes, starts, loc.bfloat16(), weights)
    assert out.dtype == torch.float32
    expected = ms_deform_attn_reference(
        value.bfloat16().float(), shapes, starts, loc.bfloat16().float(), weights
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise():
    value, shapes, starts, loc, weights = _inputs(1, 2, 2, 3, [(2, 2)], 1)
    with pytest.raises(ValueError, match="sampling_locations"):
        ms_deform_attn(value, shapes, starts, loc[..., :1], weights)
    with pytest.raises(ValueError, match="attention_weights"):
        ms_deform_attn(value, shapes, starts, loc, weights[..., None])
    with pytest.raises(ValueError, match="spatial_shapes sum"):
        ms_deform_attn(value[:, :3], shapes, starts, loc, weights)
    with pytest.raises(ValueError, match="backend"):
        ms_deform_attn(value, shapes, starts, loc, weights, backend="fast")


@needs_ext
def test_kernel_rejects_levels_outside_value():
    value, shapes, starts, loc, weights = _inputs(1, 2, 2, 3, [(2, 2)], 1)
    with pytest.raises(RuntimeError, match="does not fit"):
        torch.ops.soc.ms_deform_attn_forward(value, shapes, starts + 1, loc, weights)
    with pytest.raises(RuntimeError, match="share a dtype"):
        torch.ops.soc.ms_deform_attn_forward(value, shapes, starts, loc.double(), weights)


# ---- dispatch --------------------------------------------------------------------------------


@pytest.fixture
def fresh_log_state(monkeypatch):
    monkeypatch.setattr(mda, "_LOGGED", set())
    monkeypatch.delenv(mda.ENV_VAR, raising=False)


@needs_ext
def test_backend_selection_with_extension(monkeypatch, fresh_log_state):
    from soc import _C

    assert ms_deform_attn_backend("cpu") == "cpu_kernel"
    assert ms_deform_attn_backend("cuda") == ("cuda_kernel" if _C.with_cuda() else "reference")
    inputs = _inputs(1, 3, 2, 3, [(3, 3)], 2)
    value = inputs[0].clone().requires_grad_()
    out = ms_deform_attn(value, *inputs[1:])
    assert type(out.grad_fn).__name__ == "_MSDeformAttnFunctionBackward"

    monkeypatch.setenv(mda.ENV_VAR, "reference")
    assert ms_deform_attn_backend("cpu") == "reference"
    out_ref = ms_deform_attn(value, *inputs[1:])
    assert type(out_ref.grad_fn).__name__ != "_MSDeformAttnFunctionBackward"
    torch.testing.assert_close(out, out_ref)

    monkeypatch.setenv(mda.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=mda.ENV_VAR):
        ms_deform_attn_backend("cpu")


def test_fallback_without_extension(monkeypatch, fresh_log_state, caplog):
    monkeypatch.setattr(mda, "_EXT_STATE", (None, "soc._C could not be imported (test)"))
    assert ms_deform_attn_backend("cpu") == "reference"
    assert ms_deform_attn_backend("cuda") == "reference"
    inputs = _inputs(1, 3, 2, 3, [(3, 3)], 2)
    with caplog.at_level(logging.INFO, logger=mda.__name__):
        out = ms_deform_attn(*inputs)
        ms_deform_attn(*inputs)
    fallback_lines = [r for r in caplog.records if "using the PyTorch reference" in r.getMessage()]
    assert len(fallback_lines) == 1 and "(test)" in fallback_lines[0].getMessage()
    torch.testing.assert_close(out, ms_deform_attn_reference(*inputs))
    with pytest.raises(RuntimeError, match="backend='kernel'"):
        ms_deform_attn(*inputs, backend="kernel")


# ---- module ----------------------------------------------------------------------------------


def _module_inputs(N=2, Lq=6, C=16, shapes=((6, 8), (3, 4)), seed=0):
    g = torch.Generator().manual_seed(seed)
    spatial_shapes, starts, S = _level_index(shapes)
    query = torch.randn(N, Lq, C, generator=g)
    inp = torch.randn(N, S, C, generator=g)
    mask = torch.rand(N, S, generator=g) < 0.3
    return query, inp, spatial_shapes, starts, mask, g


def test_module_initial_sampling_pattern():
    # Zero offset weights: locations form the bias star, head k at angle 2πk/M, point i at (i+1) pixels.
    M, L, P = 4, 2, 3
    attn = MSDeformAttn(d_model=16, n_levels=L, n_heads=M, n_points=P)
    query, inp, shapes, starts, _, g = _module_inputs()
    ref = torch.rand(2, 6, L, 2, generator=g)
    _, loc, weights = attn(query, ref, inp, shapes, starts)
    torch.testing.assert_close(weights, torch.full_like(weights, 1.0 / (L * P)))
    directions = torch.tensor(
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    )  # M = 4: 0, 90, 180, 270 deg
    for m in range(M):
        for lvl, (h, w) in enumerate(shapes.tolist()):
            for p in range(P):
                step = directions[m] * (p + 1) / torch.tensor([w, h])
                torch.testing.assert_close(loc[:, :, m, lvl, p], ref[:, :, lvl] + step, atol=1e-6, rtol=0)
    for name in ("value_proj", "output_proj"):
        assert not getattr(attn, name).bias.any()


def test_module_box_references():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=2)
    query, inp, shapes, starts, _, g = _module_inputs()
    boxes = torch.rand(2, 6, 2, 4, generator=g)
    _, loc, _ = attn(query, boxes, inp, shapes, starts)
    # Head 0 points along +x; point p at offset p+1, scaled by w / (2P).
    torch.testing.assert_close(loc[:, :, 0, :, 1, 0], boxes[..., 0] + 2 / 2 * boxes[..., 2] * 0.5)
    torch.testing.assert_close(loc[:, :, 0, :, 1, 1], boxes[..., 1])


def test_module_padding_mask_and_backends(monkeypatch):
    monkeypatch.delenv(mda.ENV_VAR, raising=False)
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    with torch.no_grad():  # non-trivial offsets and weights
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_(0, 0.5)
    query, inp, shapes, starts, mask, g = _module_inputs()
    ref = torch.rand(2, 6, 2, 2, generator=g)
    out, loc, weights = attn(query, ref, inp, shapes, starts, mask)
    assert out.shape == (2, 6, 16) and loc.shape == (2, 6, 4, 2, 3, 2) and weights.shape == (2, 6, 4, 2, 3)
    torch.testing.assert_close(weights.sum((-1, -2)), torch.ones(2, 6, 4))

    # Padded positions do not matter...
    changed = torch.where(mask[..., None], torch.randn(inp.shape, generator=g) * 100, inp)
    torch.testing.assert_close(attn(query, ref, changed, shapes, starts, mask)[0], out)
    # ...because their projected values are zeroed before sampling.
    value = attn.value_proj(inp).masked_fill(mask[..., None], 0).view(2, -1, 4, 4)
    expected = attn.output_proj(ms_deform_attn_reference(value, shapes, starts, loc, weights))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)

    # Gradients (the module zeroes the projected values in place) equal those of the explicit formula, and
    # no gradient reaches the padded inputs.
    inp_a, inp_b = inp.clone().requires_grad_(), inp.clone().requires_grad_()
    out, loc, weights = out.detach(), loc.detach(), weights.detach()
    (attn(query, ref, inp_a, shapes, starts, mask)[0] * out).sum().backward()
    value = attn.value_proj(inp_b).masked_fill(mask[..., None], 0).view(2, -1, 4, 4)
    (attn.output_proj(ms_deform_attn_reference(value, shapes, starts, loc, weights)) * out).sum().backward()
    torch.testing.assert_close(inp_a.grad, inp_b.grad, rtol=1e-5, atol=1e-6)
    assert inp_a.grad[mask].abs().max() == 0 and inp_a.grad[~mask].abs().max() > 0

    monkeypatch.setenv(mda.ENV_VAR, "reference")
    out_ref, loc_ref, _ = attn(query, ref, inp, shapes, starts, mask)
    torch.testing.assert_close(out_ref, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loc_ref, loc)


def test_module_rejects_bad_sizes():
    with pytest.raises(ValueError, match="divisible"):
        MSDeformAttn(d_model=20, n_heads=8)
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=1)
    query, inp, shapes, starts, _, _ = _module_inputs()
    with pytest.raises(ValueError, match="last dim"):
        attn(query, torch.rand(2, 6, 2, 3), inp, shapes, starts)
    with pytest.raises(ValueError, match="levels"):
        attn(query, torch.rand(2, 6, 2, 2), inp, shapes[:1], starts[:1])


# ---- CUDA ------------------------------------------------------------------------------------


@needs_cuda
@needs_ext
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_cuda_kernel_matches_reference(case):
    from soc import _C

    if not _C.with_cuda():
        pytest.skip("soc._C was built without the CUDA kernel")
    inputs = _inputs(*case, device="cuda")
    kernel = _forward_backward(*inputs, backend="kernel")
    reference = _forward_backward(*(t.cpu() for t in inputs), backend="reference")
    for name, a, b in zip(["output", "grad_value", "grad_locations", "grad_weights"], kernel, reference):
        assert _rel_err(a.cpu(), b) < 1e-5, f"{name}: relative error {_rel_err(a.cpu(), b):.2e}"


@needs_cuda
@needs_ext
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_kernel_half_types(dtype):
    from soc import _C

    if not _C.with_cuda():
        pytest.skip("soc._C was built without the CUDA kernel")
    inputs = _inputs(2, 9, 4, 8, [(9, 13), (5, 7), (1, 1)], 3, device="cuda")
    half = [t.to(dtype) if t.is_floating_point() else t for t in inputs]
    kernel = _forward_backward(*half, backend="kernel")
    reference = _forward_backward(
        *(t.float() if t.is_floating_point() else t for t in half), backend="reference"
    )
    for a, b in zip(kernel, reference):
        assert a.dtype == dtype
        assert _rel_err(a.float(), b) < 3e-2


@needs_cuda
@needs_ext
def test_cuda_gradcheck_float64():
    from soc import _C

    if not _C.with_cuda():
        pytest.skip("soc._C was built without the CUDA kernel")
    value, shapes, starts, loc, weights = _inputs(
        1, 3, 2, 3, [(3, 4), (2, 2), (1, 1)], 2, torch.float64, seed=5, device="cuda"
    )
    leaves = [t.requires_grad_() for t in (value, loc, weights)]
    assert torch.autograd.gradcheck(
        lambda v, lc, w: ms_deform_attn(v, shapes, starts, lc, w, backend="kernel"),
        leaves,
        eps=1e-6,
        atol=1e-7,
    )

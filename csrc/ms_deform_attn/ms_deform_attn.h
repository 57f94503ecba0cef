// Multi-scale deformable attention (Deformable DETR): declarations shared by the CPU and CUDA kernels.
//
// Legend: N batch, S = sum_l H_l * W_l flattened positions, M heads, D channels per head, Lq queries,
// L levels, P points per level.
//   value               (N, S, M, D)         float
//   spatial_shapes      (L, 2)   int64        (H_l, W_l)
//   level_start_index   (L,)     int64        offset of level l in S
//   sampling_locations  (N, Lq, M, L, P, 2)   (x, y) in [0, 1], 0 and 1 being the outer edges of the map
//   attention_weights   (N, Lq, M, L, P)
//   output              (N, Lq, M * D)
// Samples are bilinear with zeros outside the map, align_corners=False: pixel (i, j) of a level has its
// centre at ((j + 0.5) / W, (i + 0.5) / H), the same function as grid_sample(2 * loc - 1, align_corners=False).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <tuple>

namespace soc {

// The op's sizes (legend above), as the kernels read them.
struct Sizes {
  int64_t N, S, M, D, Lq, L, P;
};

// Sizes of checked arguments (see ms_deform_attn_check).
inline Sizes sizes_of(const at::Tensor& value, const at::Tensor& sampling_loc) {
  return Sizes{value.size(0),        value.size(1),        value.size(2),       value.size(3),
               sampling_loc.size(1), sampling_loc.size(3), sampling_loc.size(4)};
}

// Checks shapes, dtypes and devices of the op's arguments (grad_output may be undefined).
inline void ms_deform_attn_check(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output) {
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be (N, S, M, D), got ", value.sizes());
  TORCH_CHECK(
      spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2,
      "ms_deform_attn: spatial_shapes must be (L, 2), got ", spatial_shapes.sizes());
  const int64_t N = value.size(0), M = value.size(2), D = value.size(3), L = spatial_shapes.size(0);
  TORCH_CHECK(
      level_start_index.dim() == 1 && level_start_index.size(0) == L,
      "ms_deform_attn: level_start_index must be (", L, ",), got ", level_start_index.sizes());
  TORCH_CHECK(
      spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
      "ms_deform_attn: spatial_shapes and level_start_index must be int64");
  TORCH_CHECK(
      sampling_loc.dim() == 6 && sampling_loc.size(0) == N && sampling_loc.size(2) == M &&
          sampling_loc.size(3) == L && sampling_loc.size(5) == 2,
      "ms_deform_attn: sampling_locations must be (N=", N, ", Lq, M=", M, ", L=", L, ", P, 2), got ",
      sampling_loc.sizes());
  const int64_t Lq = sampling_loc.size(1), P = sampling_loc.size(4);
  TORCH_CHECK(
      attn_weight.sizes() == at::IntArrayRef({N, Lq, M, L, P}),
      "ms_deform_attn: attention_weights must be ", at::IntArrayRef({N, Lq, M, L, P}), ", got ",
      attn_weight.sizes());
  TORCH_CHECK(
      sampling_loc.scalar_type() == value.scalar_type() && attn_weight.scalar_type() == value.scalar_type(),
      "ms_deform_attn: value, sampling_locations and attention_weights must share a dtype, got ",
      value.scalar_type(), ", ", sampling_loc.scalar_type(), ", ", attn_weight.scalar_type());
  TORCH_CHECK(
      sampling_loc.device() == value.device() && attn_weight.device() == value.device(),
      "ms_deform_attn: value, sampling_locations and attention_weights must be on one device");
  if (grad_output.defined()) {
    TORCH_CHECK(
        grad_output.sizes() == at::IntArrayRef({N, Lq, M * D}),
        "ms_deform_attn: grad_output must be ", at::IntArrayRef({N, Lq, M * D}), ", got ",
        grad_output.sizes());
    TORCH_CHECK(
        grad_output.scalar_type() == value.scalar_type() && grad_output.device() == value.device(),
        "ms_deform_attn: grad_output must match value's dtype and device");
  }
}

// Checks that every level lies inside value's S positions (spatial_shapes and level_start_index on the CPU).
inline void ms_deform_attn_check_levels(
    const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, int64_t S) {
  const auto shapes = spatial_shapes.accessor<int64_t, 2>();
  const auto starts = level_start_index.accessor<int64_t, 1>();
  for (int64_t l = 0; l < spatial_shapes.size(0); ++l) {
    const int64_t H = shapes[l][0], W = shapes[l][1], start = starts[l];
    TORCH_CHECK(
        H >= 0 && W >= 0 && start >= 0 && start + H * W <= S, "ms_deform_attn: level ", l, " (H=", H,
        ", W=", W, ", start=", start, ") does not fit in value's S=", S, " positions");
  }
}

// Instruction set the CPU kernel's loops run with: "avx2" or "default" (follows ATen's CPU capability).
std::string ms_deform_attn_cpu_isa();

at::Tensor ms_deform_attn_cpu_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight);

// Returns (grad_value, grad_sampling_loc, grad_attn_weight).
std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_cpu_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output);

#ifdef WITH_CUDA
at::Tensor ms_deform_attn_cuda_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight);

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_cuda_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output);
#endif

}  // namespace soc

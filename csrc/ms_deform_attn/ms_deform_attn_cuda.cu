// CUDA kernel of multi-scale deformable attention (shapes and conventions in ms_deform_attn.h).
//
// Forward: one thread per output element (n, q, m, d); consecutive threads read consecutive channels of the
// same value rows, so loads coalesce. Accumulation is in float for half types (at::acc_type).
// Backward: a group of G lanes (G = the power of two >= min(D, 32)) per (n, q, m); each lane takes channels
// d = lane, lane + G, ..., adds its share of grad_value with atomics (into a float buffer for half types,
// cast at the end) and the lanes' partial derivatives for each sample's weight and location are summed with
// warp shuffles, so the gradients of locations and weights need no atomics.
#include "ms_deform_attn/ms_deform_attn.h"

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace soc {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;  // grid-stride loops cover the rest

#include "ms_deform_attn/ms_deform_attn_footprint.h"

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(
    const Sizes sz,
    const scalar_t* __restrict__ value,
    const int64_t* __restrict__ shapes,
    const int64_t* __restrict__ starts,
    const scalar_t* __restrict__ loc,
    const scalar_t* __restrict__ attn,
    scalar_t* __restrict__ out) {
  const int64_t MD = sz.M * sz.D;
  const int64_t total = sz.N * sz.Lq * MD;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = idx % sz.D;
    const int64_t nqm = idx / sz.D;  // ((n * Lq) + q) * M + m
    const int64_t m = nqm % sz.M;
    const int64_t n = nqm / (sz.M * sz.Lq);
    const scalar_t* value_nm = value + n * sz.S * MD + m * sz.D + d;
    acc_t acc = 0;
    for (int64_t l = 0; l < sz.L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const scalar_t* v = value_nm + starts[l] * MD;
      for (int64_t p = 0; p < sz.P; ++p) {
        const int64_t j = (nqm * sz.L + l) * sz.P + p;
        Footprint<acc_t> f;
        if (!locate<acc_t>(loc[2 * j], loc[2 * j + 1], H, W, f)) {
          continue;
        }
        const acc_t hx = 1 - f.lx, hy = 1 - f.ly;
        const acc_t corner_w[4] = {hy * hx, hy * f.lx, f.ly * hx, f.ly * f.lx};
        acc_t sample = 0;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          if (f.pos[c] >= 0) {
            sample += corner_w[c] * static_cast<acc_t>(v[f.pos[c] * MD]);
          }
        }
        acc += static_cast<acc_t>(attn[j]) * sample;
      }
    }
    out[idx] = static_cast<scalar_t>(acc);
  }
}

// Sum over the G lanes of a group (G divides 32; all lanes of the warp take part).
template <int G, typename acc_t>
__device__ __forceinline__ acc_t group_sum(acc_t v) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

template <typename scalar_t, typename acc_t, int G>
__global__ void backward_kernel(
    const Sizes sz,
    const scalar_t* __restrict__ value,
    const int64_t* __restrict__ shapes,
    const int64_t* __restrict__ starts,
    const scalar_t* __restrict__ loc,
    const scalar_t* __restrict__ attn,
    const scalar_t* __restrict__ grad_out,
    acc_t* __restrict__ grad_value,
    scalar_t* __restrict__ grad_loc,
    scalar_t* __restrict__ grad_attn) {
  constexpr int kGroupsPerWarp = 32 / G;
  const int64_t MD = sz.M * sz.D;
  const int64_t items = sz.N * sz.Lq * sz.M;
  const int lane = threadIdx.x % G;
  const int64_t thread = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x / G;
  // The loop bound depends on the warp only, so every lane of a warp runs the same iterations and the
  // shuffles see all 32 lanes; lanes past the last item compute zeros and write nothing.
  for (int64_t warp_item = (thread / 32) * kGroupsPerWarp; warp_item < items; warp_item += stride) {
    const int64_t nqm = warp_item + (threadIdx.x % 32) / G;
    const bool valid = nqm < items;
    const int64_t n = valid ? nqm / (sz.M * sz.Lq) : 0;
    const int64_t m = valid ? nqm % sz.M : 0;
    const int64_t value_offset = n * sz.S * MD + m * sz.D;
    for (int64_t l = 0; l < sz.L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const int64_t level_offset = value_offset + starts[l] * MD;
      for (int64_t p = 0; p < sz.P; ++p) {
        const int64_t j = (nqm * sz.L + l) * sz.P + p;
        acc_t g_attn = 0, g_x = 0, g_y = 0;
        acc_t w = 0;
        Footprint<acc_t> f;
        if (valid && locate<acc_t>(loc[2 * j], loc[2 * j + 1], H, W, f)) {
          w = attn[j];
          const acc_t hx = 1 - f.lx, hy = 1 - f.ly;
          const acc_t corner_w[4] = {hy * hx, hy * f.lx, f.ly * hx, f.ly * f.lx};
          const acc_t corner_dx[4] = {-hy, hy, -f.ly, f.ly};
          const acc_t corner_dy[4] = {-hx, -f.lx, hx, f.lx};
          for (int64_t d = lane; d < sz.D; d += G) {
            const acc_t g = grad_out[nqm * sz.D + d];
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              if (f.pos[c] >= 0) {
                const int64_t idx = level_offset + f.pos[c] * MD + d;
                const acc_t v = value[idx];
                g_attn += corner_w[c] * v * g;
                g_x += corner_dx[c] * v * g;
                g_y += corner_dy[c] * v * g;
                gpuAtomicAdd(grad_value + idx, w * corner_w[c] * g);
              }
            }
          }
        }
        g_attn = group_sum<G>(g_attn);
        g_x = group_sum<G>(g_x);
        g_y = group_sum<G>(g_y);
        if (valid && lane == 0) {
          grad_attn[j] = static_cast<scalar_t>(g_attn);
          grad_loc[2 * j] = static_cast<scalar_t>(w * g_x * static_cast<acc_t>(W));
          grad_loc[2 * j + 1] = static_cast<scalar_t>(w * g_y * static_cast<acc_t>(H));
        }
      }
    }
  }
}

int64_t num_blocks(int64_t threads) {
  return std::max<int64_t>(1, std::min<int64_t>((threads + kThreads - 1) / kThreads, kMaxBlocks));
}

void check_cuda(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index) {
  TORCH_CHECK(value.is_cuda(), "ms_deform_attn_cuda: value must be a CUDA tensor");
  // Level bounds are checked where that costs no device synchronisation.
  if (spatial_shapes.device().is_cpu() && level_start_index.device().is_cpu()) {
    ms_deform_attn_check_levels(spatial_shapes, level_start_index, value.size(1));
  }
}

// Launches the backward kernel with the smallest lane group G (a power of two up to 32) covering D.
template <typename scalar_t, typename acc_t>
void backward(
    const Sizes& sz,
    const at::Tensor& value,
    const at::Tensor& shapes,
    const at::Tensor& starts,
    const at::Tensor& loc,
    const at::Tensor& attn,
    const at::Tensor& grad_out,
    at::Tensor& grad_value_acc,
    at::Tensor& grad_loc,
    at::Tensor& grad_attn) {
  const int64_t items = sz.N * sz.Lq * sz.M;
  auto launch = [&](auto group) {
    constexpr int G = decltype(group)::value;
    backward_kernel<scalar_t, acc_t, G>
        <<<num_blocks(items * G), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            sz, value.const_data_ptr<scalar_t>(), shapes.const_data_ptr<int64_t>(),
            starts.const_data_ptr<int64_t>(), loc.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
            grad_out.const_data_ptr<scalar_t>(), grad_value_acc.mutable_data_ptr<acc_t>(),
            grad_loc.mutable_data_ptr<scalar_t>(), grad_attn.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (sz.D <= 1) {
    launch(std::integral_constant<int, 1>());
  } else if (sz.D <= 2) {
    launch(std::integral_constant<int, 2>());
  } else if (sz.D <= 4) {
    launch(std::integral_constant<int, 4>());
  } else if (sz.D <= 8) {
    launch(std::integral_constant<int, 8>());
  } else if (sz.D <= 16) {
    launch(std::integral_constant<int, 16>());
  } else {
    launch(std::integral_constant<int, 32>());
  }
}

}  // namespace

at::Tensor ms_deform_attn_cuda_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight) {
  ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, at::Tensor());
  check_cuda(value, spatial_shapes, level_start_index);
  const c10::cuda::CUDAGuard guard(value.device());
  const Sizes sz = sizes_of(value, sampling_loc);
  const at::Tensor value_c = value.contiguous(), loc_c = sampling_loc.contiguous();
  const at::Tensor attn_c = attn_weight.contiguous();
  const at::Tensor shapes_c = spatial_shapes.to(value.device()).contiguous();
  const at::Tensor starts_c = level_start_index.to(value.device()).contiguous();
  at::Tensor out = at::empty({sz.N, sz.Lq, sz.M * sz.D}, value.options());
  if (out.numel() == 0) {
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cuda_forward", [&] {
        using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
        const auto stream = c10::cuda::getCurrentCUDAStream();
        forward_kernel<scalar_t, acc_t><<<num_blocks(out.numel()), kThreads, 0, stream>>>(
            sz, value_c.const_data_ptr<scalar_t>(), shapes_c.const_data_ptr<int64_t>(),
            starts_c.const_data_ptr<int64_t>(), loc_c.const_data_ptr<scalar_t>(),
            attn_c.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_cuda_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output) {
  ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, grad_output);
  check_cuda(value, spatial_shapes, level_start_index);
  const c10::cuda::CUDAGuard guard(value.device());
  const Sizes sz = sizes_of(value, sampling_loc);
  const at::Tensor value_c = value.contiguous(), loc_c = sampling_loc.contiguous();
  const at::Tensor attn_c = attn_weight.contiguous(), grad_c = grad_output.contiguous();
  const at::Tensor shapes_c = spatial_shapes.to(value.device()).contiguous();
  const at::Tensor starts_c = level_start_index.to(value.device()).contiguous();
  const auto acc_dtype = at::toAccumulateType(value.scalar_type(), /*is_cuda=*/true);
  at::Tensor grad_value_acc = at::zeros(value.sizes(), value.options().dtype(acc_dtype));
  at::Tensor grad_loc = at::zeros_like(loc_c);
  at::Tensor grad_attn = at::zeros_like(attn_c);
  if (sz.N * sz.Lq * sz.M * sz.L * sz.P > 0 && sz.D > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cuda_backward", [&] {
          using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
          backward<scalar_t, acc_t>(
              sz, value_c, shapes_c, starts_c, loc_c, attn_c, grad_c, grad_value_acc, grad_loc, grad_attn);
        });
  }
  return std::make_tuple(grad_value_acc.to(value.scalar_type()), grad_loc, grad_attn);
}

}  // namespace soc

// CPU kernel of multi-scale deformable attention (shapes and conventions in ms_deform_attn.h).
//
// Forward runs in parallel over (batch, query) pairs, each computing all heads of its query. Backward runs in
// parallel over (batch, head) pairs: grad_value[n, :, m, :] then has a single writer, so no atomics or
// per-thread buffers are needed, and the gradients of the locations and weights of (n, ., m) are disjoint too.
// The inner loops run over the D channels of a head, which are contiguous in memory (`omp simd`).
#include "ms_deform_attn/ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace soc {
namespace {

struct Sizes {
  int64_t N, S, M, D, Lq, L, P;
};

// Where one sample falls on a level: the four corners of its bilinear footprint, in the order
// (y0, x0), (y0, x1), (y1, x0), (y1, x1), as row-major positions within the level (-1 when the corner is
// outside the map and reads zero), and the fractional offsets (lx, ly) from corner (y0, x0).
template <typename scalar_t>
struct Footprint {
  int64_t pos[4];
  scalar_t lx, ly;
};

// Returns false when every corner is outside the map (the sample is zero, and so is its gradient).
template <typename scalar_t>
inline bool locate(scalar_t loc_x, scalar_t loc_y, int64_t H, int64_t W, Footprint<scalar_t>& f) {
  // Pixel coordinates with pixel centres at integers (align_corners=False).
  const scalar_t x = loc_x * static_cast<scalar_t>(W) - static_cast<scalar_t>(0.5);
  const scalar_t y = loc_y * static_cast<scalar_t>(H) - static_cast<scalar_t>(0.5);
  // Written so that NaN locations fall on the "outside" branch.
  if (!(x > -1 && y > -1 && x < static_cast<scalar_t>(W) && y < static_cast<scalar_t>(H))) {
    return false;
  }
  const scalar_t xf = std::floor(x), yf = std::floor(y);
  const int64_t x0 = static_cast<int64_t>(xf), y0 = static_cast<int64_t>(yf);
  f.lx = x - xf;
  f.ly = y - yf;
  const bool x0_in = x0 >= 0, x1_in = x0 + 1 < W, y0_in = y0 >= 0, y1_in = y0 + 1 < H;
  f.pos[0] = (y0_in && x0_in) ? y0 * W + x0 : -1;
  f.pos[1] = (y0_in && x1_in) ? y0 * W + x0 + 1 : -1;
  f.pos[2] = (y1_in && x0_in) ? (y0 + 1) * W + x0 : -1;
  f.pos[3] = (y1_in && x1_in) ? (y0 + 1) * W + x0 + 1 : -1;
  return true;
}

// y += a * x over n contiguous elements.
template <typename scalar_t>
inline void axpy(scalar_t a, const scalar_t* __restrict__ x, scalar_t* __restrict__ y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    y[i] += a * x[i];
  }
}

// Returns g . v and adds a * g to gv, in one pass over n contiguous elements.
template <typename scalar_t>
inline scalar_t dot_and_axpy(
    const scalar_t* __restrict__ g,
    const scalar_t* __restrict__ v,
    scalar_t* __restrict__ gv,
    scalar_t a,
    int64_t n) {
  scalar_t dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t i = 0; i < n; ++i) {
    dot += g[i] * v[i];
    gv[i] += a * g[i];
  }
  return dot;
}

template <typename scalar_t>
void forward_kernel(
    const Sizes& sz,
    const scalar_t* value,
    const int64_t* shapes,
    const int64_t* starts,
    const scalar_t* loc,
    const scalar_t* attn,
    scalar_t* out) {
  const int64_t MD = sz.M * sz.D;
  // About 16k multiply-adds per task: small problems stay on one thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, 4 * sz.M * sz.L * sz.P * sz.D));
  at::parallel_for(0, sz.N * sz.Lq, grain, [&](int64_t begin, int64_t end) {
    for (int64_t nq = begin; nq < end; ++nq) {
      const scalar_t* value_n = value + (nq / sz.Lq) * sz.S * MD;
      for (int64_t m = 0; m < sz.M; ++m) {
        scalar_t* o = out + (nq * sz.M + m) * sz.D;
        std::fill(o, o + sz.D, scalar_t(0));
        const int64_t j0 = (nq * sz.M + m) * sz.L * sz.P;  // index of (n, q, m, 0, 0) in attn
        for (int64_t l = 0; l < sz.L; ++l) {
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          const scalar_t* v = value_n + starts[l] * MD + m * sz.D;
          for (int64_t p = 0; p < sz.P; ++p) {
            const int64_t j = j0 + l * sz.P + p;
            Footprint<scalar_t> f;
            if (!locate(loc[2 * j], loc[2 * j + 1], H, W, f)) {
              continue;
            }
            const scalar_t w = attn[j], hx = 1 - f.lx, hy = 1 - f.ly;
            const scalar_t corner_w[4] = {hy * hx, hy * f.lx, f.ly * hx, f.ly * f.lx};
            for (int c = 0; c < 4; ++c) {
              if (f.pos[c] >= 0) {
                axpy(w * corner_w[c], v + f.pos[c] * MD, o, sz.D);
              }
            }
          }
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(
    const Sizes& sz,
    const scalar_t* value,
    const int64_t* shapes,
    const int64_t* starts,
    const scalar_t* loc,
    const scalar_t* attn,
    const scalar_t* grad_out,
    scalar_t* grad_value,
    scalar_t* grad_loc,
    scalar_t* grad_attn) {
  const int64_t MD = sz.M * sz.D;
  at::parallel_for(0, sz.N * sz.M, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nm = begin; nm < end; ++nm) {
      const int64_t n = nm / sz.M, m = nm % sz.M;
      const scalar_t* value_nm = value + n * sz.S * MD + m * sz.D;
      scalar_t* grad_value_nm = grad_value + n * sz.S * MD + m * sz.D;
      for (int64_t q = 0; q < sz.Lq; ++q) {
        const int64_t nqm = (n * sz.Lq + q) * sz.M + m;
        const scalar_t* g = grad_out + nqm * sz.D;
        const int64_t j0 = nqm * sz.L * sz.P;
        for (int64_t l = 0; l < sz.L; ++l) {
          const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
          const scalar_t* v = value_nm + starts[l] * MD;
          scalar_t* gv = grad_value_nm + starts[l] * MD;
          for (int64_t p = 0; p < sz.P; ++p) {
            const int64_t j = j0 + l * sz.P + p;
            scalar_t g_attn = 0, g_x = 0, g_y = 0;  // d(out . g) / d(weight, pixel x, pixel y)
            Footprint<scalar_t> f;
            const scalar_t w = attn[j];
            if (locate(loc[2 * j], loc[2 * j + 1], H, W, f)) {
              const scalar_t hx = 1 - f.lx, hy = 1 - f.ly;
              const scalar_t corner_w[4] = {hy * hx, hy * f.lx, f.ly * hx, f.ly * f.lx};
              const scalar_t corner_dx[4] = {-hy, hy, -f.ly, f.ly};
              const scalar_t corner_dy[4] = {-hx, -f.lx, hx, f.lx};
              for (int c = 0; c < 4; ++c) {
                if (f.pos[c] >= 0) {
                  const scalar_t dot =
                      dot_and_axpy(g, v + f.pos[c] * MD, gv + f.pos[c] * MD, w * corner_w[c], sz.D);
                  g_attn += corner_w[c] * dot;
                  g_x += corner_dx[c] * dot;
                  g_y += corner_dy[c] * dot;
                }
              }
            }
            grad_attn[j] = g_attn;
            // Pixel x = loc_x * W - 0.5, so d/d(loc_x) = W * d/dx (and H for y).
            grad_loc[2 * j] = w * g_x * static_cast<scalar_t>(W);
            grad_loc[2 * j + 1] = w * g_y * static_cast<scalar_t>(H);
          }
        }
      }
    }
  });
}

Sizes sizes_of(const at::Tensor& value, const at::Tensor& sampling_loc) {
  return Sizes{value.size(0),        value.size(1),        value.size(2),       value.size(3),
               sampling_loc.size(1), sampling_loc.size(3), sampling_loc.size(4)};
}

void check_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index) {
  TORCH_CHECK(
      value.device().is_cpu() && spatial_shapes.device().is_cpu() && level_start_index.device().is_cpu(),
      "ms_deform_attn_cpu: all tensors must be on the CPU");
  ms_deform_attn_check_levels(spatial_shapes, level_start_index, value.size(1));
}

}  // namespace

at::Tensor ms_deform_attn_cpu_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight) {
  ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, at::Tensor());
  check_cpu(value, spatial_shapes, level_start_index);
  const Sizes sz = sizes_of(value, sampling_loc);
  const at::Tensor value_c = value.contiguous(), loc_c = sampling_loc.contiguous();
  const at::Tensor attn_c = attn_weight.contiguous();
  const at::Tensor shapes_c = spatial_shapes.contiguous(), starts_c = level_start_index.contiguous();
  at::Tensor out = at::empty({sz.N, sz.Lq, sz.M * sz.D}, value.options());
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu_forward", [&] {
    forward_kernel<scalar_t>(
        sz, value_c.const_data_ptr<scalar_t>(), shapes_c.const_data_ptr<int64_t>(),
        starts_c.const_data_ptr<int64_t>(), loc_c.const_data_ptr<scalar_t>(), attn_c.const_data_ptr<scalar_t>(),
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_cpu_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output) {
  ms_deform_attn_check(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, grad_output);
  check_cpu(value, spatial_shapes, level_start_index);
  const Sizes sz = sizes_of(value, sampling_loc);
  const at::Tensor value_c = value.contiguous(), loc_c = sampling_loc.contiguous();
  const at::Tensor attn_c = attn_weight.contiguous(), grad_c = grad_output.contiguous();
  const at::Tensor shapes_c = spatial_shapes.contiguous(), starts_c = level_start_index.contiguous();
  at::Tensor grad_value = at::zeros_like(value_c);
  at::Tensor grad_loc = at::empty_like(loc_c);
  at::Tensor grad_attn = at::empty_like(attn_c);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "ms_deform_attn_cpu_backward", [&] {
    backward_kernel<scalar_t>(
        sz, value_c.const_data_ptr<scalar_t>(), shapes_c.const_data_ptr<int64_t>(),
        starts_c.const_data_ptr<int64_t>(), loc_c.const_data_ptr<scalar_t>(), attn_c.const_data_ptr<scalar_t>(),
        grad_c.const_data_ptr<scalar_t>(), grad_value.mutable_data_ptr<scalar_t>(),
        grad_loc.mutable_data_ptr<scalar_t>(), grad_attn.mutable_data_ptr<scalar_t>());
  });
  return std::make_tuple(grad_value, grad_loc, grad_attn);
}

}  // namespace soc

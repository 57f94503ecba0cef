// Loop bodies of the CPU kernel of multi-scale deformable attention.
//
// No include guard on purpose: ms_deform_attn_cpu.cpp includes this file once per instruction set, each time
// inside its own namespace and under its own `#pragma GCC target`, so the channel loops are compiled for the
// baseline instruction set and for AVX2, and the better one is picked at run time. It only uses ForwardArgs,
// BackwardArgs, the sample footprint (ms_deform_attn_footprint.h, included here for the same reason) and the
// standard headers that ms_deform_attn_cpu.cpp includes before it.

#include "ms_deform_attn/ms_deform_attn_footprint.h"

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

// Output rows of the (batch, query) pairs nq in [begin, end), all heads. kD > 0 is the head size D known at
// compile time (the channel loops unroll and accumulate into a local row: about 15% faster at D = 32);
// kD = 0 takes D from the sizes.
template <int kD, typename scalar_t>
void forward_range_d(const ForwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  const Sizes& sz = a.sz;
  const int64_t D = kD > 0 ? kD : sz.D;
  const int64_t MD = sz.M * D;
  scalar_t acc_buf[kD > 0 ? kD : 1];
  for (int64_t nq = begin; nq < end; ++nq) {
    const scalar_t* value_n = a.value + (nq / sz.Lq) * sz.S * MD;
    for (int64_t m = 0; m < sz.M; ++m) {
      scalar_t* o = a.out + (nq * sz.M + m) * D;
      scalar_t* acc = kD > 0 ? acc_buf : o;
      for (int64_t d = 0; d < D; ++d) {
        acc[d] = 0;
      }
      const int64_t j0 = (nq * sz.M + m) * sz.L * sz.P;  // index of (n, q, m, 0, 0) in attn
      for (int64_t l = 0; l < sz.L; ++l) {
        const int64_t H = a.shapes[2 * l], W = a.shapes[2 * l + 1];
        const scalar_t* v = value_n + a.starts[l] * MD + m * D;
        for (int64_t p = 0; p < sz.P; ++p) {
          const int64_t j = j0 + l * sz.P + p;
          Footprint<scalar_t> f;
          if (!locate(a.loc[2 * j], a.loc[2 * j + 1], H, W, f)) {
            continue;
          }
          const scalar_t w = a.attn[j], hx = 1 - f.lx, hy = 1 - f.ly;
          const scalar_t corner_w[4] = {hy * hx, hy * f.lx, f.ly * hx, f.ly * f.lx};
          for (int c = 0; c < 4; ++c) {
            if (f.pos[c] >= 0) {
              axpy(w * corner_w[c], v + f.pos[c] * MD, acc, D);
            }
          }
        }
      }
      if (kD > 0) {
        for (int64_t d = 0; d < D; ++d) {
          o[d] = acc[d];
        }
      }
    }
  }
}

template <typename scalar_t>
void forward_range(const ForwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  if (a.sz.D == 32) {  // SOC's and Deformable DETR's head size
    forward_range_d<32>(a, begin, end);
  } else {
    forward_range_d<0>(a, begin, end);
  }
}

// All gradients of the (batch, head) pairs nm in [begin, end): grad_value[n, :, m, :] and the gradients of
// the locations and weights of (n, ., m) are written by this range only. kD as in forward_range_d.
template <int kD, typename scalar_t>
void backward_range_d(const BackwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  const Sizes& sz = a.sz;
  const int64_t D = kD > 0 ? kD : sz.D;
  const int64_t MD = sz.M * D;
  for (int64_t nm = begin; nm < end; ++nm) {
    const int64_t n = nm / sz.M, m = nm % sz.M;
    const scalar_t* value_nm = a.value + n * sz.S * MD + m * D;
    scalar_t* grad_value_nm = a.grad_value + n * sz.S * MD + m * D;
    for (int64_t q = 0; q < sz.Lq; ++q) {
      const int64_t nqm = (n * sz.Lq + q) * sz.M + m;
      const scalar_t* g = a.grad_out + nqm * D;
      const int64_t j0 = nqm * sz.L * sz.P;
      for (int64_t l = 0; l < sz.L; ++l) {
        const int64_t H = a.shapes[2 * l], W = a.shapes[2 * l + 1];
        const scalar_t* v = value_nm + a.starts[l] * MD;
        scalar_t* gv = grad_value_nm + a.starts[l] * MD;
        for (int64_t p = 0; p < sz.P; ++p) {
          const int64_t j = j0 + l * sz.P + p;
          scalar_t g_attn = 0, g_x = 0, g_y = 0;  // derivatives of out . g by weight, pixel x, pixel y
          const scalar_t w = a.attn[j];
          Footprint<scalar_t> f;
          if (locate(a.loc[2 * j], a.loc[2 * j + 1], H, W, f)) {
            const scalar_t hx = 1 - f.lx, hy = 1 - f.ly;
            const scalar_t corner_w[4] = {hy * hx, hy * f.lx, f.ly * hx, f.ly * f.lx};
            const scalar_t corner_dx[4] = {-hy, hy, -f.ly, f.ly};
            const scalar_t corner_dy[4] = {-hx, -f.lx, hx, f.lx};
            for (int c = 0; c < 4; ++c) {
              if (f.pos[c] >= 0) {
                const scalar_t dot =
                    dot_and_axpy(g, v + f.pos[c] * MD, gv + f.pos[c] * MD, w * corner_w[c], D);
                g_attn += corner_w[c] * dot;
                g_x += corner_dx[c] * dot;
                g_y += corner_dy[c] * dot;
              }
            }
          }
          a.grad_attn[j] = g_attn;
          // Pixel x = loc_x * W - 0.5, so d/d(loc_x) = W * d/dx (and H for y).
          a.grad_loc[2 * j] = w * g_x * static_cast<scalar_t>(W);
          a.grad_loc[2 * j + 1] = w * g_y * static_cast<scalar_t>(H);
        }
      }
    }
  }
}

template <typename scalar_t>
void backward_range(const BackwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  if (a.sz.D == 32) {
    backward_range_d<32>(a, begin, end);
  } else {
    backward_range_d<0>(a, begin, end);
  }
}

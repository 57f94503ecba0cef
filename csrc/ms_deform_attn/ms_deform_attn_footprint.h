// Where one sample falls on a level: the bilinear footprint shared by the CPU and CUDA kernels.
//
// No include guard on purpose: ms_deform_attn_cpu_kernel.h includes this file once per instruction set, each
// time inside its own namespace (so `locate` is compiled with the loops that call it), and
// ms_deform_attn_cuda.cu includes it once, where it becomes device code. `acc_t` is the arithmetic type:
// scalar_t on the CPU, at::acc_type<scalar_t, true> on CUDA. Needs <cmath> and <cstdint>.

#ifndef SOC_FOOTPRINT_INLINE
#ifdef __CUDACC__
#define SOC_FOOTPRINT_INLINE __device__ __forceinline__
#else
#define SOC_FOOTPRINT_INLINE inline
#endif
#endif

// The four corners of a sample's bilinear footprint, in the order (y0, x0), (y0, x1), (y1, x0), (y1, x1), as
// row-major positions within the level (-1 when the corner lies outside the map and reads zero), and the
// fractional offsets (lx, ly) from corner (y0, x0).
template <typename acc_t>
struct Footprint {
  int64_t pos[4];
  acc_t lx, ly;
};

// Fills `f` for the sample at normalised (loc_x, loc_y) on an H x W level. Returns false when every corner is
// outside the map (the sample is zero, and so is its gradient).
template <typename acc_t>
SOC_FOOTPRINT_INLINE bool locate(acc_t loc_x, acc_t loc_y, int64_t H, int64_t W, Footprint<acc_t>& f) {
  // Pixel coordinates with pixel centres at integers (align_corners=False).
  const acc_t x = loc_x * static_cast<acc_t>(W) - static_cast<acc_t>(0.5);
  const acc_t y = loc_y * static_cast<acc_t>(H) - static_cast<acc_t>(0.5);
  // Written so that NaN locations take the "outside" branch.
  if (!(x > -1 && y > -1 && x < static_cast<acc_t>(W) && y < static_cast<acc_t>(H))) {
    return false;
  }
  const acc_t xf = std::floor(x), yf = std::floor(y);
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

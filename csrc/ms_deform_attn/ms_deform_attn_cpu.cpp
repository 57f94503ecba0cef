// CPU kernel of multi-scale deformable attention (shapes and conventions in ms_deform_attn.h).
//
// Forward runs in parallel over (batch, query) pairs, each computing all heads of its query. Backward runs in
// parallel over (batch, head) pairs: grad_value[n, :, m, :] then has a single writer, so it needs neither
// atomics nor per-thread buffers, and the gradients of the locations and weights of (n, ., m) are disjoint
// too. The inner loops run over the D channels of a head, contiguous in memory; they are compiled twice
// (ms_deform_attn_cpu_kernel.h), for the baseline instruction set and for AVX2+FMA, and the AVX2 build runs
// when ATen's CPU capability allows it (so ATEN_CPU_CAPABILITY=default forces the baseline, as it does for
// ATen's own kernels).
#include "ms_deform_attn/ms_deform_attn.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SOC_CPU_MULTI_ISA 1
#else
#define SOC_CPU_MULTI_ISA 0
#endif

namespace soc {
namespace {

// The op's inputs, contiguous, as the loops read them.
template <typename scalar_t>
struct InputArgs {
  Sizes sz;
  const scalar_t* value;
  const int64_t* shapes;
  const int64_t* starts;
  const scalar_t* loc;
  const scalar_t* attn;
};

template <typename scalar_t>
struct ForwardArgs : InputArgs<scalar_t> {
  scalar_t* out;
};

template <typename scalar_t>
struct BackwardArgs : InputArgs<scalar_t> {
  const scalar_t* grad_out;
  scalar_t* grad_value;
  scalar_t* grad_loc;
  scalar_t* grad_attn;
};

namespace isa_default {
#include "ms_deform_attn/ms_deform_attn_cpu_kernel.h"
}  // namespace isa_default

#if SOC_CPU_MULTI_ISA
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace isa_avx2 {
#include "ms_deform_attn/ms_deform_attn_cpu_kernel.h"
}  // namespace isa_avx2
#pragma GCC pop_options
#endif

// Whether the AVX2 loops run: ATen's CPU capability (which honours ATEN_CPU_CAPABILITY) is AVX2 or better,
// double-checked against the CPU. (An AVX-512 build of the loops measured no faster: with D = 32 channels per
// head the loops are bound by memory, not arithmetic.)
bool use_avx2() {
  static const bool avx2 = [] {
#if SOC_CPU_MULTI_ISA
    const std::string capability = at::get_cpu_capability();
    return (capability == "AVX2" || capability == "AVX512") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return avx2;
}

template <typename scalar_t>
void run_forward(const ForwardArgs<scalar_t>& args) {
  void (*range)(const ForwardArgs<scalar_t>&, int64_t, int64_t) = &isa_default::forward_range<scalar_t>;
#if SOC_CPU_MULTI_ISA
  if (use_avx2()) {
    range = &isa_avx2::forward_range<scalar_t>;
  }
#endif
  const Sizes& sz = args.sz;
  // About 16k multiply-adds per task at least: small problems stay on one thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, 4 * sz.M * sz.L * sz.P * sz.D));
  at::parallel_for(0, sz.N * sz.Lq, grain, [&](int64_t begin, int64_t end) { range(args, begin, end); });
}

template <typename scalar_t>
void run_backward(const BackwardArgs<scalar_t>& args) {
  void (*range)(const BackwardArgs<scalar_t>&, int64_t, int64_t) = &isa_default::backward_range<scalar_t>;
#if SOC_CPU_MULTI_ISA
  if (use_avx2()) {
    range = &isa_avx2::backward_range<scalar_t>;
  }
#endif
  at::parallel_for(0, args.sz.N * args.sz.M, 1, [&](int64_t begin, int64_t end) { range(args, begin, end); });
}

void check_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index) {
  TORCH_CHECK(
      value.device().is_cpu() && spatial_shapes.device().is_cpu() && level_start_index.device().is_cpu(),
      "ms_deform_attn_cpu: all tensors must be on the CPU");
  ms_deform_attn_check_levels(spatial_shapes, level_start_index, value.size(1));
}

}  // namespace

std::string ms_deform_attn_cpu_isa() {
  return use_avx2() ? "avx2" : "default";
}

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
    run_forward<scalar_t>(ForwardArgs<scalar_t>{
        {sz, value_c.const_data_ptr<scalar_t>(), shapes_c.const_data_ptr<int64_t>(),
         starts_c.const_data_ptr<int64_t>(), loc_c.const_data_ptr<scalar_t>(),
         attn_c.const_data_ptr<scalar_t>()},
        out.mutable_data_ptr<scalar_t>()});
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
    run_backward<scalar_t>(BackwardArgs<scalar_t>{
        {sz, value_c.const_data_ptr<scalar_t>(), shapes_c.const_data_ptr<int64_t>(),
         starts_c.const_data_ptr<int64_t>(), loc_c.const_data_ptr<scalar_t>(),
         attn_c.const_data_ptr<scalar_t>()},
        grad_c.const_data_ptr<scalar_t>(), grad_value.mutable_data_ptr<scalar_t>(),
        grad_loc.mutable_data_ptr<scalar_t>(), grad_attn.mutable_data_ptr<scalar_t>()});
  });
  return std::make_tuple(grad_value, grad_loc, grad_attn);
}

}  // namespace soc

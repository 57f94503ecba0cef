// soc._C: registers the `soc::` operators with the PyTorch dispatcher and exposes build information.
#include <torch/extension.h>
#include <torch/library.h>

#include "ms_deform_attn/ms_deform_attn.h"

namespace soc {

// Whether this build contains the CUDA kernels (it may still run on a machine without a GPU).
bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace soc

TORCH_LIBRARY(soc, m) {
  m.def(
      "ms_deform_attn_forward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights, Tensor grad_output) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(soc, CPU, m) {
  m.impl("ms_deform_attn_forward", &soc::ms_deform_attn_cpu_forward);
  m.impl("ms_deform_attn_backward", &soc::ms_deform_attn_cpu_backward);
}

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(soc, CUDA, m) {
  m.impl("ms_deform_attn_forward", &soc::ms_deform_attn_cuda_forward);
  m.impl("ms_deform_attn_backward", &soc::ms_deform_attn_cuda_backward);
}
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("with_cuda", &soc::with_cuda, "Whether soc._C was built with the CUDA kernels.");
  m.def("cpu_isa", &soc::ms_deform_attn_cpu_isa, "Instruction set of the CPU kernel's loops: avx2/default.");
}

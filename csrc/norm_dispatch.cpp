// Picks the span kernels once per process from ATen's CPU capability, which
// checks the CPU (AVX2 and FMA) and honours ATEN_CPU_CAPABILITY, so
// ATEN_CPU_CAPABILITY=default runs the baseline build here as it does in
// ATen's own kernels. (at::native::get_cpu_capability() is not exported
// from libtorch_cpu; its name, through at::get_cpu_capability(), is.)

#include <ATen/Version.h>

#include "norm_cpu.h"

namespace fastgram {
namespace norm {
namespace {

template <typename T>
const SpanKernels<T>& pick() {
#ifdef FASTGRAM_NORM_HAVE_AVX2
  const std::string cap = at::get_cpu_capability();
  if (cap == "AVX2" || cap == "AVX512") return AVX2::span_kernels<T>();
#endif
  return DEFAULT::span_kernels<T>();
}

}  // namespace

template <typename T>
const SpanKernels<T>& span_kernels() {
  static const SpanKernels<T>& chosen = pick<T>();
  return chosen;
}

template const SpanKernels<float>& span_kernels<float>();
template const SpanKernels<double>& span_kernels<double>();

}  // namespace norm
}  // namespace fastgram

// The multi-layer Gram style loss on the CPU: the Gram kernels of
// gram_cpu.h with the loss epilogue, and a one-GEMM backward from the saved
// residual R = s G - T.
//
//   ext_style_loss(Tensor[] features, Tensor[] targets, float[] weights,
//                  float[] scales) -> (Tensor loss, Tensor[] residuals)
//   ext_style_loss_backward(Tensor grad_loss, Tensor[] features,
//                           Tensor[] residuals, float[] weights,
//                           float[] scales) -> Tensor[]

#include "gram_cpu.h"

#include <ATen/core/dispatch/DispatchKeyExtractor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <utility>
#include <vector>

namespace fastgram {
namespace {

using namespace cpu;

std::tuple<at::Tensor, std::vector<at::Tensor>> style_loss_forward_cpu(
    at::TensorList features, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales) {
  check_layer_lists(features, targets.size(), "targets", weights, scales);
  check_cpu_dtype(features[0], "ext_style_loss");
  std::vector<at::Tensor> residuals;
  residuals.reserve(features.size());
  double loss = 0.0;
  for (size_t l = 0; l < features.size(); ++l) {
    check_target(targets, features, l);
    at::Tensor F = gemm_ready(features[l]);
    const int64_t B = F.size(0), C = F.size(1);
    at::Tensor target = targets[l].detach().to(F.scalar_type()).contiguous();
    at::Tensor residual = at::empty({B, C, C}, F.options());
    double sq = 0.0;
    AT_DISPATCH_FLOATING_TYPES(F.scalar_type(), "ext_style_loss_cpu", [&] {
      sq = symmetric_gram<scalar_t>(F, scales[l], target, residual);
    });
    loss += weights[l] * sq / (static_cast<double>(B) * C * C);
    residuals.push_back(std::move(residual));
  }
  at::Tensor out = at::scalar_tensor(loss, features[0].options());
  return {out, residuals};
}

std::vector<at::Tensor> style_loss_backward_cpu(const at::Tensor& grad_loss,
                                                at::TensorList features,
                                                at::TensorList residuals,
                                                at::ArrayRef<double> weights,
                                                at::ArrayRef<double> scales) {
  check_layer_lists(features, residuals.size(), "residuals", weights, scales);
  check_cpu_dtype(features[0], "ext_style_loss_backward");
  check_residuals(features, residuals);
  check_grad_loss(grad_loss, features[0]);
  const double g = grad_loss.detach().to(at::kDouble).item<double>();
  std::vector<at::Tensor> grads;
  grads.reserve(features.size());
  for (size_t l = 0; l < features.size(); ++l) {
    at::Tensor F = gemm_ready(features[l]);
    const double coef = g * style_grad_coefficient(F, weights[l], scales[l]);
    at::Tensor M = symmetrized(residuals[l], coef, F.scalar_type());
    grads.push_back(left_multiply(M, F, features[l]));
  }
  return grads;
}

// The forward's only tensors are its two lists: called with both empty, the
// dispatcher has no backend to choose and would raise its own
// NotImplementedError ("no fallback function is registered"). Every call
// passes this BackendSelect kernel first, which refuses an empty layer list
// as the fake does and hands the rest to the features' backend.
std::tuple<at::Tensor, std::vector<at::Tensor>> style_loss_backend_select(
    at::TensorList features, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales) {
  TORCH_CHECK_VALUE(!features.empty(), "features: expected a non-empty list of tensors");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastgram::ext_style_loss", "")
                             .typed<decltype(style_loss_forward_cpu)>();
  const c10::DispatchKeySet after(c10::DispatchKeySet::FULL_AFTER,
                                  c10::DispatchKey::BackendSelect);
  const c10::DispatchKeySet keys = c10::impl::computeDispatchKeySet(
      c10::detail::multi_dispatch_key_set(features, targets), after);
  return op.redispatch(keys, features, targets, weights, scales);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fastgram, m) {
  m.def(
      "ext_style_loss(Tensor[] features, Tensor[] targets, float[] weights, "
      "float[] scales) -> (Tensor, Tensor[])");
  m.def(
      "ext_style_loss_backward(Tensor grad_loss, Tensor[] features, Tensor[] residuals, "
      "float[] weights, float[] scales) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(fastgram, CPU, m) {
  m.impl("ext_style_loss", &style_loss_forward_cpu);
  m.impl("ext_style_loss_backward", &style_loss_backward_cpu);
}

TORCH_LIBRARY_IMPL(fastgram, BackendSelect, m) {
  m.impl("ext_style_loss", &style_loss_backend_select);
}

}  // namespace fastgram

// The multi-layer moment loss on the CPU (schemas at the bottom):
//
//   loss = sum_l w_l * (mean((mu_l - M_l)^2) + mean((sigma_l - S_l)^2))
//
// with mu_l, sigma_l the per-(sample, channel) moments of feature map l
// (moments_cpu.h: one read of F_l) and M_l, S_l the target statistics, (B, C)
// or (1, C) broadcast over the batch. The forward returns the moments too;
// the backward is, per layer, the moments' gradient with
//
//   g_mean = 2 w g (mu - M) / (B C),  g_sigma = 2 w g (sigma - S) / (B C),
//
// one read of F_l and one write of dF_l. Target gradients are (B, C)-sized
// and left to the Python side.

#include "moments_cpu.h"

#include <ATen/core/dispatch/DispatchKeyExtractor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <utility>
#include <vector>

namespace fastgram {
namespace {

using namespace norm;

constexpr const char* kForward = "ext_moment_loss";
constexpr const char* kBackward = "ext_moment_loss_backward";

void check_target_stats(const at::Tensor& t, const at::Tensor& f, size_t l, const char* op,
                        const char* what) {
  TORCH_CHECK_VALUE(t.defined() && t.device() == f.device() && t.dim() == 2 &&
                        (t.size(0) == 1 || t.size(0) == f.size(0)) && t.size(1) == f.size(1),
                    op, ": ", what, "[", l, "]: expected a (1, ", f.size(1), ") or (", f.size(0),
                    ", ", f.size(1), ") tensor on ", f.device(), ", got shape ",
                    shape_str(t.sizes()));
  TORCH_CHECK_TYPE(t.scalar_type() == f.scalar_type(), op, ": ", what, "[", l,
                   "]: expected dtype ", f.scalar_type(), ", got ", t.scalar_type());
}

void check_layers(at::TensorList features, at::TensorList t_means, at::TensorList t_sigmas,
                  at::ArrayRef<double> weights, bool unbiased, const char* op) {
  TORCH_CHECK_VALUE(!features.empty(), op, ": features: expected a non-empty list of tensors");
  const size_t n = features.size();
  TORCH_CHECK_VALUE(t_means.size() == n && t_sigmas.size() == n && weights.size() == n, op,
                    ": target_means, target_sigmas, weights: expected ", n,
                    " entries each (one per layer)");
  for (size_t l = 0; l < n; ++l) {
    const std::string name = "features[" + std::to_string(l) + "]";
    check_feature_map(features[l], op, name.c_str());
    TORCH_CHECK_TYPE(features[l].scalar_type() == features[0].scalar_type(), op, ": ", name,
                     ": expected the dtype of features[0]");
    check_unbiased(unbiased, features[l], op, name.c_str());
    check_target_stats(t_means[l], features[l], l, op, "target_means");
    check_target_stats(t_sigmas[l], features[l], l, op, "target_sigmas");
    TORCH_CHECK_VALUE(std::isfinite(weights[l]), op, ": weights[", l, "]: expected a finite number");
  }
}

// sum over (b, c) of (x - target)^2 with the target broadcast over the batch.
template <typename T>
double squared_distance(const at::Tensor& x, const at::Tensor& target) {
  const int64_t B = x.size(0), C = x.size(1);
  const T* xp = x.const_data_ptr<T>();
  const T* tp = target.const_data_ptr<T>();
  const bool broadcast = target.size(0) == 1;
  double sum = 0.0;
  for (int64_t row = 0; row < B * C; ++row) {
    const double d = static_cast<double>(xp[row]) -
                     static_cast<double>(tp[broadcast ? row % C : row]);
    sum += d * d;
  }
  return sum;
}

std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> moment_loss_cpu(
    at::TensorList features, at::TensorList t_means, at::TensorList t_sigmas,
    at::ArrayRef<double> weights, double eps, bool unbiased) {
  check_layers(features, t_means, t_sigmas, weights, unbiased, kForward);
  check_eps(eps, kForward);
  std::vector<at::Tensor> means, sigmas;
  double loss = 0.0;
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor x = readable(features[l].detach());
    const int64_t B = x.size(0), C = x.size(1);
    at::Tensor mean = at::empty({B, C}, x.options());
    at::Tensor sigma = at::empty({B, C}, x.options());
    const at::Tensor tm = t_means[l].detach().contiguous();
    const at::Tensor ts = t_sigmas[l].detach().contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ext_moment_loss_cpu", [&] {
      channel_moments<scalar_t>(x, eps, unbiased, mean, sigma);
      loss += weights[l] *
              (squared_distance<scalar_t>(mean, tm) + squared_distance<scalar_t>(sigma, ts)) /
              static_cast<double>(B * C);
    });
    means.push_back(std::move(mean));
    sigmas.push_back(std::move(sigma));
  }
  return {at::scalar_tensor(loss, features[0].options()), means, sigmas};
}

std::vector<at::Tensor> moment_loss_backward_cpu(
    const at::Tensor& grad_loss, at::TensorList features, at::TensorList means,
    at::TensorList sigmas, at::TensorList t_means, at::TensorList t_sigmas,
    at::ArrayRef<double> weights, bool unbiased) {
  check_layers(features, t_means, t_sigmas, weights, unbiased, kBackward);
  TORCH_CHECK_VALUE(means.size() == features.size() && sigmas.size() == features.size(),
                    kBackward, ": means, sigmas: expected one per layer");
  TORCH_CHECK_VALUE(grad_loss.numel() == 1, kBackward, ": grad_loss: expected a scalar");
  const double g = grad_loss.detach().to(at::kDouble).item<double>();
  std::vector<at::Tensor> grads;
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor x = readable(features[l].detach());
    const int64_t B = x.size(0), C = x.size(1);
    const at::ScalarType dt = x.scalar_type();
    check_stats(means[l], B, C, dt, kBackward, "means");
    check_stats(sigmas[l], B, C, dt, kBackward, "sigmas");
    const at::Tensor mean = means[l].contiguous(), sigma = sigmas[l].contiguous();
    const at::Tensor tm = t_means[l].detach().contiguous();
    const at::Tensor ts = t_sigmas[l].detach().contiguous();
    at::Tensor grad = empty_in_layout(x, layout_of(x));
    const double k = 2.0 * weights[l] * g / static_cast<double>(B * C);
    std::vector<double> g_mean(static_cast<size_t>(B * C)), g_sigma(g_mean.size());
    AT_DISPATCH_FLOATING_TYPES(dt, "ext_moment_loss_backward_cpu", [&] {
      const scalar_t* mp = mean.const_data_ptr<scalar_t>();
      const scalar_t* sp = sigma.const_data_ptr<scalar_t>();
      const scalar_t* tmp = tm.const_data_ptr<scalar_t>();
      const scalar_t* tsp = ts.const_data_ptr<scalar_t>();
      for (int64_t row = 0; row < B * C; ++row) {
        const size_t r = static_cast<size_t>(row);
        const int64_t tm_row = tm.size(0) == 1 ? row % C : row;
        const int64_t ts_row = ts.size(0) == 1 ? row % C : row;
        g_mean[r] = k * (static_cast<double>(mp[row]) - static_cast<double>(tmp[tm_row]));
        g_sigma[r] = k * (static_cast<double>(sp[row]) - static_cast<double>(tsp[ts_row]));
      }
      moments_grad<scalar_t>(x, mean, sigma, unbiased, g_mean, g_sigma, grad);
    });
    grads.push_back(std::move(grad));
  }
  return grads;
}

// An empty layer list leaves the dispatcher no tensor to pick a backend
// from; as for ext_style_loss, this BackendSelect kernel refuses it with the
// fake's error and hands every other call to the features' backend.
std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> moment_loss_select(
    at::TensorList features, at::TensorList t_means, at::TensorList t_sigmas,
    at::ArrayRef<double> weights, double eps, bool unbiased) {
  TORCH_CHECK_VALUE(!features.empty(), "features: expected a non-empty list of tensors");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastgram::ext_moment_loss", "")
                             .typed<decltype(moment_loss_cpu)>();
  const c10::DispatchKeySet after(c10::DispatchKeySet::FULL_AFTER,
                                  c10::DispatchKey::BackendSelect);
  const c10::DispatchKeySet keys = c10::impl::computeDispatchKeySet(
      c10::detail::multi_dispatch_key_set(features, t_means, t_sigmas), after);
  return op.redispatch(keys, features, t_means, t_sigmas, weights, eps, unbiased);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fastgram, m) {
  m.def(
      "ext_moment_loss(Tensor[] features, Tensor[] target_means, Tensor[] target_sigmas, "
      "float[] weights, float eps, bool unbiased) -> (Tensor, Tensor[], Tensor[])");
  m.def(
      "ext_moment_loss_backward(Tensor grad_loss, Tensor[] features, Tensor[] means, "
      "Tensor[] sigmas, Tensor[] target_means, Tensor[] target_sigmas, float[] weights, "
      "bool unbiased) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(fastgram, CPU, m) {
  m.impl("ext_moment_loss", &moment_loss_cpu);
  m.impl("ext_moment_loss_backward", &moment_loss_backward_cpu);
}

}  // namespace fastgram

namespace fastgram {
TORCH_LIBRARY_IMPL(fastgram, BackendSelect, m) {
  m.impl("ext_moment_loss", &moment_loss_select);
}
}  // namespace fastgram

// Per-(sample, channel) moments on the CPU and their gradient, shared by
// the AdaIN style branch (adain_cpu.cpp) and the moment loss
// (moment_loss_cpu.cpp):
//
//   mean = sum(x) / N,  sigma = sqrt(sum((x - mean)^2) / D + eps)
//
// with D = N (biased) or N - 1 (unbiased), and, for upstream gradients
// g_mean and g_sigma per row,
//
//   dx = g_mean / N + g_sigma * (x - mean) / (sigma * D),
//
// an affine map of x per row: one read of x and one write of dx. The saved
// mean is rounded to the data type, so the exact mean is recovered from
// sum(x - saved mean) first, as the norms' backward does (norm_cpu.h).

#pragma once

#include "norm_cpu.h"

#include <vector>

namespace fastgram {
namespace norm {

// Rows' mean and sigma of x into the (B, C) tensors `mean` and `sigma`
// (dtype T, contiguous).
template <typename T>
void channel_moments(const at::Tensor& x, double eps, bool unbiased, at::Tensor& mean,
                     at::Tensor& sigma) {
  const Plan plan = make_plan<T>(x);
  const T* xp = x.const_data_ptr<T>();
  T* mean_p = mean.data_ptr<T>();
  T* sigma_p = sigma.data_ptr<T>();
  auto stats = make_stage<Moments>(
      [&](const Item& it, Moments* out) {
        span_moments(plan.span(it), xp + plan.offset(it), out);
      },
      [&](int64_t row, const Moments& m) {
        const RowStats<T> st = row_stats<T>(m, eps, unbiased);
        mean_p[row] = static_cast<T>(m.mean);
        sigma_p[row] = static_cast<T>(std::sqrt(st.var + eps));
      });
  run_pipeline(plan, NoApply(), stats);
}

// dx from the upstream gradients of each row's mean and sigma (g_mean,
// g_sigma: one double per row of x), written into `grad` (laid out like x).
template <typename T>
void moments_grad(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& sigma,
                  bool unbiased, const std::vector<double>& g_mean,
                  const std::vector<double>& g_sigma, at::Tensor& grad) {
  const Plan plan = make_plan<T>(x);
  const double n = static_cast<double>(plan.N);
  const double divisor = variance_divisor(n, unbiased);
  const T* xp = x.const_data_ptr<T>();
  T* dp = grad.data_ptr<T>();
  const T* mean_p = mean.const_data_ptr<T>();
  const T* sigma_p = sigma.const_data_ptr<T>();
  RowAffine<T> affine(plan.B * plan.C);

  auto residual = make_stage<GradSums>(
      [&](const Item& it, GradSums* out) {
        span_centered_sums(plan.span(it), xp + plan.offset(it), mean_p + plan.row(it), out);
      },
      [&](int64_t row, const GradSums& s) {
        const size_t r = static_cast<size_t>(row);
        const double coef = g_sigma[r] / (static_cast<double>(sigma_p[row]) * divisor);
        affine.set(row, mean_p[row], coef, g_mean[r] / n - coef * (s.d / n));
      });
  run_pipeline(
      plan,
      [&](const Item& it) {
        const int64_t off = plan.offset(it);
        span_affine<kNone>(plan.span(it), xp + off, dp + off, affine, plan.row(it), T(0));
      },
      residual);
}

}  // namespace norm
}  // namespace fastgram

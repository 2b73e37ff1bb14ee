// CPU AdaIN, forward and backward (schemas at the bottom):
//
//   out = alpha * (sigma_s * (c - mu_c) / sigma_c + mu_s) + (1 - alpha) * c
//
// with per-(sample, channel) statistics, variances over N (biased) or
// N - 1 (unbiased) and sigma = sqrt(var + eps); the style has the
// content's batch or batch 1 (one style for every sample) and its own spatial size and layout.
//
// Forward: one parallel region for the style statistics, then one for the
// content, which per item computes the content moments and writes the
// blended output while the item is still in cache (an affine map of
// x - mu_c per row). Content rows split into chunks (few long rows) get
// their moments in a region of their own.
//
// Backward: the content gradient is the instance-norm input gradient with
// weight alpha * sigma_s plus (1 - alpha) * dy; its per-row sums also give
// the gradients of mu_s and sigma_s,
//   g_mu = alpha * sum(dy),  g_sigma = alpha * sum(dy * xhat_c),
// so that ds = g_mu / N_s + g_sigma * (s - mu_s) / (sigma_s * D_s)
// (moments_cpu.h), with g_mu and g_sigma summed over the content batch (in
// sample order) for a broadcast style.

#include "moments_cpu.h"

namespace fastgram {
namespace {

using namespace norm;

constexpr const char* kForward = "ext_adain";
constexpr const char* kBackward = "ext_adain_backward";

void check_style(const at::Tensor& style, const at::Tensor& content, const char* op) {
  check_feature_map(style, op, "style");
  TORCH_CHECK(style.device() == content.device(), op, ": style: expected a tensor on ",
              content.device(), " like content, got one on ", style.device());
  TORCH_CHECK(style.dim() == content.dim(), op, ": style: expected a ", content.dim(),
              "-d tensor like content, got shape ", shape_str(style.sizes()));
  TORCH_CHECK(style.size(1) == content.size(1), op, ": style: expected ", content.size(1),
              " channels like content, got shape ", shape_str(style.sizes()));
  TORCH_CHECK(style.size(0) == content.size(0) || style.size(0) == 1, op,
              ": style: expected batch ", content.size(0), " (like content) or 1, got shape ",
              shape_str(style.sizes()));
  TORCH_CHECK(style.scalar_type() == content.scalar_type(), op, ": style: expected dtype ",
              content.scalar_type(), " like content, got ", style.scalar_type());
}

// The style row that content row `row` uses.
inline int64_t style_row(int64_t row, int64_t C, int64_t style_batch) {
  return style_batch == 1 ? row % C : row;
}

// --------------------------------------------------------------------------
// forward

template <typename T>
void restyle_content(const at::Tensor& content, double eps, double alpha, bool unbiased,
                     const at::Tensor& s_mean, const at::Tensor& s_sigma, at::Tensor& out,
                     at::Tensor& c_mean, at::Tensor& c_rstd) {
  const Plan plan = make_plan<T>(content);
  const int64_t Bs = s_mean.size(0);
  const T* cp = content.const_data_ptr<T>();
  T* op = out.data_ptr<T>();
  const T* s_mean_p = s_mean.const_data_ptr<T>();
  const T* s_sigma_p = s_sigma.const_data_ptr<T>();
  T* mean_p = c_mean.data_ptr<T>();
  T* rstd_p = c_rstd.data_ptr<T>();
  RowAffine<T> affine(plan.B * plan.C);

  auto stats = make_stage<Moments>(
      [&](const Item& it, Moments* m) {
        span_moments(plan.span(it), cp + plan.offset(it), m);
      },
      [&](int64_t row, const Moments& m) {
        const RowStats<T> st = row_stats<T>(m, eps, unbiased);
        mean_p[row] = st.center;
        rstd_p[row] = st.rstd;
        const int64_t srow = style_row(row, plan.C, Bs);
        // out = scale * (c - centre) + shift: the normalised content's
        // centre is off by the mean's rounding residual
        const double restyle = alpha * static_cast<double>(s_sigma_p[srow]) *
                               static_cast<double>(st.rstd);
        const double shift = alpha * static_cast<double>(s_mean_p[srow]) -
                             restyle * st.residual +
                             (1.0 - alpha) * static_cast<double>(st.center);
        affine.set(row, st.center, restyle + (1.0 - alpha), shift);
      });
  run_pipeline(
      plan,
      [&](const Item& it) {
        const int64_t off = plan.offset(it);
        span_affine<kNone>(plan.span(it), cp + off, op + off, affine, plan.row(it), T(0));
      },
      stats);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> adain_cpu(
    const at::Tensor& content_in, const at::Tensor& style_in, double eps, double alpha,
    bool unbiased) {
  check_feature_map(content_in, kForward, "content");
  check_style(style_in, content_in, kForward);
  check_eps(eps, kForward);
  check_alpha(alpha, kForward);
  check_unbiased(unbiased, content_in, kForward, "content");
  check_unbiased(unbiased, style_in, kForward, "style");

  const at::Tensor content = readable(content_in.detach());
  const at::Tensor style = readable(style_in.detach());
  const int64_t B = content.size(0), C = content.size(1), Bs = style.size(0);
  at::Tensor out = empty_in_layout(content, layout_of(content));
  at::Tensor c_mean = at::empty({B, C}, content.options());
  at::Tensor c_rstd = at::empty({B, C}, content.options());
  at::Tensor s_mean = at::empty({Bs, C}, content.options());
  at::Tensor s_sigma = at::empty({Bs, C}, content.options());
  AT_DISPATCH_FLOATING_TYPES(content.scalar_type(), "ext_adain_cpu", [&] {
    channel_moments<scalar_t>(style, eps, unbiased, s_mean, s_sigma);
    restyle_content<scalar_t>(content, eps, alpha, unbiased, s_mean, s_sigma, out, c_mean,
                              c_rstd);
  });
  return {out, c_mean, c_rstd, s_mean, s_sigma};
}

// --------------------------------------------------------------------------
// backward

// alpha * sum(dy) and alpha * sum(dy * xhat_c) per content row: the
// gradients of mu_s and sigma_s that row sends to its style row.
struct StyleGrads {
  std::vector<double> mean, sigma;
  explicit StyleGrads(int64_t rows) : mean(rows), sigma(rows) {}
};

template <typename T>
void content_grad(const at::Tensor& dy, const at::Tensor& content, const at::Tensor& c_mean,
                  const at::Tensor& c_rstd, const at::Tensor& s_sigma, double alpha,
                  bool unbiased, at::Tensor& grad_c, StyleGrads& to_style) {
  const Plan plan = make_plan<T>(content);
  const double n = static_cast<double>(plan.N);
  const int64_t Bs = s_sigma.size(0);
  const T* cp = content.const_data_ptr<T>();
  const T* dyp = dy.const_data_ptr<T>();
  T* dcp = grad_c.data_ptr<T>();
  const T* rstd_p = c_rstd.const_data_ptr<T>();
  const T* s_sigma_p = s_sigma.const_data_ptr<T>();
  RowAffine<T> affine(plan.B * plan.C);
  RowGrad<T> grad(plan.B * plan.C);
  const T* mean_p = c_mean.const_data_ptr<T>();
  std::copy(mean_p, mean_p + plan.B * plan.C, affine.center.begin());

  auto sums = make_stage<GradSums>(
      [&](const Item& it, GradSums* out) {
        const int64_t off = plan.offset(it);
        span_grad_sums<kNone>(plan.span(it), cp + off, dyp + off, affine, plan.row(it), T(0),
                              out);
      },
      [&](int64_t row, const GradSums& s) {
        const double sigma_s = static_cast<double>(s_sigma_p[style_row(row, plan.C, Bs)]);
        const GradCoefs g = grad_coefs(s, n, static_cast<double>(rstd_p[row]),
                                       alpha * sigma_s, 1.0 - alpha, unbiased);
        grad.set(row, g);
        to_style.mean[static_cast<size_t>(row)] = alpha * s.h;
        to_style.sigma[static_cast<size_t>(row)] = alpha * g.h_xhat;
      });
  run_pipeline(
      plan,
      [&](const Item& it) {
        const int64_t off = plan.offset(it);
        span_grad<kNone, true>(plan.span(it), cp + off, dyp + off, dcp + off, affine, grad,
                         plan.row(it), T(0));
      },
      sums);
}

// ds per style row from the mu_s and sigma_s gradients its content rows sent
// (all samples' for a broadcast style, summed in sample order).
template <typename T>
void style_grad(const at::Tensor& style, const at::Tensor& s_mean, const at::Tensor& s_sigma,
                int64_t B, bool unbiased, const StyleGrads& from_content, at::Tensor& grad_s) {
  const int64_t Bs = style.size(0), C = style.size(1);
  const int64_t feeding = Bs == 1 ? B : 1;
  std::vector<double> g_mean(static_cast<size_t>(Bs * C)), g_sigma(g_mean.size());
  for (int64_t row = 0; row < Bs * C; ++row) {
    for (int64_t i = 0; i < feeding; ++i) {
      const size_t content_row = static_cast<size_t>(row + i * C);
      g_mean[static_cast<size_t>(row)] += from_content.mean[content_row];
      g_sigma[static_cast<size_t>(row)] += from_content.sigma[content_row];
    }
  }
  moments_grad<T>(style, s_mean, s_sigma, unbiased, g_mean, g_sigma, grad_s);
}

void check_backward_args(const at::Tensor& grad_out, const at::Tensor& content,
                         const at::Tensor& style, const at::Tensor& c_mean,
                         const at::Tensor& c_rstd, const at::Tensor& s_mean,
                         const at::Tensor& s_sigma, double alpha, bool unbiased) {
  check_feature_map(content, kBackward, "content");
  check_same_as(grad_out, content, kBackward, "grad_out", "content");
  check_style(style, content, kBackward);
  check_unbiased(unbiased, content, kBackward, "content");
  check_unbiased(unbiased, style, kBackward, "style");
  const int64_t B = content.size(0), C = content.size(1), Bs = style.size(0);
  const at::ScalarType dt = content.scalar_type();
  check_stats(c_mean, B, C, dt, kBackward, "c_mean");
  check_stats(c_rstd, B, C, dt, kBackward, "c_rstd");
  check_stats(s_mean, Bs, C, dt, kBackward, "s_mean");
  check_stats(s_sigma, Bs, C, dt, kBackward, "s_sigma");
  check_alpha(alpha, kBackward);
}

std::tuple<at::Tensor, at::Tensor> adain_backward_cpu(
    const at::Tensor& grad_out_in, const at::Tensor& content_in, const at::Tensor& style_in,
    const at::Tensor& c_mean_in, const at::Tensor& c_rstd_in, const at::Tensor& s_mean_in,
    const at::Tensor& s_sigma_in, double alpha, bool need_style, bool unbiased) {
  check_backward_args(grad_out_in, content_in, style_in, c_mean_in, c_rstd_in, s_mean_in,
                      s_sigma_in, alpha, unbiased);
  const at::Tensor content = readable(content_in.detach());
  const Layout layout = layout_of(content);
  const at::Tensor dy = to_layout(grad_out_in.detach(), layout);
  const at::Tensor c_mean = c_mean_in.contiguous(), c_rstd = c_rstd_in.contiguous();
  const at::Tensor s_mean = s_mean_in.contiguous(), s_sigma = s_sigma_in.contiguous();
  const int64_t B = content.size(0), C = content.size(1);
  at::Tensor grad_c = empty_in_layout(content, layout);
  at::Tensor grad_s = content_in.new_empty({0});
  StyleGrads to_style(B * C);
  AT_DISPATCH_FLOATING_TYPES(content.scalar_type(), "ext_adain_backward_cpu", [&] {
    content_grad<scalar_t>(dy, content, c_mean, c_rstd, s_sigma, alpha, unbiased, grad_c,
                           to_style);
    if (need_style) {
      const at::Tensor style = readable(style_in.detach());
      grad_s = empty_in_layout(style, layout_of(style));
      style_grad<scalar_t>(style, s_mean, s_sigma, B, unbiased, to_style, grad_s);
    }
  });
  return {grad_c, grad_s};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fastgram, m) {
  m.def(
      "ext_adain(Tensor content, Tensor style, float eps, float alpha, bool unbiased=False) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "ext_adain_backward(Tensor grad_out, Tensor content, Tensor style, Tensor c_mean, "
      "Tensor c_rstd, Tensor s_mean, Tensor s_sigma, float alpha, bool need_style, "
      "bool unbiased=False) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fastgram, CPU, m) {
  m.impl("ext_adain", &adain_cpu);
  m.impl("ext_adain_backward", &adain_backward_cpu);
}

}  // namespace fastgram

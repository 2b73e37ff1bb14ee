// CPU instance normalisation with optional affine parameters and a fused
// activation, forward and backward (schemas at the bottom).
//
// Forward, per item (a row, or a channel group of a channels-last sample):
// the row moments in one pass over memory (see norm_cpu.h for the blocked
// scheme), then y = act((x - mean) * w * rstd + b) while the item is still in
// cache. Backward recomputes the pre-activation from x and the saved
// statistics and needs, per row, sum(h), sum(h * (x - mean)) and
// sum(x - mean), h = dy * act'(pre) (the last one recovers the exact mean
// from its saved rounding); with an activation the mask needs that exact
// mean first, which costs one more in-cache pass over the item.

#include "norm_cpu.h"

namespace fastgram {
namespace {

using namespace norm;

constexpr const char* kForward = "ext_instance_norm";
constexpr const char* kBackward = "ext_instance_norm_backward";

// An optional (C,) or (B, C) parameter read per row; `fallback` when absent.
template <typename T>
struct ChannelParam {
  const T* data = nullptr;
  bool per_sample = false;
  int64_t C = 0;
  double fallback = 0.0;

  double at(int64_t row) const {
    if (data == nullptr) return fallback;
    return static_cast<double>(data[per_sample ? row : row % C]);
  }
};

void check_param(const c10::optional<at::Tensor>& p, const at::Tensor& x, const char* op,
                 const char* name) {
  if (!p.has_value() || !p->defined()) return;
  const int64_t B = x.size(0), C = x.size(1);
  TORCH_CHECK(p->device() == x.device(), op, ": ", name, ": expected a tensor on ", x.device(),
              " like x, got one on ", p->device());
  TORCH_CHECK((p->dim() == 1 && p->size(0) == C) ||
                  (p->dim() == 2 && p->size(0) == B && p->size(1) == C),
              op, ": ", name, ": expected shape (C,) or (B, C) = (", C, ",) or (", B, ", ", C,
              "), got ", shape_str(p->sizes()));
  TORCH_CHECK(p->scalar_type() == x.scalar_type(), op, ": ", name, ": expected dtype ",
              x.scalar_type(), " like x, got ", p->scalar_type());
}

void check_activation(int64_t activation, double negative_slope, const char* op) {
  TORCH_CHECK(activation == kNone || activation == kRelu || activation == kLeakyRelu, op,
              ": activation: expected 0 (none), 1 (relu) or 2 (leaky_relu), got ", activation);
  TORCH_CHECK(std::isfinite(negative_slope), op,
              ": negative_slope: expected a finite number, got ", negative_slope);
}

// A contiguous copy of a present parameter (they are tiny), else undefined.
at::Tensor param_tensor(const c10::optional<at::Tensor>& p) {
  return p.has_value() && p->defined() ? p->contiguous() : at::Tensor();
}

template <typename T>
ChannelParam<T> channel_param(const at::Tensor& p, int64_t C, double fallback) {
  ChannelParam<T> out;
  out.C = C;
  out.fallback = fallback;
  if (p.defined()) {
    out.data = p.const_data_ptr<T>();
    out.per_sample = p.dim() == 2;
  }
  return out;
}

// --------------------------------------------------------------------------
// forward

template <typename T, int ACT>
void forward_kernel(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                    double eps, double slope, at::Tensor& y, at::Tensor& mean,
                    at::Tensor& rstd) {
  const Plan plan = make_plan<T>(x);
  const ChannelParam<T> w = channel_param<T>(weight, plan.C, 1.0);
  const ChannelParam<T> b = channel_param<T>(bias, plan.C, 0.0);
  const T* xp = x.const_data_ptr<T>();
  T* yp = y.data_ptr<T>();
  T* mean_p = mean.data_ptr<T>();
  T* rstd_p = rstd.data_ptr<T>();
  RowAffine<T> affine(plan.B * plan.C);

  auto stats = make_stage<Moments>(
      [&](const Item& it, Moments* out) {
        span_moments(plan.span(it), xp + plan.offset(it), out);
      },
      [&](int64_t row, const Moments& m) {
        const RowStats<T> st = row_stats<T>(m, eps);
        mean_p[row] = st.center;
        rstd_p[row] = st.rstd;
        const double scale = w.at(row) * static_cast<double>(st.rstd);
        affine.set(row, st.center, scale, b.at(row) - st.residual * scale);
      });
  const T slope_t = static_cast<T>(slope);
  run_pipeline(
      plan,
      [&](const Item& it) {
        const int64_t off = plan.offset(it);
        span_affine<ACT>(plan.span(it), xp + off, yp + off, affine, plan.row(it), slope_t);
      },
      stats);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_cpu(
    const at::Tensor& x_in, const c10::optional<at::Tensor>& weight_in,
    const c10::optional<at::Tensor>& bias_in, double eps, int64_t activation,
    double negative_slope) {
  check_feature_map(x_in, kForward, "x");
  check_param(weight_in, x_in, kForward, "weight");
  check_param(bias_in, x_in, kForward, "bias");
  check_eps(eps, kForward);
  check_activation(activation, negative_slope, kForward);

  const at::Tensor x = readable(x_in.detach());
  const at::Tensor weight = param_tensor(weight_in), bias = param_tensor(bias_in);
  at::Tensor y = empty_in_layout(x, layout_of(x));
  at::Tensor mean = at::empty({x.size(0), x.size(1)}, x.options());
  at::Tensor rstd = at::empty({x.size(0), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ext_instance_norm_cpu", [&] {
    with_activation(activation, [&](auto act) {
      forward_kernel<scalar_t, decltype(act)::value>(x, weight, bias, eps, negative_slope, y,
                                                     mean, rstd);
    });
  });
  return {y, mean, rstd};
}

// --------------------------------------------------------------------------
// backward

// sum(h * xhat) and sum(h) of every row, the raw material of the weight and
// bias gradients.
struct RowParamGrads {
  std::vector<double> weight, bias;
  explicit RowParamGrads(int64_t rows) : weight(rows), bias(rows) {}
};

// The gradient of a (C,) or (B, C) parameter from the per-row sums: (B, C)
// parameters take them as they are, (C,) ones sum them over the batch in
// sample order (deterministic, whatever the thread schedule).
at::Tensor param_grad(const std::vector<double>& rows, const at::Tensor& param, int64_t B,
                      int64_t C) {
  const bool per_sample = param.dim() == 2;
  at::Tensor out_d = at::empty(per_sample ? at::IntArrayRef{B, C} : at::IntArrayRef{C},
                               param.options().dtype(at::kDouble));
  double* o = out_d.data_ptr<double>();
  if (per_sample) {
    std::copy(rows.begin(), rows.end(), o);
  } else {
    for (int64_t c = 0; c < C; ++c) {
      double s = 0.0;
      for (int64_t b = 0; b < B; ++b) s += rows[static_cast<size_t>(b * C + c)];
      o[c] = s;
    }
  }
  return out_d.to(param.scalar_type());
}

template <typename T, int ACT>
void backward_kernel(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& mean, const at::Tensor& rstd,
                     double slope, at::Tensor* dx, RowParamGrads& param_rows) {
  const Plan plan = make_plan<T>(x);
  const double n = static_cast<double>(plan.N);
  const ChannelParam<T> w = channel_param<T>(weight, plan.C, 1.0);
  const ChannelParam<T> b = channel_param<T>(bias, plan.C, 0.0);
  const T* xp = x.const_data_ptr<T>();
  const T* dyp = dy.const_data_ptr<T>();
  T* dxp = dx ? dx->data_ptr<T>() : nullptr;
  const T* mean_p = mean.const_data_ptr<T>();
  const T* rstd_p = rstd.const_data_ptr<T>();
  const T slope_t = static_cast<T>(slope);
  RowAffine<T> affine(plan.B * plan.C);
  RowGrad<T> grad(plan.B * plan.C);
  std::copy(mean_p, mean_p + plan.B * plan.C, affine.center.begin());

  // The activation mask needs the pre-activation the forward computed, whose
  // shift holds the exact mean's residual: recover it from sum(x - mean).
  auto residual = make_stage<GradSums>(
      [&](const Item& it, GradSums* out) {
        span_centered_sums(plan.span(it), xp + plan.offset(it), mean_p + plan.row(it), out);
      },
      [&](int64_t row, const GradSums& s) {
        const double scale = w.at(row) * static_cast<double>(rstd_p[row]);
        affine.set(row, mean_p[row], scale, b.at(row) - (s.d / n) * scale);
      });
  auto sums = make_stage<GradSums>(
      [&](const Item& it, GradSums* out) {
        const int64_t off = plan.offset(it);
        span_grad_sums<ACT>(plan.span(it), xp + off, dyp + off, affine, plan.row(it), slope_t,
                            out);
      },
      [&](int64_t row, const GradSums& s) {
        const GradCoefs g = grad_coefs(s, n, static_cast<double>(rstd_p[row]), w.at(row), 0.0);
        grad.set(row, g);
        param_rows.weight[static_cast<size_t>(row)] = g.h_xhat;
        param_rows.bias[static_cast<size_t>(row)] = s.h;
      });
  auto apply = [&](const Item& it) {
    if (dxp == nullptr) return;
    const int64_t off = plan.offset(it);
    span_grad<ACT, false>(plan.span(it), xp + off, dyp + off, dxp + off, affine, grad, plan.row(it),
                   slope_t);
  };
  if constexpr (ACT == kNone) {
    run_pipeline(plan, apply, sums);
  } else {
    run_pipeline(plan, apply, residual, sums);
  }
}

void check_backward_args(const at::Tensor& grad_y, const at::Tensor& x,
                         const c10::optional<at::Tensor>& weight,
                         const c10::optional<at::Tensor>& bias, const at::Tensor& mean,
                         const at::Tensor& rstd, int64_t activation, double negative_slope) {
  check_feature_map(x, kBackward, "x");
  check_same_as(grad_y, x, kBackward, "grad_y", "x");
  check_param(weight, x, kBackward, "weight");
  check_param(bias, x, kBackward, "bias");
  check_stats(mean, x.size(0), x.size(1), x.scalar_type(), kBackward, "mean");
  check_stats(rstd, x.size(0), x.size(1), x.scalar_type(), kBackward, "rstd");
  check_activation(activation, negative_slope, kBackward);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_backward_cpu(
    const at::Tensor& grad_y_in, const at::Tensor& x_in,
    const c10::optional<at::Tensor>& weight_in, const c10::optional<at::Tensor>& bias_in,
    const at::Tensor& mean_in, const at::Tensor& rstd_in, int64_t activation,
    double negative_slope, std::array<bool, 3> output_mask) {
  check_backward_args(grad_y_in, x_in, weight_in, bias_in, mean_in, rstd_in, activation,
                      negative_slope);
  const at::Tensor weight = param_tensor(weight_in), bias = param_tensor(bias_in);
  const bool need_x = output_mask[0];
  const bool need_w = output_mask[1] && weight.defined();
  const bool need_b = output_mask[2] && bias.defined();
  // a fresh empty tensor per absent gradient: outputs never alias
  at::Tensor grad_x = x_in.new_empty({0}), grad_w = x_in.new_empty({0}),
             grad_b = x_in.new_empty({0});
  if (!need_x && !need_w && !need_b) return {grad_x, grad_w, grad_b};

  const at::Tensor x = readable(x_in.detach());
  const Layout layout = layout_of(x);
  const at::Tensor dy = to_layout(grad_y_in.detach(), layout);
  const at::Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous();
  if (need_x) grad_x = empty_in_layout(x, layout);
  const int64_t B = x.size(0), C = x.size(1);
  RowParamGrads param_rows(B * C);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ext_instance_norm_backward_cpu", [&] {
    with_activation(activation, [&](auto act) {
      backward_kernel<scalar_t, decltype(act)::value>(dy, x, weight, bias, mean, rstd,
                                                      negative_slope,
                                                      need_x ? &grad_x : nullptr, param_rows);
    });
  });
  if (need_w) grad_w = param_grad(param_rows.weight, weight, B, C);
  if (need_b) grad_b = param_grad(param_rows.bias, bias, B, C);
  return {grad_x, grad_w, grad_b};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fastgram, m) {
  m.def(
      "ext_instance_norm(Tensor x, Tensor? weight, Tensor? bias, float eps, int activation, "
      "float negative_slope) -> (Tensor, Tensor, Tensor)");
  m.def(
      "ext_instance_norm_backward(Tensor grad_y, Tensor x, Tensor? weight, Tensor? bias, "
      "Tensor mean, Tensor rstd, int activation, float negative_slope, bool[3] output_mask) "
      "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fastgram, CPU, m) {
  m.impl("ext_instance_norm", &instance_norm_cpu);
  m.impl("ext_instance_norm_backward", &instance_norm_backward_cpu);
}

}  // namespace fastgram

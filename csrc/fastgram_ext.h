// Argument checks and small helpers shared by the Gram and style-loss
// operators' CPU and CUDA translation units.
//
// The extension's operators (namespace `fastgram`, prefixed `ext_`; the Triton
// ops of the same namespace are prefixed `triton_`), one file per op family,
// each defining its schemas beside its kernels:
//
//   gram_cpu.cpp / gram_cuda.cu              ext_gram_matrix, ext_gram_matrix_backward
//   style_loss_cpu.cpp / style_loss_cuda.cu  ext_style_loss, ext_style_loss_backward
//   instance_norm_cpu.cpp                    ext_instance_norm, ext_instance_norm_backward
//   adain_cpu.cpp                            ext_adain, ext_adain_backward
//   module.cpp                               the namespace and the Python module
//
// Gram: features (B, C, H, W) or (B, C, N), any strides; G = scale * F F^T,
// (B, C, C) in the dtype of the features; its backward returns
// scale * (dG + dG^T) F shaped like the features.
// Style loss: per layer l, features F_l and targets T_l, (C_l, C_l)
// (broadcast over the batch) or (B, C_l, C_l); loss = sum_l w_l *
// mean((s_l F_l F_l^T - T_l)^2), a 0-dim tensor in the compute dtype
// (float32 for half inputs), and residuals[l] = s_l F_l F_l^T - T_l, (B, C_l,
// C_l) in the compute dtype, what the backward needs; the backward returns
// grad_loss * 2 w_l s_l / (B C_l^2) * (R_l + R_l^T) F_l per layer.
//
// Every operator checks its arguments with TORCH_CHECK before touching
// memory, so a bad direct call raises RuntimeError instead of reading out of
// bounds.

#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>
#include <vector>

namespace fastgram {

// The dtype arithmetic runs in: float32 for half inputs, else the input's.
inline at::ScalarType compute_dtype(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

inline bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// A feature map: (B, C, H, W) or (B, C, N) of a floating dtype, no empty dim.
inline void check_features(const at::Tensor& f, const std::string& name) {
  TORCH_CHECK(f.defined(), name, ": expected a tensor, got None");
  TORCH_CHECK(f.dim() == 3 || f.dim() == 4, name,
              ": expected a (B, C, H, W) or (B, C, N) tensor, got shape ", f.sizes());
  TORCH_CHECK(is_supported_float(f.scalar_type()), name,
              ": expected a float16, bfloat16, float32 or float64 tensor, got ",
              f.scalar_type());
  TORCH_CHECK(f.numel() > 0, name, ": expected a non-empty tensor, got shape ", f.sizes());
}

// A Gram-shaped tensor matching features f: (C, C) when `allow_2d`, or (B, C, C).
inline void check_gram_like(const at::Tensor& g, const at::Tensor& f, const std::string& name,
                            const std::string& fname, bool allow_2d) {
  TORCH_CHECK(g.defined(), name, ": expected a tensor, got None");
  TORCH_CHECK(g.device() == f.device(), name, ": expected a tensor on ", f.device(), " like ",
              fname, ", got one on ", g.device());
  TORCH_CHECK(is_supported_float(g.scalar_type()), name,
              ": expected a floating-point tensor, got ", g.scalar_type());
  const int64_t B = f.size(0), C = f.size(1);
  const bool ok3 = g.dim() == 3 && g.size(0) == B && g.size(1) == C && g.size(2) == C;
  const bool ok2 = allow_2d && g.dim() == 2 && g.size(0) == C && g.size(1) == C;
  TORCH_CHECK(ok3 || ok2, name, ": expected shape ", allow_2d ? "(C, C) or " : "", "(B, C, C) = (",
              B, ", ", C, ", ", C, ") for ", fname, " of shape ", f.sizes(), ", got ", g.sizes());
}

// "list[l]": how error messages name entry l of a per-layer list.
inline std::string layer_name(const char* list, size_t l) {
  return std::string(list) + "[" + std::to_string(l) + "]";
}

// Checks of the layer lists shared by the style-loss operators.
inline void check_layer_lists(at::TensorList features, size_t n_second, const char* second,
                              at::ArrayRef<double> weights, at::ArrayRef<double> scales) {
  // ValueError, in the words of the fakes (backends/checks.py)
  TORCH_CHECK_VALUE(!features.empty(), "features: expected a non-empty list of tensors");
  TORCH_CHECK(n_second == features.size(), second, ": expected ", features.size(),
              " tensors (one per layer), got ", n_second);
  TORCH_CHECK(weights.size() == features.size(), "weights: expected ", features.size(),
              " numbers (one per layer), got ", weights.size());
  TORCH_CHECK(scales.size() == features.size(), "scales: expected ", features.size(),
              " numbers (one per layer), got ", scales.size());
  for (size_t l = 0; l < features.size(); ++l) {
    const std::string name = layer_name("features", l);
    check_features(features[l], name);
    TORCH_CHECK(features[l].device() == features[0].device(), name, ": expected a tensor on ",
                features[0].device(), " like features[0], got one on ", features[l].device());
    TORCH_CHECK(features[l].scalar_type() == features[0].scalar_type(), name,
                ": expected dtype ", features[0].scalar_type(), " like features[0], got ",
                features[l].scalar_type());
  }
}

// The target of layer l in the forward: (C, C) or (B, C, C) for its features.
inline void check_target(at::TensorList targets, at::TensorList features, size_t l) {
  check_gram_like(targets[l], features[l], layer_name("targets", l), layer_name("features", l),
                  /*allow_2d=*/true);
}

// The residuals passed to the backward: exactly what the forward returned.
inline void check_residuals(at::TensorList features, at::TensorList residuals) {
  for (size_t l = 0; l < features.size(); ++l) {
    const std::string name = layer_name("residuals", l);
    const std::string fname = layer_name("features", l);
    check_gram_like(residuals[l], features[l], name, fname, /*allow_2d=*/false);
    const auto cdt = compute_dtype(features[l].scalar_type());
    TORCH_CHECK(residuals[l].scalar_type() == cdt, name, ": expected dtype ", cdt,
                " (the compute dtype of ", fname, "), got ", residuals[l].scalar_type());
  }
}

inline void check_grad_loss(const at::Tensor& g, const at::Tensor& f0) {
  TORCH_CHECK(g.defined(), "grad_loss: expected a tensor, got None");
  TORCH_CHECK(g.numel() == 1, "grad_loss: expected a single-element tensor, got shape ",
              g.sizes());
  TORCH_CHECK(is_supported_float(g.scalar_type()),
              "grad_loss: expected a floating-point tensor, got ", g.scalar_type());
  TORCH_CHECK(g.device() == f0.device(), "grad_loss: expected a tensor on ", f0.device(),
              " like features[0], got one on ", g.device());
}

// (B, C, N) view of a feature map (a view whenever the strides allow, which
// covers contiguous and channels_last inputs).
inline at::Tensor flat_view(const at::Tensor& f) {
  return f.dim() == 4 ? f.flatten(2) : f;
}

// The per-layer coefficient of (R + R^T) F in the style-loss gradient.
inline double style_grad_coefficient(const at::Tensor& f, double weight, double scale) {
  const double B = static_cast<double>(f.size(0));
  const double C = static_cast<double>(f.size(1));
  return 2.0 * weight * scale / (B * C * C);
}

}  // namespace fastgram

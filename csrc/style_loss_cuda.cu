// The multi-layer Gram style loss on CUDA: the Gram kernels of
// gram_cuda.cuh with a residual-and-loss finalize (the loss stays on the
// device), and the backward M F with M = c (R + R^T), c read from the
// device-side grad_loss.

#include "gram_cuda.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <utility>
#include <vector>

namespace fastgram {
namespace {

using namespace gpu;

// R = s G - T and loss += coef * sum(R^2); T is (C, C) (broadcast) or (B, C, C).
__global__ void residual_and_loss(const float* __restrict__ W, const float* __restrict__ T,
                                  bool per_sample_target, float* __restrict__ R,
                                  float* __restrict__ loss, int C, int64_t total, float scale,
                                  float coef) {
  __shared__ float partial[kFinalizeThreads / 32];
  const int64_t per_sample = static_cast<int64_t>(C) * C;
  float acc = 0.0f;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = e / per_sample, rc = e % per_sample;
    const int r = static_cast<int>(rc / C), c = static_cast<int>(rc % C);
    const float t = T[per_sample_target ? e : rc];
    const float v = scale * gram_entry(W + b * per_sample, C, r, c) - t;
    R[e] = v;
    acc = fmaf(v, v, acc);
  }
  for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < kFinalizeThreads / 32 ? partial[threadIdx.x] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2)
      acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (threadIdx.x == 0) atomicAdd(loss, coef * acc);
  }
}

std::tuple<at::Tensor, std::vector<at::Tensor>> style_loss_forward_cuda(
    at::TensorList features, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales) {
  check_layer_lists(features, targets.size(), "targets", weights, scales);
  check_cuda_features(features[0], "ext_style_loss");
  c10::cuda::CUDAGuard guard(features[0].device());
  auto stream = at::cuda::getCurrentCUDAStream();
  at::Tensor loss = at::zeros({}, features[0].options().dtype(at::kFloat));
  std::vector<at::Tensor> residuals;
  residuals.reserve(features.size());
  for (size_t l = 0; l < features.size(); ++l) {
    check_target(targets, features, l);
    check_cuda_features(features[l], "ext_style_loss");
    at::Tensor F = flat_view(features[l]).contiguous();
    const int64_t B = F.size(0), C = F.size(1);
    at::Tensor W = gram_workspace(F);
    at::Tensor T = targets[l].to(at::kFloat).contiguous();
    at::Tensor R = at::empty({B, C, C}, F.options().dtype(at::kFloat));
    const int64_t total = R.numel();
    const double coef = weights[l] / (static_cast<double>(B) * C * C);
    residual_and_loss<<<finalize_blocks(total), kFinalizeThreads, 0, stream>>>(
        W.const_data_ptr<float>(), T.const_data_ptr<float>(), T.dim() == 3, R.data_ptr<float>(),
        loss.data_ptr<float>(), static_cast<int>(C), total, static_cast<float>(scales[l]),
        static_cast<float>(coef));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    residuals.push_back(std::move(R));
  }
  return {loss, residuals};
}

std::vector<at::Tensor> style_loss_backward_cuda(const at::Tensor& grad_loss,
                                                 at::TensorList features,
                                                 at::TensorList residuals,
                                                 at::ArrayRef<double> weights,
                                                 at::ArrayRef<double> scales) {
  check_layer_lists(features, residuals.size(), "residuals", weights, scales);
  check_cuda_features(features[0], "ext_style_loss_backward");
  check_residuals(features, residuals);
  check_grad_loss(grad_loss, features[0]);
  c10::cuda::CUDAGuard guard(features[0].device());
  // Stays on the device: the kernels read it, the host never waits for it.
  at::Tensor g = grad_loss.reshape({1}).to(at::kFloat).contiguous();
  std::vector<at::Tensor> grads;
  grads.reserve(features.size());
  for (size_t l = 0; l < features.size(); ++l) {
    at::Tensor F = flat_view(features[l]).contiguous();
    const double coef = style_grad_coefficient(F, weights[l], scales[l]);
    at::Tensor M = symmetrized(residuals[l], g.const_data_ptr<float>(), coef);
    grads.push_back(left_multiply(M, F, features[l]));
  }
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgram, CUDA, m) {
  m.impl("ext_style_loss", &style_loss_forward_cuda);
  m.impl("ext_style_loss_backward", &style_loss_backward_cuda);
}

}  // namespace fastgram

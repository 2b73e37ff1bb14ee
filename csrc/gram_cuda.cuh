// The CUDA Gram kernels, shared by the Gram and the style-loss operators.
//
// Forward (Gram and style loss), per layer, all launched back to back on the
// current stream with no host synchronisation:
//   1. gram_tiles_*: only the upper-triangle 64x64 tiles of F F^T, split-K
//      over H*W (enough blocks to fill the GPU even for small C), fp32
//      accumulation, atomically added into an fp32 workspace. float32 runs on
//      CUDA cores (IEEE fp32); float16/bfloat16 run on tensor cores (WMMA
//      16x16x16, fp32 accumulators).
//   2. a finalize kernel reads each entry from its computed tile (mirroring
//      the lower triangle), scales it and writes the Gram (gram_cuda.cu) or,
//      for the style loss, the residual R = s G - T and the squared error
//      (style_loss_cuda.cu).
// Backward: M = c (A + A^T) (c may be read from the device, so no .item()
// sync), then grad = M F per sample: float32 on CUDA cores, half inputs on
// tensor cores in TF32 (half and bfloat16 convert to TF32 exactly; M stays
// fp32-ranged so tiny loss coefficients cannot underflow).

#pragma once

#include "fastgram_ext.h"

namespace fastgram {
namespace gpu {

constexpr int kTile = 64;      // output tile edge (rows and columns)
constexpr int kSimtK = 16;     // K step of the CUDA-core kernels
constexpr int kWmmaK = 32;     // K step of the half-precision tensor-core kernel
constexpr int kTf32K = 16;     // K step of the TF32 backward kernel
constexpr int kSimtThreads = 256;
constexpr int kWmmaThreads = 128;  // 4 warps, each a 32x32 quarter of the tile
constexpr int kFinalizeThreads = 256;


// Entry (r, c) of the full Gram from the upper-triangle workspace.
__device__ __forceinline__ float gram_entry(const float* Wb, int C, int r, int c) {
  return (r / kTile <= c / kTile) ? Wb[static_cast<int64_t>(r) * C + c]
                                  : Wb[static_cast<int64_t>(c) * C + r];
}

// Refuses tensors the CUDA kernels cannot take (device, dtype, sizes).
void check_cuda_features(const at::Tensor& f, const char* op);

// Blocks of kFinalizeThreads for a grid-stride loop over `total` entries.
int finalize_blocks(int64_t total);

// The upper-triangle tiles of F F^T (F: (B, C, N) contiguous) accumulated
// into a zeroed fp32 workspace (B, C, C).
at::Tensor gram_workspace(const at::Tensor& F);

// grad = M F per sample (M fp32 (B, C, C)), shaped and laid out like `like`.
at::Tensor left_multiply(const at::Tensor& M, const at::Tensor& F, const at::Tensor& like);

// M = coef * g * (A + A^T) in fp32, (B, C, C); g is a device scalar or null (1).
at::Tensor symmetrized(const at::Tensor& A, const float* g, double coef);

}  // namespace gpu
}  // namespace fastgram

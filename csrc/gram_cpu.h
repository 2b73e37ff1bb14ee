// The CPU Gram kernels, shared by the Gram and the style-loss operators.
//
// The Gram matrix G = s F F^T of a (C, N) feature map is symmetric, so the
// CPU path splits the channels into tiles and computes only the tiles (i, j)
// with i <= j: one ATen GEMM per tile (MKL/OpenBLAS underneath), tiles of all
// samples spread over the threads with at::parallel_for. The epilogue of each
// tile, while the tile is still in cache, scales it, subtracts the target
// (style loss), accumulates the squared error in double and mirrors the tile
// into (j, i). The backward is the GEMM (c (A + A^T)) F per sample, split
// into column chunks over the threads.

#pragma once

#include "fastgram_ext.h"

namespace fastgram {
namespace cpu {

// Refuses dtypes the CPU kernels have no instantiation for.
void check_cpu_dtype(const at::Tensor& f, const char* op);

// A (B, C, N) view that BLAS can consume directly (copies other layouts).
at::Tensor gemm_ready(const at::Tensor& f);

// Writes s F F^T (target undefined) or the residual s F F^T - T into `gram`
// (B, C, C contiguous, the dtype of F) and returns the sum of squared
// residuals in double (0 without a target). `target` is (C, C) or (B, C, C),
// contiguous in the dtype of F. Instantiated for float and double.
template <typename scalar_t>
double symmetric_gram(const at::Tensor& F, double scale, const at::Tensor& target,
                      at::Tensor& gram);

// coef * (A[b] + A[b]^T) for every sample, (B, C, C) contiguous in `dtype`.
at::Tensor symmetrized(const at::Tensor& A, double coef, at::ScalarType dtype);

// out[b] = M[b] @ F[b] for every sample, shaped (and laid out) like `like`.
at::Tensor left_multiply(const at::Tensor& M, const at::Tensor& F, const at::Tensor& like);

}  // namespace cpu
}  // namespace fastgram

// The Gram operators' CUDA kernels (design: gram_cuda.cuh).
//
//   ext_gram_matrix(Tensor features, float scale) -> Tensor
//   ext_gram_matrix_backward(Tensor grad_gram, Tensor features, float scale) -> Tensor

#include "gram_cuda.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>
#include <type_traits>

namespace fastgram {
namespace gpu {
namespace {


namespace wmma = nvcuda::wmma;

// The dtypes of the CUDA kernels (float64 is routed to the reference).
#define FASTGRAM_DISPATCH_CUDA_TYPES(TYPE, NAME, ...)                  \
  AT_DISPATCH_SWITCH(TYPE, NAME,                                        \
                     AT_DISPATCH_CASE(at::ScalarType::Float, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::ScalarType::Half, __VA_ARGS__)  \
                     AT_DISPATCH_CASE(at::ScalarType::BFloat16, __VA_ARGS__))

template <typename T>
struct WmmaType;
template <>
struct WmmaType<c10::Half> {
  using type = __half;
  static __device__ __forceinline__ __half zero() { return __float2half(0.0f); }
};
template <>
struct WmmaType<c10::BFloat16> {
  using type = __nv_bfloat16;
  static __device__ __forceinline__ __nv_bfloat16 zero() { return __float2bfloat16(0.0f); }
};

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(c10::Half v) { return static_cast<float>(v); }
__device__ __forceinline__ float to_float(c10::BFloat16 v) { return static_cast<float>(v); }

// Copies the ROWS x COLS window at (row0, col0) of a row-major matrix with
// `nrows` rows, `ncols` valid columns and leading dimension `ld` into shared
// memory as floats, element (r, c) at dst[r * dst_ld + c] (TRANSPOSE: at
// dst[c * dst_ld + r]); zeros outside the matrix. Consecutive threads read
// consecutive columns (coalesced).
template <int ROWS, int COLS, bool TRANSPOSE, typename T>
__device__ __forceinline__ void load_tile_f32(float* dst, int dst_ld, const T* __restrict__ src,
                                              int64_t ld, int64_t row0, int64_t nrows,
                                              int64_t col0, int64_t ncols) {
  for (int e = threadIdx.x; e < ROWS * COLS; e += blockDim.x) {
    const int r = e / COLS, c = e % COLS;
    const int64_t gr = row0 + r, gc = col0 + c;
    const float v = (gr < nrows && gc < ncols) ? to_float(src[gr * ld + gc]) : 0.0f;
    if (TRANSPOSE) {
      dst[c * dst_ld + r] = v;
    } else {
      dst[r * dst_ld + c] = v;
    }
  }
}

// The same for 16-bit inputs kept in their own type (tensor-core operands).
template <int ROWS, int COLS, typename W>
__device__ __forceinline__ void load_tile_16(W* dst, int dst_ld, const W* __restrict__ src,
                                             int64_t ld, int64_t row0, int64_t nrows,
                                             int64_t col0, int64_t ncols, W zero) {
  for (int e = threadIdx.x; e < ROWS * COLS; e += blockDim.x) {
    const int r = e / COLS, c = e % COLS;
    const int64_t gr = row0 + r, gc = col0 + c;
    dst[r * dst_ld + c] = (gr < nrows && gc < ncols) ? src[gr * ld + gc] : zero;
  }
}

// Upper-triangle tile pair index -> (tile row, tile column), row <= column.
__device__ __forceinline__ void unrank_pair(int pair, int tiles, int* ti, int* tj) {
  int row = 0;
  while (pair >= tiles - row) {
    pair -= tiles - row;
    ++row;
  }
  *ti = row;
  *tj = row + pair;
}

// One K step of the CUDA-core kernels (16x16 threads, 4x4 outputs each:
// rows ty + 16 i, columns tx + 16 j, so shared-memory reads are
// conflict-free): acc[i][j] += sum over k of As[k][ty + 16 i] * Bs[k][tx + 16 j].
__device__ __forceinline__ void simt_accumulate(const float (&As)[kSimtK][kTile + 1],
                                                const float (&Bs)[kSimtK][kTile + 1], int tx,
                                                int ty, float (&acc)[4][4]) {
#pragma unroll
  for (int k = 0; k < kSimtK; ++k) {
    float a[4], bv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
    for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
  }
}

// A tensor-core warp's 32x32 quarter of the 64x64 tile: 2x2 accumulator
// fragments of 16x16 (the fragment types differ between the half-precision
// and the TF32 kernels, hence the templates).
template <typename Acc>
__device__ __forceinline__ void zero_quarter(Acc (&acc)[2][2]) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
}

// acc[i][j] += a[i] b[j]
template <typename Acc, typename A, typename B>
__device__ __forceinline__ void mma_quarter(Acc (&acc)[2][2], const A (&a)[2], const B (&b)[2]) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
}

// Writes the quarter at rows wm.., columns wn.. of the row-major tile Cs (leading dim ld).
template <typename Acc>
__device__ __forceinline__ void store_quarter(float* Cs, int ld, int wm, int wn,
                                              const Acc (&acc)[2][2]) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(Cs + (wm + 16 * i) * ld + wn + 16 * j, acc[i][j], ld,
                              wmma::mem_row_major);
}

// --------------------------------------------------------------------------
// 1. Gram tiles (upper triangle), split-K, into an fp32 workspace

// CUDA cores, IEEE fp32: 16x16 threads, 4x4 outputs each (rows ty + 16 i,
// columns tx + 16 j, so shared-memory reads are conflict-free).
template <typename scalar_t>
__global__ void __launch_bounds__(kSimtThreads)
    gram_tiles_simt(const scalar_t* __restrict__ F, float* __restrict__ W, int C, int64_t N,
                    int tiles, int64_t k_chunk) {
  __shared__ float As[kSimtK][kTile + 1];
  __shared__ float Bs[kSimtK][kTile + 1];
  int ti, tj;
  unrank_pair(blockIdx.x, tiles, &ti, &tj);
  const int64_t b = blockIdx.z;
  const int64_t k_begin = static_cast<int64_t>(blockIdx.y) * k_chunk;
  const int64_t k_end = min(N, k_begin + k_chunk);
  const scalar_t* Fb = F + b * C * N;
  const int row0 = ti * kTile, col0 = tj * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kSimtK) {
    load_tile_f32<kTile, kSimtK, true>(&As[0][0], kTile + 1, Fb, N, row0, C, k0, k_end);
    load_tile_f32<kTile, kSimtK, true>(&Bs[0][0], kTile + 1, Fb, N, col0, C, k0, k_end);
    __syncthreads();
    simt_accumulate(As, Bs, tx, ty, acc);
    __syncthreads();
  }
  float* Wb = W + b * C * C;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = row0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = col0 + tx + 16 * j;
      if (r < C && c < C) atomicAdd(&Wb[static_cast<int64_t>(r) * C + c], acc[i][j]);
    }
  }
}

// Tensor cores for float16/bfloat16: WMMA 16x16x16 with fp32 accumulators.
// A = rows of the tile's row block (row-major M x K), B = F_j^T, i.e. the
// column block's rows stored [n][k] (column-major K x N).
template <typename scalar_t>
__global__ void __launch_bounds__(kWmmaThreads)
    gram_tiles_wmma(const scalar_t* __restrict__ F_in, float* __restrict__ W, int C, int64_t N,
                    int tiles, int64_t k_chunk) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using w_t = typename WmmaType<scalar_t>::type;
  constexpr int kLd = kWmmaK + 8;
  constexpr int kCLd = kTile + 4;
  __shared__ __align__(32) w_t As[kTile * kLd];
  __shared__ __align__(32) w_t Bs[kTile * kLd];
  __shared__ __align__(32) float Cs[kTile * kCLd];
  const w_t* F = reinterpret_cast<const w_t*>(F_in);
  const w_t zero = WmmaType<scalar_t>::zero();
  int ti, tj;
  unrank_pair(blockIdx.x, tiles, &ti, &tj);
  const int64_t b = blockIdx.z;
  const int64_t k_begin = static_cast<int64_t>(blockIdx.y) * k_chunk;
  const int64_t k_end = min(N, k_begin + k_chunk);
  const w_t* Fb = F + b * C * N;
  const int row0 = ti * kTile, col0 = tj * kTile;
  const int warp = threadIdx.x / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  zero_quarter(acc);

  for (int64_t k0 = k_begin; k0 < k_end; k0 += kWmmaK) {
    load_tile_16<kTile, kWmmaK>(As, kLd, Fb, N, row0, C, k0, k_end, zero);
    load_tile_16<kTile, kWmmaK>(Bs, kLd, Fb, N, col0, C, k0, k_end, zero);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kWmmaK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, w_t, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, w_t, wmma::col_major> bf[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], As + (wm + 16 * i) * kLd + kk, kLd);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(bf[j], Bs + (wn + 16 * j) * kLd + kk, kLd);
      mma_quarter(acc, a, bf);
    }
    __syncthreads();
  }
  store_quarter(Cs, kCLd, wm, wn, acc);
  __syncthreads();
  float* Wb = W + b * C * C;
  for (int e = threadIdx.x; e < kTile * kTile; e += blockDim.x) {
    const int r = row0 + e / kTile, c = col0 + e % kTile;
    if (r < C && c < C) atomicAdd(&Wb[static_cast<int64_t>(r) * C + c], Cs[(e / kTile) * kCLd + e % kTile]);
  }
#endif
}

// --------------------------------------------------------------------------
// 2. finalize

template <typename scalar_t>
__global__ void gram_finalize(const float* __restrict__ W, scalar_t* __restrict__ out, int C,
                              int64_t total, float scale) {
  const int64_t per_sample = static_cast<int64_t>(C) * C;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = e / per_sample, rc = e % per_sample;
    const int r = static_cast<int>(rc / C), c = static_cast<int>(rc % C);
    out[e] = static_cast<scalar_t>(scale * gram_entry(W + b * per_sample, C, r, c));
  }
}

// --------------------------------------------------------------------------
// 3. backward

// M = coef * g * (A + A^T), g read from the device (nullptr: 1).
template <typename in_t>
__global__ void symmetrize(const in_t* __restrict__ A, const float* __restrict__ g,
                           float* __restrict__ M, int C, int64_t total, float coef) {
  const int64_t per_sample = static_cast<int64_t>(C) * C;
  const float c0 = g == nullptr ? coef : coef * g[0];
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = e / per_sample, rc = e % per_sample;
    const int r = static_cast<int>(rc / C), c = static_cast<int>(rc % C);
    const in_t* Ab = A + b * per_sample;
    M[e] = c0 * (to_float(Ab[static_cast<int64_t>(r) * C + c]) +
                 to_float(Ab[static_cast<int64_t>(c) * C + r]));
  }
}

// out[b] = M[b] F[b] on CUDA cores (fp32): tile of 64 channels x 64 columns.
template <typename scalar_t>
__global__ void __launch_bounds__(kSimtThreads)
    left_multiply_simt(const float* __restrict__ M, const scalar_t* __restrict__ F,
                       scalar_t* __restrict__ out, int C, int64_t N) {
  __shared__ float As[kSimtK][kTile + 1];
  __shared__ float Bs[kSimtK][kTile + 1];
  const int64_t b = blockIdx.z;
  const int row0 = blockIdx.y * kTile;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const float* Mb = M + b * C * C;
  const scalar_t* Fb = F + b * C * N;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < C; k0 += kSimtK) {
    load_tile_f32<kTile, kSimtK, true>(&As[0][0], kTile + 1, Mb, C, row0, C, k0, C);
    load_tile_f32<kSimtK, kTile, false>(&Bs[0][0], kTile + 1, Fb, N, k0, C, col0, N);
    __syncthreads();
    simt_accumulate(As, Bs, tx, ty, acc);
    __syncthreads();
  }
  scalar_t* ob = out + b * C * N;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = row0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = col0 + tx + 16 * j;
      if (r < C && c < N) ob[static_cast<int64_t>(r) * N + c] = static_cast<scalar_t>(acc[i][j]);
    }
  }
}

// out[b] = M[b] F[b] on tensor cores in TF32, for float16/bfloat16 features.
template <typename scalar_t>
__global__ void __launch_bounds__(kWmmaThreads)
    left_multiply_tf32(const float* __restrict__ M, const scalar_t* __restrict__ F,
                       scalar_t* __restrict__ out, int C, int64_t N) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  constexpr int kALd = kTf32K + 4;
  constexpr int kBLd = kTile + 4;
  __shared__ __align__(32) float As[kTile * kALd];
  __shared__ __align__(32) float Bs[kTf32K * kBLd];
  __shared__ __align__(32) float Cs[kTile * kBLd];
  const int64_t b = blockIdx.z;
  const int row0 = blockIdx.y * kTile;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const float* Mb = M + b * C * C;
  const scalar_t* Fb = F + b * C * N;
  const int warp = threadIdx.x / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
  zero_quarter(acc);

  for (int k0 = 0; k0 < C; k0 += kTf32K) {
    load_tile_f32<kTile, kTf32K, false>(As, kALd, Mb, C, row0, C, k0, C);
    load_tile_f32<kTf32K, kTile, false>(Bs, kBLd, Fb, N, k0, C, col0, N);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTf32K; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> bf[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], As + (wm + 16 * i) * kALd + kk, kALd);
#pragma unroll
        for (int t = 0; t < a[i].num_elements; ++t) a[i].x[t] = wmma::__float_to_tf32(a[i].x[t]);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::load_matrix_sync(bf[j], Bs + kk * kBLd + wn + 16 * j, kBLd);
#pragma unroll
        for (int t = 0; t < bf[j].num_elements; ++t) bf[j].x[t] = wmma::__float_to_tf32(bf[j].x[t]);
      }
      mma_quarter(acc, a, bf);
    }
    __syncthreads();
  }
  store_quarter(Cs, kBLd, wm, wn, acc);
  __syncthreads();
  scalar_t* ob = out + b * C * N;
  for (int e = threadIdx.x; e < kTile * kTile; e += blockDim.x) {
    const int r = row0 + e / kTile;
    const int64_t c = col0 + e % kTile;
    if (r < C && c < N) ob[static_cast<int64_t>(r) * N + c] = static_cast<scalar_t>(Cs[(e / kTile) * kBLd + e % kTile]);
  }
#endif
}

}  // namespace

// --------------------------------------------------------------------------
// host side

void check_cuda_features(const at::Tensor& f, const char* op) {
  TORCH_CHECK(f.is_cuda(), op, ": expected CUDA tensors, got one on ", f.device());
  const auto t = f.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16, op,
              ": the CUDA kernels support float32, float16 and bfloat16 features, got ", t);
  TORCH_CHECK(f.size(0) <= 65535, op, ": batch size above 65535 is not supported, got ",
              f.size(0));
  TORCH_CHECK(f.size(1) <= (1 << 20), op, ": more than 2^20 channels are not supported");
}

int finalize_blocks(int64_t total) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>((total + kFinalizeThreads - 1) / kFinalizeThreads, sms * 8)));
}

namespace {

bool use_tensor_cores(const at::Tensor& f) {
  if (f.scalar_type() == at::kFloat) return false;
  return at::cuda::getCurrentDeviceProperties()->major >= 8;
}

// Kernel choice per dtype: tensor cores for 16-bit inputs on sm_80+, CUDA
// cores otherwise. Templates, so that the tensor-core kernels are only
// instantiated for the 16-bit types.
template <typename scalar_t>
void launch_gram_tiles(dim3 grid, cudaStream_t stream, bool tensor_cores, const scalar_t* F,
                       float* W, int C, int64_t N, int tiles, int64_t k_chunk) {
  if constexpr (!std::is_same_v<scalar_t, float>) {
    if (tensor_cores) {
      gram_tiles_wmma<scalar_t><<<grid, kWmmaThreads, 0, stream>>>(F, W, C, N, tiles, k_chunk);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
  }
  gram_tiles_simt<scalar_t><<<grid, kSimtThreads, 0, stream>>>(F, W, C, N, tiles, k_chunk);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void launch_left_multiply(dim3 grid, cudaStream_t stream, bool tensor_cores, const float* M,
                          const scalar_t* F, scalar_t* out, int C, int64_t N) {
  if constexpr (!std::is_same_v<scalar_t, float>) {
    if (tensor_cores) {
      left_multiply_tf32<scalar_t><<<grid, kWmmaThreads, 0, stream>>>(M, F, out, C, N);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
  }
  left_multiply_simt<scalar_t><<<grid, kSimtThreads, 0, stream>>>(M, F, out, C, N);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

// Accumulates the upper-triangle tiles of F F^T (F: (B, C, N) contiguous) into
// a zeroed fp32 workspace.
at::Tensor gram_workspace(const at::Tensor& F) {
  const int64_t B = F.size(0), C = F.size(1), N = F.size(2);
  at::Tensor W = at::zeros({B, C, C}, F.options().dtype(at::kFloat));
  const int tiles = static_cast<int>((C + kTile - 1) / kTile);
  const int pairs = tiles * (tiles + 1) / 2;
  const bool tc = use_tensor_cores(F);
  const int step = tc ? kWmmaK : kSimtK;
  // Split K until there are about two blocks per SM, keeping each split at
  // least 8 K steps long so the atomics stay negligible.
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t base_blocks = static_cast<int64_t>(pairs) * B;
  const int64_t max_splits = std::max<int64_t>(1, N / (8 * step));
  const int64_t splits = std::min<int64_t>(
      std::min<int64_t>(max_splits, 65535),
      std::max<int64_t>(1, (2 * sms + base_blocks - 1) / base_blocks));
  int64_t k_chunk = (N + splits - 1) / splits;
  k_chunk = (k_chunk + step - 1) / step * step;
  const int64_t grid_y = (N + k_chunk - 1) / k_chunk;
  const dim3 grid(pairs, static_cast<unsigned>(grid_y), static_cast<unsigned>(B));
  auto stream = at::cuda::getCurrentCUDAStream();
  FASTGRAM_DISPATCH_CUDA_TYPES(F.scalar_type(), "fastgram_gram_tiles", [&] {
    launch_gram_tiles<scalar_t>(grid, stream, tc, F.const_data_ptr<scalar_t>(),
                                W.data_ptr<float>(), static_cast<int>(C), N, tiles, k_chunk);
  });
  return W;
}

// grad = M F per sample, shaped and laid out like the features `like`.
at::Tensor left_multiply(const at::Tensor& M, const at::Tensor& F, const at::Tensor& like) {
  const int64_t B = F.size(0), C = F.size(1), N = F.size(2);
  at::Tensor out = at::empty({B, C, N}, F.options());
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile),
                  static_cast<unsigned>((C + kTile - 1) / kTile), static_cast<unsigned>(B));
  const bool tc = use_tensor_cores(F);
  auto stream = at::cuda::getCurrentCUDAStream();
  FASTGRAM_DISPATCH_CUDA_TYPES(F.scalar_type(), "fastgram_left_multiply", [&] {
    launch_left_multiply<scalar_t>(grid, stream, tc, M.const_data_ptr<float>(),
                                   F.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                   static_cast<int>(C), N);
  });
  at::Tensor shaped = out.view(like.sizes());
  // Same layout rule as the CPU kernels and the fake implementations.
  const bool channels_last = like.dim() == 4 && !like.is_contiguous() &&
                             like.is_contiguous(at::MemoryFormat::ChannelsLast);
  return channels_last ? shaped.contiguous(at::MemoryFormat::ChannelsLast) : shaped;
}

// M = coef * g * (A + A^T) in fp32, (B, C, C).
at::Tensor symmetrized(const at::Tensor& A_in, const float* g, double coef) {
  at::Tensor A = A_in.contiguous();
  at::Tensor M = at::empty(A.sizes(), A.options().dtype(at::kFloat));
  const int64_t total = A.numel();
  const int C = static_cast<int>(A.size(1));
  auto stream = at::cuda::getCurrentCUDAStream();
  FASTGRAM_DISPATCH_CUDA_TYPES(A.scalar_type(), "fastgram_symmetrize", [&] {
    symmetrize<scalar_t><<<finalize_blocks(total), kFinalizeThreads, 0, stream>>>(
        A.const_data_ptr<scalar_t>(), g, M.data_ptr<float>(), C, total, static_cast<float>(coef));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return M;
}

}  // namespace gpu

namespace {

using namespace gpu;

// --------------------------------------------------------------------------
// operators

at::Tensor gram_forward_cuda(const at::Tensor& features, double scale) {
  check_features(features, "features");
  check_cuda_features(features, "ext_gram_matrix");
  c10::cuda::CUDAGuard guard(features.device());
  at::Tensor F = flat_view(features).contiguous();
  at::Tensor W = gram_workspace(F);
  const int64_t B = F.size(0), C = F.size(1);
  at::Tensor out = at::empty({B, C, C}, F.options());
  const int64_t total = out.numel();
  auto stream = at::cuda::getCurrentCUDAStream();
  FASTGRAM_DISPATCH_CUDA_TYPES(F.scalar_type(), "fastgram_gram_finalize", [&] {
    gram_finalize<scalar_t><<<finalize_blocks(total), kFinalizeThreads, 0, stream>>>(
        W.const_data_ptr<float>(), out.data_ptr<scalar_t>(), static_cast<int>(C), total,
        static_cast<float>(scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor gram_backward_cuda(const at::Tensor& grad_gram, const at::Tensor& features,
                              double scale) {
  check_features(features, "features");
  check_cuda_features(features, "ext_gram_matrix_backward");
  check_gram_like(grad_gram, features, "grad_gram", "features", /*allow_2d=*/false);
  c10::cuda::CUDAGuard guard(features.device());
  at::Tensor F = flat_view(features).contiguous();
  at::Tensor dG = grad_gram.scalar_type() == at::kDouble ? grad_gram.to(at::kFloat) : grad_gram;
  return left_multiply(symmetrized(dG, nullptr, scale), F, features);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgram, CUDA, m) {
  m.impl("ext_gram_matrix", &gram_forward_cuda);
  m.impl("ext_gram_matrix_backward", &gram_backward_cuda);
}

}  // namespace fastgram

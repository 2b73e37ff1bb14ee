// The Gram operators' CPU kernels (see gram_cpu.h for the design) and their
// schemas:
//
//   ext_gram_matrix(Tensor features, float scale) -> Tensor
//   ext_gram_matrix_backward(Tensor grad_gram, Tensor features, float scale) -> Tensor

#include "gram_cpu.h"

#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace fastgram {
namespace {


// Channel tile of the symmetric Gram. Below `kWholeGramChannels` channels one
// GEMM per sample (no symmetry split) is faster: the tiles would be too thin
// for the BLAS kernels to run at full rate.
constexpr int64_t kTileChannels = 128;
constexpr int64_t kWholeGramChannels = 96;
// Below this many multiply-adds (or elements, for the elementwise loops) a
// kernel stays on the calling thread.
constexpr int64_t kMinParallelWork = 1 << 18;
// Columns of F per backward work item: enough for an efficient GEMM.
constexpr int64_t kMinBackwardColumns = 256;

struct TilePair {
  int64_t row0, rows, col0, cols;
};

// Upper-triangle tiles (including the diagonal) of a C x C Gram.
std::vector<TilePair> upper_tiles(int64_t C) {
  const int64_t tile = C < kWholeGramChannels ? C : std::min(C, kTileChannels);
  std::vector<TilePair> pairs;
  for (int64_t i = 0; i < C; i += tile) {
    for (int64_t j = i; j < C; j += tile) {
      pairs.push_back({i, std::min(tile, C - i), j, std::min(tile, C - j)});
    }
  }
  return pairs;
}

// Runs body(begin, end) over [0, items): on ATen's thread pool, one item at a
// time, when the problem has at least kMinParallelWork units of `work`; on
// the calling thread otherwise (waking the pool costs more than small
// problems take, and far more on a busy machine).
template <typename Body>
void run_items(int64_t items, int64_t work, const Body& body) {
  if (work < kMinParallelWork || items < 2 || at::get_num_threads() < 2) {
    body(0, items);
  } else {
    at::parallel_for(0, items, 1, body);
  }
}

// Worker threads do not inherit the caller's dispatch-key state, so every
// ATen call made inside at::parallel_for goes straight to the CPU kernels.
struct BelowAutograd {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autograd_dispatch_keyset_with_ADInplaceOrView};
};

}  // namespace

namespace cpu {

void check_cpu_dtype(const at::Tensor& f, const char* op) {
  TORCH_CHECK(f.scalar_type() == at::kFloat || f.scalar_type() == at::kDouble, op,
              ": the CPU kernels support float32 and float64 features, got ", f.scalar_type());
}

// A (B, C, N) view that BLAS can consume directly: one of the two inner
// strides must be 1 (row-major or channels_last), otherwise copy.
at::Tensor gemm_ready(const at::Tensor& f) {
  at::Tensor flat = flat_view(f).detach();
  if (flat.stride(2) == 1 || flat.stride(1) == 1) {
    return flat;
  }
  return flat.contiguous();
}

template <typename scalar_t>
double symmetric_gram(const at::Tensor& F, double scale, const at::Tensor& target,
                      at::Tensor& gram) {
  const int64_t B = F.size(0), C = F.size(1);
  const auto pairs = upper_tiles(C);
  const int64_t P = static_cast<int64_t>(pairs.size());
  const bool with_target = target.defined();
  const bool per_sample_target = with_target && target.dim() == 3;
  scalar_t* g_base = gram.data_ptr<scalar_t>();
  const scalar_t* t_base = with_target ? target.const_data_ptr<scalar_t>() : nullptr;
  std::vector<double> partial(static_cast<size_t>(B * P), 0.0);
  run_items(B * P, B * C * C * F.size(2), [&](int64_t begin, int64_t end) {
    BelowAutograd below;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / P;
      const TilePair& t = pairs[item % P];
      at::Tensor Fb = F.select(0, b);
      at::Tensor block = gram.select(0, b).narrow(0, t.row0, t.rows).narrow(1, t.col0, t.cols);
      at::mm_out(block, Fb.narrow(0, t.row0, t.rows), Fb.narrow(0, t.col0, t.cols).t());

      scalar_t* g = g_base + b * C * C;
      const scalar_t* tg = per_sample_target ? t_base + b * C * C : t_base;
      const bool diagonal = t.row0 == t.col0;
      double acc = 0.0;
      for (int64_t r = t.row0; r < t.row0 + t.rows; ++r) {
        // On a diagonal tile the lower triangle is the mirror of the upper.
        const int64_t c_begin = diagonal ? r : t.col0;
        for (int64_t c = c_begin; c < t.col0 + t.cols; ++c) {
          const scalar_t v = g[r * C + c] * static_cast<scalar_t>(scale);
          if (with_target) {
            // Targets need not be symmetric: each half gets its own residual.
            const scalar_t upper = v - tg[r * C + c];
            const scalar_t lower = v - tg[c * C + r];
            g[r * C + c] = upper;
            acc += static_cast<double>(upper) * upper;
            if (c != r) {
              g[c * C + r] = lower;
              acc += static_cast<double>(lower) * lower;
            }
          } else {
            g[r * C + c] = v;
            g[c * C + r] = v;
          }
        }
      }
      partial[static_cast<size_t>(item)] = acc;
    }
  });
  // Summed in item order: the loss does not depend on the thread schedule.
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// coef * (A[b] + A[b]^T) for every sample, (B, C, C) contiguous in `dtype`.
// Tiled so that both the row-wise and the transposed reads stay in cache (a
// plain `A + A.transpose(1, 2)` strides through memory and costs as much as
// a small GEMM).
at::Tensor symmetrized(const at::Tensor& A_in, double coef, at::ScalarType dtype) {
  at::Tensor A = A_in.detach().to(dtype).contiguous();
  const int64_t B = A.size(0), C = A.size(1);
  constexpr int64_t kTile = 64;
  const int64_t tiles = (C + kTile - 1) / kTile;
  const int64_t pairs = tiles * (tiles + 1) / 2;
  at::Tensor out = at::empty_like(A);
  AT_DISPATCH_FLOATING_TYPES(dtype, "fastgram_symmetrized", [&] {
    const scalar_t* a_base = A.const_data_ptr<scalar_t>();
    scalar_t* o_base = out.data_ptr<scalar_t>();
    const scalar_t c = static_cast<scalar_t>(coef);
    run_items(B * pairs, B * C * C, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / pairs;
        // Unrank the pair index into (ti, tj) with ti <= tj.
        int64_t k = item % pairs, ti = 0;
        while (k >= tiles - ti) {
          k -= tiles - ti;
          ++ti;
        }
        const int64_t tj = ti + k;
        const scalar_t* a = a_base + b * C * C;
        scalar_t* o = o_base + b * C * C;
        for (int64_t i = ti * kTile; i < std::min(C, (ti + 1) * kTile); ++i) {
          const int64_t j0 = ti == tj ? i : tj * kTile;
          for (int64_t j = j0; j < std::min(C, (tj + 1) * kTile); ++j) {
            const scalar_t v = c * (a[i * C + j] + a[j * C + i]);
            o[i * C + j] = v;
            o[j * C + i] = v;
          }
        }
      }
    });
  });
  return out;
}

// out[b] = M[b] @ F[b] for every sample, with out shaped like `like` (the
// feature map). M is (B, C, C) contiguous in the dtype of F. Work items are
// (sample, column chunk) GEMMs spread over the threads: measured on 2 cores,
// this beats one multithreaded GEMM per sample by about 1.4x and matches
// at::bmm, while also writing channels_last results in place.
at::Tensor left_multiply(const at::Tensor& M, const at::Tensor& F, const at::Tensor& like) {
  // channels_last stays channels_last (its flat view is (C, N) column-major,
  // which BLAS writes directly); every other layout gets a contiguous result.
  const bool channels_last = like.dim() == 4 && !like.is_contiguous() &&
                             like.is_contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty_like(
      like, channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  at::Tensor out3 = flat_view(out);
  const int64_t B = F.size(0), C = F.size(1), N = F.size(2);
  const int64_t threads = at::get_num_threads();
  const int64_t want = std::max<int64_t>(1, (2 * threads + B - 1) / B);
  const int64_t chunk = std::max(kMinBackwardColumns, (N + want - 1) / want);
  const int64_t chunks = (N + chunk - 1) / chunk;
  run_items(B * chunks, B * C * C * N, [&](int64_t begin, int64_t end) {
    BelowAutograd below;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / chunks, n0 = (item % chunks) * chunk;
      const int64_t n = std::min(chunk, N - n0);
      at::Tensor dst = out3.select(0, b).narrow(1, n0, n);
      at::mm_out(dst, M.select(0, b), F.select(0, b).narrow(1, n0, n));
    }
  });
  return out;
}

template double symmetric_gram<float>(const at::Tensor&, double, const at::Tensor&, at::Tensor&);
template double symmetric_gram<double>(const at::Tensor&, double, const at::Tensor&, at::Tensor&);

}  // namespace cpu

namespace {

using namespace cpu;

at::Tensor gram_forward_cpu(const at::Tensor& features, double scale) {
  check_features(features, "features");
  check_cpu_dtype(features, "ext_gram_matrix");
  at::Tensor F = gemm_ready(features);
  at::Tensor gram = at::empty({F.size(0), F.size(1), F.size(1)}, F.options());
  AT_DISPATCH_FLOATING_TYPES(F.scalar_type(), "ext_gram_matrix_cpu", [&] {
    symmetric_gram<scalar_t>(F, scale, at::Tensor(), gram);
  });
  return gram;
}

at::Tensor gram_backward_cpu(const at::Tensor& grad_gram, const at::Tensor& features,
                             double scale) {
  check_features(features, "features");
  check_cpu_dtype(features, "ext_gram_matrix_backward");
  check_gram_like(grad_gram, features, "grad_gram", "features", /*allow_2d=*/false);
  at::Tensor F = gemm_ready(features);
  return left_multiply(symmetrized(grad_gram, scale, F.scalar_type()), F, features);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fastgram, m) {
  m.def("ext_gram_matrix(Tensor features, float scale) -> Tensor");
  m.def("ext_gram_matrix_backward(Tensor grad_gram, Tensor features, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastgram, CPU, m) {
  m.impl("ext_gram_matrix", &gram_forward_cpu);
  m.impl("ext_gram_matrix_backward", &gram_backward_cpu);
}

}  // namespace fastgram

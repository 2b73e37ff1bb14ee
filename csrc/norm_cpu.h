// Shared machinery of the CPU instance-norm and AdaIN operators.
//
// A feature map is seen as (B, C, N): B samples, C channels, N spatial
// positions. Every statistic is per row (sample, channel). Two layouts are
// read in place:
//
//   rows           (contiguous)          element (b, c, n) at (b*C + c)*N + n
//   channels-last  (stride(1) == 1)      element (b, c, n) at (b*N + n)*C + c
//
// Any other strides are made contiguous first. Work is cut into items: one
// row (rows layout) or a group of adjacent channels of one sample
// (channels-last, vectorised across the channels). When there are few
// items, each item's positions are split into chunks as well, so that every
// core gets work.
//
// Numerics. Sums run over blocks of positions that stay in L1: inside a
// block in the input dtype (at most 32 terms per vector lane), across blocks
// in double. Row moments use a per-block centre (the block's own mean,
// rounded): pass 1 over the block finds the centre, pass 2 sums the
// deviations d and d^2 from it, and blocks are merged with Chan's formula in
// double. Nothing cancels catastrophically whatever the row's offset.
// Normalisation is applied as (x - m) * scale + shift with m the row mean
// rounded to the input dtype (x - m is exact for x near m) and the rounding
// residual mean - m folded into `shift` in double.

#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace fastgram {
namespace norm {

enum Activation : int64_t { kNone = 0, kRelu = 1, kLeakyRelu = 2 };

// --------------------------------------------------------------------------
// argument checks (every operator validates before touching memory)

// "(4, 64)", "(63,)": shapes as Python prints them.
inline std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

// A (B, C, H, W) or (B, C, N) float32/float64 CPU tensor with no empty dim.
inline void check_feature_map(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.defined(), op, ": ", name, ": expected a tensor, got None");
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, ": expected a CPU tensor, got one on ",
              t.device());
  TORCH_CHECK(t.dim() == 3 || t.dim() == 4, op, ": ", name,
              ": expected a (B, C, H, W) or (B, C, N) tensor, got shape ", shape_str(t.sizes()));
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              ": expected float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.numel() > 0, op, ": ", name, ": expected a non-empty tensor, got shape ",
              shape_str(t.sizes()));
}

// `t` has exactly `like`'s shape, dtype and device.
inline void check_same_as(const at::Tensor& t, const at::Tensor& like, const char* op,
                          const char* name, const char* like_name) {
  TORCH_CHECK(t.defined(), op, ": ", name, ": expected a tensor, got None");
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, ": expected a tensor on ",
              like.device(), " like ", like_name, ", got one on ", t.device());
  TORCH_CHECK(t.sizes() == like.sizes(), op, ": ", name, ": expected shape ",
              shape_str(like.sizes()), " like ", like_name, ", got ", shape_str(t.sizes()));
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), op, ": ", name, ": expected dtype ",
              like.scalar_type(), " like ", like_name, ", got ", t.scalar_type());
}

// A statistics tensor: shape (rows, C), dtype `dtype`, on the CPU.
inline void check_stats(const at::Tensor& t, int64_t rows, int64_t C, at::ScalarType dtype,
                        const char* op, const char* name) {
  TORCH_CHECK(t.defined(), op, ": ", name, ": expected a tensor, got None");
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, ": expected a CPU tensor, got one on ",
              t.device());
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == C, op, ": ", name,
              ": expected shape (", rows, ", ", C, "), got ", shape_str(t.sizes()));
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, ": expected dtype ", dtype, ", got ",
              t.scalar_type());
}

inline void check_eps(double eps, const char* op) {
  TORCH_CHECK(std::isfinite(eps) && eps > 0.0, op, ": eps: expected a finite number > 0, got ",
              eps);
}

// The unbiased variance divides by N - 1: every row needs two positions.
inline void check_unbiased(bool unbiased, const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK_VALUE(!unbiased || t.numel() / (t.size(0) * t.size(1)) >= 2, op, ": ", name,
                    ": the unbiased variance needs at least 2 spatial positions, got shape ",
                    shape_str(t.sizes()));
}

inline void check_alpha(double alpha, const char* op) {
  TORCH_CHECK(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, op,
              ": alpha: expected a finite number in [0, 1], got ", alpha);
}

// --------------------------------------------------------------------------
// layouts

enum class Layout { kRows, kChannelsLast };

// Channels-last means the (B, C, N) view is a (B, N, C) contiguous tensor
// transposed; for 4-D tensors that is torch.channels_last.
inline bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 ? t.is_contiguous(at::MemoryFormat::ChannelsLast)
                      : t.transpose(1, 2).is_contiguous();
}

inline bool has_layout(const at::Tensor& t, Layout layout) {
  return layout == Layout::kRows ? t.is_contiguous() : is_channels_last(t);
}

// The layout the kernels read `t` in: rows when it is contiguous (which
// wins when both hold, as for C == 1 or N == 1), else channels-last.
// Only valid for tensors that have one of the two.
inline Layout layout_of(const at::Tensor& t) {
  return t.is_contiguous() ? Layout::kRows : Layout::kChannelsLast;
}

// `t` unchanged when the kernels can read it in place, else a contiguous copy.
inline at::Tensor readable(const at::Tensor& t) {
  return (t.is_contiguous() || is_channels_last(t)) ? t : t.contiguous();
}

// A new tensor shaped like `like` whose memory has the given layout.
inline at::Tensor empty_in_layout(const at::Tensor& like, Layout layout) {
  if (layout == Layout::kRows) return at::empty(like.sizes(), like.options());
  if (like.dim() == 4) {
    return at::empty(like.sizes(), like.options().memory_format(at::MemoryFormat::ChannelsLast));
  }
  return at::empty({like.size(0), like.size(2), like.size(1)}, like.options()).transpose(1, 2);
}

// `t` itself when it already has `layout`, else a copy that has it.
inline at::Tensor to_layout(const at::Tensor& t, Layout layout) {
  if (has_layout(t, layout)) return t;
  at::Tensor out = empty_in_layout(t, layout);
  out.copy_(t);
  return out;
}

// --------------------------------------------------------------------------
// work plan

// Channels per channels-last item are capped by the vector registers the
// inner loops keep per channel; positions per block bound the terms each
// vector lane sums before the partial sum moves to double.
constexpr int64_t kMaxGroupBytes = 256;
constexpr int64_t kRowBlock = 256;   // positions per block, rows layout
constexpr int64_t kTileBlock = 32;   // positions per block, channels-last
// Fewer items than this and rows are split into chunks of at least
// kMinChunk positions. Shape-only rules: results do not depend on the
// thread count.
constexpr int64_t kFewItems = 16;
constexpr int64_t kMinChunk = 8192;
// Below this many elements the kernels stay on the calling thread.
constexpr int64_t kMinParallelElements = 1 << 15;
// Channels-last items aim to stay in L2 between their passes.
constexpr int64_t kTileCacheBytes = 1 << 20;

// Channel groups are rounded to 32 bytes of channels whatever the kernels'
// vector width, so every variant cuts the work (and rounds) alike.
template <typename T>
constexpr int64_t kLanes = 32 / sizeof(T);
template <typename T>
constexpr int64_t kMaxGroup = kMaxGroupBytes / sizeof(T);

// One unit of work: channels [c0, c0 + nch) of sample b, positions [n0, n0 + n).
struct Item {
  int64_t b, c0, nch, n0, n;
};

// Where an item's elements lie, relative to its first one.
struct Span {
  int64_t n;       // positions
  int64_t stride;  // elements between positions
  int64_t nch;     // channels (1 in the rows layout)
  bool rows;       // rows layout: vector lanes run over positions, else over channels
};

struct Plan {
  int64_t B, C, N;
  Layout layout;
  int64_t group, groups, splits, chunk;

  int64_t items() const { return B * groups * splits; }
  int64_t elements() const { return B * C * N; }

  Item item(int64_t i) const {
    const int64_t s = i % splits;
    const int64_t g = (i / splits) % groups;
    const int64_t b = i / (splits * groups);
    const int64_t c0 = g * group, n0 = s * chunk;
    return {b, c0, std::min(group, C - c0), n0, std::min(chunk, N - n0)};
  }
  int64_t offset(const Item& it) const {
    return layout == Layout::kRows ? (it.b * C + it.c0) * N + it.n0
                                   : (it.b * N + it.n0) * C + it.c0;
  }
  Span span(const Item& it) const {
    const bool rows = layout == Layout::kRows;
    return {it.n, rows ? 1 : C, it.nch, rows};
  }
  int64_t row(const Item& it) const { return it.b * C + it.c0; }
};

// Channels per channels-last item: as many as fit (up to kMaxGroup) with
// the item's N positions still in L2, but at least a cache line's worth.
template <typename T>
int64_t channel_group(int64_t C, int64_t N) {
  const int64_t line = std::max<int64_t>(kLanes<T>, 64 / static_cast<int64_t>(sizeof(T)));
  int64_t group = kMaxGroup<T>;
  while (group > line && N * group * static_cast<int64_t>(sizeof(T)) > kTileCacheBytes) {
    group /= 2;
  }
  const int64_t c_rounded = (C + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
  return std::min(group, c_rounded);
}

template <typename T>
Plan make_plan(const at::Tensor& t) {
  Plan p;
  p.B = t.size(0);
  p.C = t.size(1);
  p.N = t.numel() / (p.B * p.C);
  p.layout = layout_of(t);
  p.group = p.layout == Layout::kRows ? 1 : channel_group<T>(p.C, p.N);
  p.groups = (p.C + p.group - 1) / p.group;
  const int64_t items = p.B * p.groups;
  int64_t splits = 1;
  if (items < kFewItems && p.N >= 2 * kMinChunk) {
    splits = std::min((kFewItems + items - 1) / items, p.N / kMinChunk);
  }
  // chunks are whole blocks, so the split and unsplit sums block alike
  const int64_t block = p.layout == Layout::kRows ? kRowBlock : kTileBlock;
  p.chunk = ((p.N + splits - 1) / splits + block - 1) / block * block;
  p.splits = (p.N + p.chunk - 1) / p.chunk;
  return p;
}

// body(begin, end) over [0, items): on ATen's thread pool when there is
// enough work to pay for waking it, else on the calling thread.
template <typename Body>
void run_items(int64_t items, int64_t elements, const Body& body) {
  if (elements < kMinParallelElements || items < 2 || at::get_num_threads() < 2) {
    body(0, items);
  } else {
    at::parallel_for(0, items, 1, body);
  }
}

// --------------------------------------------------------------------------
// per-row partial results

// Count, mean and sum of squared deviations, merged with Chan's formula.
struct Moments {
  double n = 0.0, mean = 0.0, m2 = 0.0;

  // From sums s1 = sum(x - c) and s2 = sum((x - c)^2) over n values.
  static Moments shifted(double n, double c, double s1, double s2) {
    return {n, c + s1 / n, std::max(0.0, s2 - s1 * s1 / n)};
  }
  void merge(const Moments& o) {
    if (o.n == 0.0) return;
    const double total = n + o.n;
    const double delta = o.mean - mean;
    mean += delta * (o.n / total);
    m2 += o.m2 + delta * delta * (n * o.n / total);
    n = total;
  }
};

// Backward sums over a row, with h = dy * act'(pre) and d = x - centre:
// sum(h), sum(h * d), sum(d).
struct GradSums {
  double h = 0.0, hd = 0.0, d = 0.0;
  void merge(const GradSums& o) {
    h += o.h;
    hd += o.hd;
    d += o.d;
  }
};

// The divisor of a row's variance: N (biased), or N - 1 (unbiased, the
// AdaIN paper's convention; the operators refuse it for N < 2).
inline double variance_divisor(double n, bool unbiased) { return unbiased ? n - 1.0 : n; }

// A row's normalisation from its moments: the rounded mean (the centre of
// every later (x - centre)), the rounding residual and 1/sqrt(var + eps)
// rounded as it is saved (so forward and backward use the same value).
template <typename T>
struct RowStats {
  T center;
  double residual;
  T rstd;
  double var;
};

template <typename T>
RowStats<T> row_stats(const Moments& m, double eps, bool unbiased = false) {
  const T center = static_cast<T>(m.mean);
  const double var = m.m2 / variance_divisor(m.n, unbiased);
  return {center, m.mean - static_cast<double>(center),
          static_cast<T>(1.0 / std::sqrt(var + eps)), var};
}

// dx = a * (h - hbar) + p * h + b * (x - centre) + c: the instance-norm
// input gradient rstd * w * (h - mean(h) - xhat * mean(h * xhat)), plus a
// passthrough p * h, from a row's sums, with xhat = (x - centre - r) * rstd
// and r = mean(x - centre). h - hbar cancels before any scaling (exactly
// zero for one-position rows, as in the reference). With the unbiased
// variance the xhat term is divided by N - 1 instead of N.
struct GradCoefs {
  double a, hbar, p, b, c;
  double h_xhat;  // sum(h * xhat): the row's weight gradient
};

inline GradCoefs grad_coefs(const GradSums& s, double n, double rstd, double w,
                            double passthrough, bool unbiased = false) {
  const double r = s.d / n;
  const double h_xhat = rstd * (s.hd - r * s.h);
  const double a = rstd * w;
  const double b = -a * rstd * h_xhat / variance_divisor(n, unbiased);
  return {a, s.h / n, passthrough, b, -b * r, h_xhat};
}

// Per-row coefficients from an item's first row on (plain pointers: the
// kernels never touch the std::vectors, whose inline members the baseline
// translation units also instantiate).
template <typename T>
struct AffineRows {  // pre = (x - center) * scale + shift
  const T* center;
  const T* scale;
  const T* shift;
};

template <typename T>
struct GradRows {  // dx = a * (h - hbar) + p * h + b * (x - center) + c
  const T* a;
  const T* hbar;
  const T* p;
  const T* b;
  const T* c;
};

// Per-row coefficients of the elementwise passes, one entry per (b, c) row
// (structure of arrays, so a channels-last item loads them as vectors).
template <typename T>
struct RowAffine {  // y = act((x - center) * scale + shift)
  std::vector<T> center, scale, shift;
  explicit RowAffine(int64_t rows) : center(rows), scale(rows), shift(rows) {}
  AffineRows<T> rows(int64_t row) const {
    return {center.data() + row, scale.data() + row, shift.data() + row};
  }
  void set(int64_t row, T c, double s, double t) {
    center[row] = c;
    scale[row] = static_cast<T>(s);
    shift[row] = static_cast<T>(t);
  }
};

template <typename T>
struct RowGrad {  // dx = a * (h - hbar) + p * h + b * (x - center) + c
  std::vector<T> a, hbar, p, b, c;
  explicit RowGrad(int64_t rows) : a(rows), hbar(rows), p(rows), b(rows), c(rows) {}
  GradRows<T> rows(int64_t row) const {
    return {a.data() + row, hbar.data() + row, p.data() + row, b.data() + row, c.data() + row};
  }
  void set(int64_t row, const GradCoefs& g) {
    a[row] = static_cast<T>(g.a);
    hbar[row] = static_cast<T>(g.hbar);
    p[row] = static_cast<T>(g.p);
    b[row] = static_cast<T>(g.b);
    c[row] = static_cast<T>(g.c);
  }
};

// --------------------------------------------------------------------------
// span kernels
//
// The loops over an item's elements live in norm_kernels.h, compiled once
// per instruction set (norm_kernels_<isa>.cpp, each in its own namespace:
// the extension itself is built for the baseline ISA only) and chosen once
// per process from ATen's CPU capability (norm_dispatch.cpp). This header
// is ISA-neutral: it must not include the at::vec headers, whose types
// depend on the capability macros of the including translation unit.

constexpr int kActivations = 3;

// Calls f(std::integral_constant<int, ACT>) for the runtime activation code.
template <typename F>
void with_activation(int64_t activation, const F& f) {
  switch (activation) {
    case kRelu: f(std::integral_constant<int, kRelu>()); break;
    case kLeakyRelu: f(std::integral_constant<int, kLeakyRelu>()); break;
    default: f(std::integral_constant<int, kNone>()); break;
  }
}

// One instruction set's kernels for one dtype; [ACT] and [PASS] index the
// template variants (PASS: AdaIN's passthrough term p * h).
template <typename T>
struct SpanKernels {
  const char* isa;
  void (*moments)(const Span& s, const T* x, Moments* out);
  void (*centered_sums)(const Span& s, const T* x, const T* center, GradSums* out);
  void (*grad_sums[kActivations])(const Span& s, const T* x, const T* dy, AffineRows<T> a,
                                  T slope, GradSums* out);
  void (*affine[kActivations])(const Span& s, const T* x, T* y, AffineRows<T> a, T slope);
  void (*grad[kActivations][2])(const Span& s, const T* x, const T* dy, T* dx, AffineRows<T> a,
                                GradRows<T> g, T slope);
};

// Every variant's table (defined in its own translation unit).
namespace DEFAULT {
template <typename T>
const SpanKernels<T>& span_kernels();
}
#if defined(__x86_64__) || defined(_M_X64)
#define FASTGRAM_NORM_HAVE_AVX2 1
namespace AVX2 {
template <typename T>
const SpanKernels<T>& span_kernels();
}
#endif

// The table this process uses, chosen on first call (norm_dispatch.cpp).
template <typename T>
const SpanKernels<T>& span_kernels();

// Moments of each channel of a span (out[0..nch)).
template <typename T>
void span_moments(const Span& s, const T* x, Moments* out) {
  span_kernels<T>().moments(s, x, out);
}

// sum(x - center) of each channel of a span, into out[k].d.
template <typename T>
void span_centered_sums(const Span& s, const T* x, const T* center, GradSums* out) {
  span_kernels<T>().centered_sums(s, x, center, out);
}

// The backward sums of each channel of a span; the pre-activation is
// (x - center) * scale + shift (`a` entries from the item's first row on).
template <int ACT, typename T>
void span_grad_sums(const Span& s, const T* x, const T* dy, const RowAffine<T>& a, int64_t row,
                    T slope, GradSums* out) {
  span_kernels<T>().grad_sums[ACT](s, x, dy, a.rows(row), slope, out);
}

// y = act((x - center) * scale + shift) over a span.
template <int ACT, typename T>
void span_affine(const Span& s, const T* x, T* y, const RowAffine<T>& a, int64_t row, T slope) {
  span_kernels<T>().affine[ACT](s, x, y, a.rows(row), slope);
}

// dx = a * (h - hbar) + p * h + b * (x - center) + c over a span,
// h = dy * act'(pre); the passthrough term only where PASS (AdaIN's blend).
template <int ACT, bool PASS, typename T>
void span_grad(const Span& s, const T* x, const T* dy, T* dx, const RowAffine<T>& a,
               const RowGrad<T>& g, int64_t row, T slope) {
  span_kernels<T>().grad[ACT][PASS](s, x, dy, dx, a.rows(row), g.rows(row), slope);
}

// --------------------------------------------------------------------------
// pipelines: reduction stages, then an elementwise pass

// A reduction stage: reduce(item, Partial* out) fills one partial per
// channel of the item; finalize(row, partial) consumes a row's complete
// partial (and typically fills per-row coefficients for the later stages).
template <typename Partial, typename Reduce, typename Finalize>
struct Stage {
  using partial_type = Partial;
  Reduce reduce;
  Finalize finalize;
};

template <typename Partial, typename Reduce, typename Finalize>
Stage<Partial, Reduce, Finalize> make_stage(Reduce reduce, Finalize finalize) {
  return {std::move(reduce), std::move(finalize)};
}

// Unsplit plans: the whole row is in this item; reduce and finalize it at once.
template <typename StageT>
void reduce_item(const Plan& plan, const Item& it, const StageT& stage) {
  typename StageT::partial_type parts[kMaxGroupBytes / sizeof(float)];
  stage.reduce(it, parts);
  for (int64_t k = 0; k < it.nch; ++k) stage.finalize(plan.row(it) + k, parts[k]);
}

// Split plans: reduce every chunk in parallel, then merge each row's chunks
// in chunk order (deterministic) and finalize it.
template <typename StageT>
void reduce_split(const Plan& plan, const StageT& stage) {
  using Partial = typename StageT::partial_type;
  std::vector<Partial> chunks(static_cast<size_t>(plan.B * plan.C * plan.splits));
  run_items(plan.items(), plan.elements(), [&](int64_t begin, int64_t end) {
    Partial parts[kMaxGroupBytes / sizeof(float)];
    for (int64_t i = begin; i < end; ++i) {
      const Item it = plan.item(i);
      stage.reduce(it, parts);
      const int64_t s = it.n0 / plan.chunk;
      for (int64_t k = 0; k < it.nch; ++k) {
        chunks[static_cast<size_t>((plan.row(it) + k) * plan.splits + s)] = parts[k];
      }
    }
  });
  for (int64_t row = 0; row < plan.B * plan.C; ++row) {
    Partial acc = chunks[static_cast<size_t>(row * plan.splits)];
    for (int64_t s = 1; s < plan.splits; ++s) {
      acc.merge(chunks[static_cast<size_t>(row * plan.splits + s)]);
    }
    stage.finalize(row, acc);
  }
}

// Runs the stages in order, then apply(item). Unsplit plans do it all in
// one parallel region, item by item while the item is in cache; split plans
// take one region per stage plus one for apply.
template <typename Apply, typename... Stages>
void run_pipeline(const Plan& plan, const Apply& apply, const Stages&... stages) {
  if (plan.splits == 1) {
    run_items(plan.items(), plan.elements(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Item it = plan.item(i);
        (reduce_item(plan, it, stages), ...);
        apply(it);
      }
    });
    return;
  }
  (reduce_split(plan, stages), ...);
  run_items(plan.items(), plan.elements(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) apply(plan.item(i));
  });
}

// A do-nothing apply, for pipelines that only reduce.
struct NoApply {
  void operator()(const Item&) const {}
};

}  // namespace norm
}  // namespace fastgram

// The span kernels of the CPU instance-norm and AdaIN operators, written
// once against at::vec and compiled once per instruction set.
//
// Only norm_kernels_<isa>.cpp include this file, after norm_cpu.h and after
// <ATen/cpu/vec/vec.h> with that ISA's CPU_CAPABILITY macros defined: the
// code below lands in fastgram::norm::CPU_CAPABILITY, next to the matching
// at::vec::CPU_CAPABILITY::Vectorized, so every variant's functions and
// vector types are distinct entities (no ODR clash between variants).
//
// Loop shapes keep the working set in registers: accumulators and
// per-channel parameters are a fixed number of named vectors, full vectors
// run in a loop with no per-iteration lane count, and a row's partial last
// vector is handled once, after it. In the channels-last layout each block
// of positions is walked once per channel vector (that vector's parameters
// and accumulators stay in registers across the positions; the block is in
// L1 for the later channel vectors).

#ifndef CPU_CAPABILITY
#error "define CPU_CAPABILITY (and include <ATen/cpu/vec/vec.h>) before norm_kernels.h"
#endif

namespace fastgram {
namespace norm {
namespace CPU_CAPABILITY {

using at::vec::Vectorized;

template <typename T>
constexpr int64_t kWidth = Vectorized<T>::size();

static_assert(kMaxGroup<float> % kWidth<float> == 0 && kMaxGroup<double> % kWidth<double> == 0,
              "a channel group must be whole vectors");

#if defined(CPU_CAPABILITY_AVX2) || defined(CPU_CAPABILITY_AVX512)
#define FASTGRAM_NORM_NATIVE_VEC 1
#endif

// --------------------------------------------------------------------------
// vector building blocks

// Loads/stores `count` lanes (all of them when count >= lanes). Forced
// inline: the compiler otherwise keeps the memcpy-based partial path out
// of line and pays a call per vector.
template <typename T>
C10_ALWAYS_INLINE Vectorized<T> load(const T* p, int64_t count) {
  return count >= kWidth<T> ? Vectorized<T>::loadu(p) : Vectorized<T>::loadu(p, count);
}

template <typename T>
C10_ALWAYS_INLINE void store(const Vectorized<T>& v, T* p, int64_t count) {
  if (count >= kWidth<T>) {
    v.store(p);
  } else {
    v.store(p, static_cast<int>(count));
  }
}

// a * b + c: one fused instruction where the ISA has it (an ISO -std=c++17
// build does not contract a * b + c on its own). The portable
// at::vec::fmadd is not always inlined, which costs a call per vector.
template <typename T>
C10_ALWAYS_INLINE Vectorized<T> mul_add(const Vectorized<T>& a, const Vectorized<T>& b,
                                        const Vectorized<T>& c) {
#ifdef FASTGRAM_NORM_NATIVE_VEC
  return at::vec::fmadd(a, b, c);
#else
  return a * b + c;
#endif
}

// Lane sum in a fixed order.
template <typename T>
inline T lane_sum(const Vectorized<T>& v) {
  T buf[kWidth<T>];
  v.store(buf);
  T s = 0;
  for (int64_t i = 0; i < kWidth<T>; ++i) s += buf[i];
  return s;
}

#ifndef FASTGRAM_NORM_NATIVE_VEC
// The portable at::vec build runs its comparisons and blends lane by lane
// with branches; its lane-wise selects go through the compiler's vector
// extensions instead, on 16-byte pieces (the width every x86-64 and
// aarch64 target has natively). (spelled per type: GCC mishandles
// vector_size on a dependent alias)
typedef float NativeFloat16 __attribute__((vector_size(16)));
typedef double NativeDouble16 __attribute__((vector_size(16)));
template <typename T>
using Native16 = std::conditional_t<std::is_same_v<T, float>, NativeFloat16, NativeDouble16>;
template <typename T>
constexpr int64_t kPieces = sizeof(Vectorized<T>) / 16;
#endif

// Lanes of `a` where pre < 0 (NEGATIVE) or pre > 0 (!NEGATIVE), else of `b`;
// NaN lanes of pre take `b`.
template <bool NEGATIVE, typename T>
C10_ALWAYS_INLINE Vectorized<T> select_by_sign(const Vectorized<T>& pre, const Vectorized<T>& a,
                                               const Vectorized<T>& b) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double only");
#ifdef FASTGRAM_NORM_NATIVE_VEC
  // ordered compares: false (take b) for NaN lanes
  const Vectorized<T> zero(0);
  return Vectorized<T>::blendv(b, a, NEGATIVE ? pre < zero : pre > zero);
#else
  static_assert(sizeof(Vectorized<T>) % 16 == 0, "vector width must be a multiple of 16 bytes");
  Native16<T> p[kPieces<T>], x[kPieces<T>], y[kPieces<T>];
  pre.store(p);
  a.store(x);
  b.store(y);
  const Native16<T> zero{};
  for (int64_t i = 0; i < kPieces<T>; ++i) {
    y[i] = (NEGATIVE ? p[i] < zero : p[i] > zero) ? x[i] : y[i];
  }
  return Vectorized<T>::loadu(y);
#endif
}

// act(pre); NaN passes through, as in torch.
template <int ACT, typename T>
C10_ALWAYS_INLINE Vectorized<T> activate(const Vectorized<T>& pre, const Vectorized<T>& slope) {
  if constexpr (ACT == kNone) {
    return pre;
  } else {
    return select_by_sign<true>(pre, ACT == kRelu ? Vectorized<T>(0) : pre * slope, pre);
  }
}

// dy * act'(pre), with act'(0) taken as the negative side, as torch does
// (and dy's value dropped, not multiplied by 0, where relu masks it).
template <int ACT, typename T>
C10_ALWAYS_INLINE Vectorized<T> activation_grad(const Vectorized<T>& dy, const Vectorized<T>& pre,
                                                const Vectorized<T>& slope) {
  if constexpr (ACT == kNone) {
    return dy;
  } else {
    return select_by_sign<false>(pre, dy, ACT == kRelu ? Vectorized<T>(0) : dy * slope);
  }
}

// --------------------------------------------------------------------------
// span geometry

// Channel vectors of a span (1 in the rows layout) and the lanes of vector v
// (the last one may be partial).
template <typename T>
C10_ALWAYS_INLINE int64_t vecs_of(const Span& s) {
  return s.rows ? 1 : (s.nch + kWidth<T> - 1) / kWidth<T>;
}

template <typename T>
C10_ALWAYS_INLINE int64_t lanes_of(const Span& s, int64_t v) {
  return std::min(kWidth<T>, s.nch - v * kWidth<T>);
}

// A per-channel parameter as channel vector v uses it: broadcast in the rows
// layout (one channel), loaded across the channels otherwise.
template <typename T>
C10_ALWAYS_INLINE Vectorized<T> param(const Span& s, const T* per_channel, int64_t v) {
  if (s.rows) return Vectorized<T>(per_channel[0]);
  return load(per_channel + v * kWidth<T>, lanes_of<T>(s, v));
}

// The second input of a two-input op, or zeros for one-input ops.
template <bool DY, typename T>
C10_ALWAYS_INLINE Vectorized<T> load_dy(const T* dy, int64_t count) {
  if constexpr (DY) {
    return load(dy, count);
  } else {
    (void)dy;
    (void)count;
    return Vectorized<T>(0);
  }
}

template <int K, typename T>
using Vecs = std::array<Vectorized<T>, K>;

template <int K, typename T>
C10_ALWAYS_INLINE void accumulate(Vecs<K, T>& acc, const Vecs<K, T>& t) {
  for (int k = 0; k < K; ++k) acc[k] += t[k];
}

// --------------------------------------------------------------------------
// reductions: K sums of f(x, dy) -> Vecs<K>, the functor made per channel
// vector by make_f(v) so that its parameters are registers

// Sums over m vectors at x + j * step, each of `lanes` lanes (partial lanes
// zero-filled; the caller drops those lanes). Two accumulator sets break the
// add dependency chain; they are combined in a fixed order.
template <int K, bool DY, typename T, typename F>
C10_ALWAYS_INLINE Vecs<K, T> strided_sums(int64_t m, int64_t step, int64_t lanes, const T* x,
                                          const T* dy, const F& f) {
  using Vec = Vectorized<T>;
  Vecs<K, T> a, b;
  a.fill(Vec(0));
  b.fill(Vec(0));
  int64_t j = 0;
  if (lanes >= kWidth<T>) {
    for (; j + 2 <= m; j += 2) {
      const int64_t o0 = j * step, o1 = o0 + step;
      accumulate<K, T>(a, f(Vec::loadu(x + o0), load_dy<DY>(dy + o0, kWidth<T>)));
      accumulate<K, T>(b, f(Vec::loadu(x + o1), load_dy<DY>(dy + o1, kWidth<T>)));
    }
  }
  for (; j < m; ++j) {
    const int64_t o = j * step;
    accumulate<K, T>(a, f(load(x + o, lanes), load_dy<DY>(dy + o, lanes)));
  }
  for (int k = 0; k < K; ++k) a[k] += b[k];
  return a;
}

// K sums of each channel of one block (at most kRowBlock / kTileBlock
// positions): out[k][channel].
template <typename T, int K>
using BlockSums = std::array<std::array<T, kMaxGroup<T>>, K>;

template <int K, bool DY, typename T, typename MakeF>
C10_ALWAYS_INLINE void block_sums(const Span& s, const T* x, const T* dy, const MakeF& make_f,
                                  BlockSums<T, K>& out) {
  using Vec = Vectorized<T>;
  constexpr int64_t L = kWidth<T>;
  if (s.rows) {
    const auto f = make_f(int64_t{0});
    const int64_t full = s.n / L, tail = s.n - full * L;
    Vecs<K, T> acc = strided_sums<K, DY>(full, L, L, x, dy, f);
    if (tail > 0) {  // the zero-filled lanes past the row end must not count
      const int64_t o = full * L;
      const Vecs<K, T> t = f(load(x + o, tail), load_dy<DY>(dy + o, tail));
      for (int k = 0; k < K; ++k) acc[k] += Vec::set(Vec(0), t[k], tail);
    }
    for (int k = 0; k < K; ++k) out[k][0] = lane_sum(acc[k]);
    return;
  }
  for (int64_t v = 0; v < vecs_of<T>(s); ++v) {
    const int64_t o = v * L, lanes = lanes_of<T>(s, v);
    const Vecs<K, T> acc =
        strided_sums<K, DY>(s.n, s.stride, lanes, x + o, DY ? dy + o : dy, make_f(v));
    for (int k = 0; k < K; ++k) store(acc[k], out[k].data() + o, lanes);
  }
}

// Calls f(block_span, element_offset) for consecutive blocks of a span.
template <typename F>
C10_ALWAYS_INLINE void for_each_block(const Span& s, const F& f) {
  const int64_t block = s.rows ? kRowBlock : kTileBlock;
  for (int64_t p0 = 0; p0 < s.n; p0 += block) {
    Span blk = s;
    blk.n = std::min(block, s.n - p0);
    f(blk, p0 * s.stride);
  }
}

// --------------------------------------------------------------------------
// elementwise: y = f(x, dy) over a span, f made per channel vector

template <bool DY, typename T, typename F>
C10_ALWAYS_INLINE void strided_map(int64_t m, int64_t step, int64_t lanes, const T* x,
                                   const T* dy, T* y, const F& f) {
  if (lanes >= kWidth<T>) {
    for (int64_t j = 0; j < m; ++j) {
      const int64_t o = j * step;
      f(Vectorized<T>::loadu(x + o), load_dy<DY>(dy + o, kWidth<T>)).store(y + o);
    }
    return;
  }
  for (int64_t j = 0; j < m; ++j) {
    const int64_t o = j * step;
    store(f(load(x + o, lanes), load_dy<DY>(dy + o, lanes)), y + o, lanes);
  }
}

template <bool DY, typename T, typename MakeF>
C10_ALWAYS_INLINE void span_map(const Span& s, const T* x, const T* dy, T* y,
                                const MakeF& make_f) {
  constexpr int64_t L = kWidth<T>;
  if (s.rows) {
    const auto f = make_f(int64_t{0});
    const int64_t full = s.n / L, tail = s.n - full * L;
    strided_map<DY>(full, L, L, x, dy, y, f);
    const int64_t o = full * L;
    if (tail > 0) strided_map<DY>(1, 0, tail, x + o, DY ? dy + o : dy, y + o, f);
    return;
  }
  for_each_block(s, [&](const Span& blk, int64_t off) {
    for (int64_t v = 0; v < vecs_of<T>(blk); ++v) {
      const int64_t o = off + v * L;
      strided_map<DY>(blk.n, blk.stride, lanes_of<T>(blk, v), x + o, DY ? dy + o : dy, y + o,
                      make_f(v));
    }
  });
}

// --------------------------------------------------------------------------
// the kernels (see the wrappers in norm_cpu.h)

template <typename T>
void moments(const Span& s, const T* x, Moments* out) {
  using Vec = Vectorized<T>;
  for (int64_t k = 0; k < s.nch; ++k) out[k] = Moments();
  for_each_block(s, [&](const Span& blk, int64_t off) {
    const T* xb = x + off;
    BlockSums<T, 1> total;
    block_sums<1, false>(blk, xb, xb, [](int64_t) {
      return [](const Vec& v, const Vec&) { return Vecs<1, T>{v}; };
    }, total);
    std::array<T, kMaxGroup<T>> center{};  // zeroed: keeps -Wmaybe-uninitialized quiet
    for (int64_t k = 0; k < blk.nch; ++k) center[k] = total[0][k] / static_cast<T>(blk.n);
    BlockSums<T, 2> dev;
    block_sums<2, false>(blk, xb, xb, [&](int64_t v) {
      const Vec c = param(blk, center.data(), v);
      return [c](const Vec& xv, const Vec&) {
        const Vec d = xv - c;
        return Vecs<2, T>{d, d * d};
      };
    }, dev);
    for (int64_t k = 0; k < blk.nch; ++k) {
      out[k].merge(Moments::shifted(static_cast<double>(blk.n), center[k], dev[0][k], dev[1][k]));
    }
  });
}

template <typename T>
void centered_sums(const Span& s, const T* x, const T* center, GradSums* out) {
  using Vec = Vectorized<T>;
  for (int64_t k = 0; k < s.nch; ++k) out[k] = GradSums();
  for_each_block(s, [&](const Span& blk, int64_t off) {
    BlockSums<T, 1> sums;
    block_sums<1, false>(blk, x + off, x + off, [&](int64_t v) {
      const Vec c = param(blk, center, v);
      return [c](const Vec& xv, const Vec&) { return Vecs<1, T>{xv - c}; };
    }, sums);
    for (int64_t k = 0; k < blk.nch; ++k) out[k].d += sums[0][k];
  });
}

template <int ACT, typename T>
void grad_sums(const Span& s, const T* x, const T* dy, AffineRows<T> a, T slope,
               GradSums* out) {
  using Vec = Vectorized<T>;
  for (int64_t k = 0; k < s.nch; ++k) out[k] = GradSums();
  const Vec slope_v(slope);
  for_each_block(s, [&](const Span& blk, int64_t off) {
    BlockSums<T, 3> sums;
    block_sums<3, true>(blk, x + off, dy + off, [&](int64_t v) {
      const Vec c = param(blk, a.center, v);
      const Vec sc = ACT == kNone ? Vec(0) : param(blk, a.scale, v);
      const Vec sh = ACT == kNone ? Vec(0) : param(blk, a.shift, v);
      return [c, sc, sh, slope_v](const Vec& xv, const Vec& gv) {
        const Vec d = xv - c;
        Vec h = gv;
        if constexpr (ACT != kNone) h = activation_grad<ACT>(gv, mul_add(d, sc, sh), slope_v);
        return Vecs<3, T>{h, h * d, d};
      };
    }, sums);
    for (int64_t k = 0; k < blk.nch; ++k) {
      out[k].h += sums[0][k];
      out[k].hd += sums[1][k];
      out[k].d += sums[2][k];
    }
  });
}

template <int ACT, typename T>
void affine(const Span& s, const T* x, T* y, AffineRows<T> a, T slope) {
  using Vec = Vectorized<T>;
  const Vec slope_v(slope);
  span_map<false>(s, x, x, y, [&](int64_t v) {
    const Vec c = param(s, a.center, v), sc = param(s, a.scale, v), sh = param(s, a.shift, v);
    return [c, sc, sh, slope_v](const Vec& xv, const Vec&) {
      return activate<ACT>(mul_add(xv - c, sc, sh), slope_v);
    };
  });
}

template <int ACT, bool PASS, typename T>
void grad(const Span& s, const T* x, const T* dy, T* dx, AffineRows<T> a, GradRows<T> g,
          T slope) {
  using Vec = Vectorized<T>;
  const Vec slope_v(slope);
  span_map<true>(s, x, dy, dx, [&](int64_t v) {
    const Vec c = param(s, a.center, v);
    const Vec sc = ACT == kNone ? Vec(0) : param(s, a.scale, v);
    const Vec sh = ACT == kNone ? Vec(0) : param(s, a.shift, v);
    const Vec ga = param(s, g.a, v), gh = param(s, g.hbar, v);
    const Vec gp = PASS ? param(s, g.p, v) : Vec(0);
    const Vec gb = param(s, g.b, v), gc = param(s, g.c, v);
    return [=](const Vec& xv, const Vec& gv) {
      const Vec d = xv - c;
      Vec h = gv;
      if constexpr (ACT != kNone) h = activation_grad<ACT>(gv, mul_add(d, sc, sh), slope_v);
      Vec rest = mul_add(gb, d, gc);
      if constexpr (PASS) rest = mul_add(gp, h, rest);
      return mul_add(ga, h - gh, rest);
    };
  });
}

// --------------------------------------------------------------------------
// this variant's table

#define FASTGRAM_NORM_STR2(x) #x
#define FASTGRAM_NORM_STR(x) FASTGRAM_NORM_STR2(x)

template <typename T>
const SpanKernels<T>& span_kernels() {
  static const SpanKernels<T> table = {
      FASTGRAM_NORM_STR(CPU_CAPABILITY),
      &moments<T>,
      &centered_sums<T>,
      {&grad_sums<kNone, T>, &grad_sums<kRelu, T>, &grad_sums<kLeakyRelu, T>},
      {&affine<kNone, T>, &affine<kRelu, T>, &affine<kLeakyRelu, T>},
      {{&grad<kNone, false, T>, &grad<kNone, true, T>},
       {&grad<kRelu, false, T>, &grad<kRelu, true, T>},
       {&grad<kLeakyRelu, false, T>, &grad<kLeakyRelu, true, T>}},
  };
  return table;
}

template const SpanKernels<float>& span_kernels<float>();
template const SpanKernels<double>& span_kernels<double>();

#undef FASTGRAM_NORM_STR
#undef FASTGRAM_NORM_STR2
#undef FASTGRAM_NORM_NATIVE_VEC

}  // namespace CPU_CAPABILITY
}  // namespace norm
}  // namespace fastgram

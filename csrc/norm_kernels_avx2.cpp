// The span kernels built for AVX2 + FMA, in fastgram::norm::AVX2, without
// changing the extension's compiler flags: a target pragma covers only the
// code after it.
//
// Everything that is not capability-specific is included first, compiled
// for the baseline ISA: inline functions and template instantiations from
// those headers may be merged by the linker with the copies other
// translation units emit, so none of them may contain AVX2 instructions
// (the code that runs on a CPU without AVX2 could otherwise pick them up).
// The at::vec headers come after the pragma with CPU_CAPABILITY=AVX2: their
// types and functions live in at::vec::AVX2 and cannot clash with the
// DEFAULT ones. Only x86-64 has this variant.

#include "norm_cpu.h"

#if defined(__x86_64__) || defined(_M_X64)

// what <ATen/cpu/vec/vec.h> pulls in outside its own CPU_CAPABILITY namespaces
#include <ATen/AccumulateType.h>
#include <ATen/NumericUtils.h>
#include <ATen/jiterator_macros.h>
#include <ATen/native/Math.h>
#include <ATen/native/quantized/AffineQuantizerBase.h>
#include <c10/util/BFloat16-math.h>
#include <c10/util/MathConstants.h>
#include <c10/util/copysign.h>

#include <cfloat>
#include <climits>
#include <cstring>
#include <functional>
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

// The target pragma does not define __AVX__ in C++, and sleef.h (which the
// AVX2 at::vec headers call into) declares its 256-bit functions only under it.
#ifndef __AVX__
#define __AVX__ 1
#define FASTGRAM_NORM_DEFINED_AVX
#endif
#define SLEEF_STATIC_LIBS
#include <sleef.h>
#ifdef FASTGRAM_NORM_DEFINED_AVX
#undef __AVX__
#undef FASTGRAM_NORM_DEFINED_AVX
#endif

#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include <ATen/cpu/vec/vec.h>

#include "norm_kernels.h"

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif  // x86-64

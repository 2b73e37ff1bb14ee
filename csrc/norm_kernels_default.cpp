// The span kernels built for the baseline instruction set (whatever the
// extension's flags give: SSE2 on x86-64), in fastgram::norm::DEFAULT. The
// fallback when ATen reports no AVX2 (or ATEN_CPU_CAPABILITY=default).

#include "norm_cpu.h"

#define CPU_CAPABILITY DEFAULT
#define CPU_CAPABILITY_DEFAULT
#include <ATen/cpu/vec/vec.h>

#include "norm_kernels.h"

#!/usr/bin/env bash
# Compile-and-link check of the extension's CUDA sources (nothing runs on a
# GPU). Called by .ci/run inside its virtual environment. Skips, with a
# message and exit 0, where there is no nvcc or torch is not a CUDA build;
# fails (non-zero) if the CUDA build breaks or its kernels do not register.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
start=$(date +%s)

reason=$("$PYTHON" - <<'PY'
from fastgram.backends.ext import build as ext_build
print(ext_build.cuda_build_possible() or "")
PY
)
if [ -n "$reason" ]; then
    echo "ext_checks: CUDA compile check skipped: $reason"
    exit 0
fi

# A throwaway cache, so the check always compiles the current sources, for
# Ampere and Hopper (what the GPU machines have) unless told otherwise.
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
export FASTGRAM_EXT_CACHE="$cache" FASTGRAM_EXT_CUDA=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export MAX_JOBS="${MAX_JOBS:-2}"

"$PYTHON" - <<'PY'
import torch

from fastgram.backends.ext import build as ext_build

built = ext_build.build_jit()
for op in ("ext_gram_matrix", "ext_gram_matrix_backward", "ext_style_loss",
           "ext_style_loss_backward"):
    if not torch._C._dispatch_has_kernel_for_dispatch_key(f"fastgram::{op}", "CUDA"):
        raise SystemExit(f"ext_checks: fastgram::{op} has no CUDA kernel in {built.path}")
print(f"ext_checks: CUDA sources compiled and linked ({built.path})")
PY
echo "ext_checks: done in $(( $(date +%s) - start )) s"

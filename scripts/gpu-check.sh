#!/usr/bin/env bash
# The real-GPU check, run from the device kit on a GPU machine that has no Rust, no
# network and perhaps no Vulkan loader (the lent H100/H200; ../shared/DEVICE.md):
#
#   scripts/device-kit.sh                # here: builds the kit into .device/
#   bash scripts/gpu-check.sh "$OUT"     # there, from the repository root, .device carried
#
# (docs/performance.md, "Running on a real GPU", gives the exact run call.) It unpacks
# .device/bin.tar.xz (wgtrain, matmul_probe and the GPU test executable, tests/gpu), puts
# the Vulkan loader packages of .device/gl/ in place when the machine has no libvulkan,
# then runs each step with its own time limit, never past the whole check's budget (450 s:
# under 8 minutes with the unpacking), and writes into RESULTS_DIR at most 8 files, none
# over 16 MiB, no folder: summary.txt (each step's exit code and seconds, then issue 27's
# goals each next to its number), devices.log, tests.log, bench.jsonl, profile.log,
# matmul_probe.log and logs.tar.gz (every step's log, the Chrome trace). A failed or
# timed-out step is recorded and the check goes on. Exit 0 when every step passed, else 1.
#
# For a dry run on a software adapter (lavapipe): GPU_CHECK_SCALE=N multiplies every limit
# and the budget, GPU_CHECK_SAMPLES=N shortens the benches' epochs, GPU_CHECK_SYSROOT=DIR
# unpacks the loader packages into DIR (and puts its libraries on LD_LIBRARY_PATH) even
# where libvulkan is installed.
set -uo pipefail
cd "$(dirname "$0")/.."

results=${1:?usage: scripts/gpu-check.sh RESULTS_DIR}
mkdir -p "$results"
results=$(cd "$results" && pwd)
scale=${GPU_CHECK_SCALE:-1}
budget=$((450 * scale))
deadline=$((SECONDS + budget))
kit=.device
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
logs="$work/logs"
mkdir -p "$logs" "$work/bin"
summary="$results/summary.txt"
: >"$summary"
say() { printf '%s\n' "$*" | tee -a "$summary"; }

say "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), commit $(tr "\n" " " <"$kit/COMMIT" 2>/dev/null || echo unknown), budget ${budget} s"

# --- The kit ---------------------------------------------------------------------------
for f in "$kit/bin.tar.xz" "$kit/mnist/train-images-idx3-ubyte.gz"; do
    [ -f "$f" ] || {
        say "error: $f is missing: build the kit with scripts/device-kit.sh and carry .device"
        exit 2
    }
done
# xz through tar where the machine has xz, else Python's tarfile (which reads xz itself).
if command -v xz >/dev/null; then
    tar -xJf "$kit/bin.tar.xz" -C "$work/bin"
else
    python3 -m tarfile -e "$kit/bin.tar.xz" "$work/bin"
fi || {
    say "error: could not unpack $kit/bin.tar.xz (neither xz nor python3 worked)"
    exit 2
}
bin="$work/bin"
export MNIST_DIR="$PWD/$kit/mnist" XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export WGTRAIN_BIN="$bin/wgtrain" # the CLI tests of the test executable run this copy

# The Vulkan loader: wgtrain opens libvulkan.so.1 at run time.
if [ -n "${GPU_CHECK_SYSROOT:-}" ] ||
    ! { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
    root=${GPU_CHECK_SYSROOT:-/}
    mkdir -p "$root"
    for f in "$kit"/gl/*.deb; do dpkg -x "$f" "$root"; done
    if [ "$root" = / ]; then
        ldconfig
    else
        export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    say "vulkan loader: unpacked $(ls "$kit"/gl/*.deb | wc -l) packages of $kit/gl into $root"
fi

# step NAME LIMIT COMMAND...: runs COMMAND for at most LIMIT seconds (times the scale, and
# no longer than the budget leaves), output in NAME.log; records exit code and seconds.
failed=0
step() {
    local name=$1 limit=$(($2 * scale))
    shift 2
    local left=$((deadline - SECONDS))
    if [ "$left" -lt 5 ]; then
        say "$(printf '%-22s %-9s %5s  %s' "$name" skipped - "no time left in the ${budget} s budget")"
        failed=1
        return
    fi
    [ "$limit" -le "$left" ] || limit=$left
    local start=$SECONDS rc
    timeout -k 5 "$limit" "$@" >"$logs/$name.log" 2>&1
    rc=$?
    local status=ok
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status="timeout"
    elif [ "$rc" -ne 0 ]; then
        status="rc=$rc"
    fi
    [ "$status" = ok ] || failed=1
    say "$(printf '%-22s %-9s %4ss  limit %4ss' "$name" "$status" $((SECONDS - start)) "$limit")"
}

# --- The steps ---------------------------------------------------------------------------
step devices 20 "$bin/wgtrain" devices
# No hardware adapter: the driver's ICD may sit where the loader does not look.
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! grep -q 'DiscreteGpu\|IntegratedGpu' "$logs/devices.log" && [ -f "$nvidia_icd" ]; then
    export VK_DRIVER_FILES=$nvidia_icd
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    say "no hardware adapter found: VK_DRIVER_FILES=$nvidia_icd"
    step devices_icd 20 "$bin/wgtrain" devices
    cat "$logs/devices_icd.log" >>"$logs/devices.log"
fi

samples=()
[ -z "${GPU_CHECK_SAMPLES:-}" ] || samples=(--samples "$GPU_CHECK_SAMPLES")
bench=("$bin/wgtrain" bench --device gpu --gpu-only --json "${samples[@]}")
# Issue 27's goals first: one model at batch 64 and 512, the f32 matmul at 4096^3, a
# population of 256; then the profile with its roofline fractions.
step bench 40 "${bench[@]}" --batch-sizes 64,128,512
step matmul_probe 40 "$bin/matmul_probe" 64 --large
step bench_population_1 25 "${bench[@]}" --batch-sizes 64 --population 1
step bench_population_16 35 "${bench[@]}" --batch-sizes 64 --population 16
step bench_population_256 60 "${bench[@]}" --batch-sizes 64 --population 256
step profile 30 "$bin/wgtrain" profile --steps 200 --trace "$logs/trace.json"

# Every GPU-side test, in three groups (one process each, so that a hang costs one group):
# the kernel parity tests, the step fusions against the unfused step, and the engines.
# Each group names its tests in full with --exact: libtest's filters match substrings, so
# a module filter such as `population::` would also run parity_population's tests.
tests="$bin/gpu-tests"
names=$("$tests" --list 2>/dev/null | sed -n 's/^\([a-z0-9_]*::.*\): test$/\1/p')
[ -n "$names" ] || say "error: $tests --list printed no tests: $("$tests" --list 2>&1 | tail -1)"
parity=() fusion=() engines=()
for t in $names; do
    case ${t%%::*} in
    parity_*) parity+=("$t") ;;
    fusion | fusion_*) fusion+=("$t") ;;
    *) engines+=("$t") ;;
    esac
done
# (An empty group would run every test: each needs at least one test.)
[ "${#parity[@]}" -eq 0 ] || step tests_parity 90 "$tests" --exact "${parity[@]}"
[ "${#fusion[@]}" -eq 0 ] || step tests_fusion 45 "$tests" --exact "${fusion[@]}"
[ "${#engines[@]}" -eq 0 ] || step tests_engines 100 "$tests" --exact "${engines[@]}"
[ -n "$names" ] || failed=1

step bench_f16 20 "${bench[@]}" --batch-sizes 64,512 --precision f16
step bench_unfused 20 "${bench[@]}" --batch-sizes 64,512 --fuse none

# --- The results -------------------------------------------------------------------------
cat "$logs"/bench*.log 2>/dev/null | grep '^{' >"$results/bench.jsonl"
cat "$logs"/tests_*.log >"$results/tests.log" 2>/dev/null
for f in devices profile matmul_probe; do
    cp "$logs/$f.log" "$results/" 2>/dev/null
done
# Each group's count (a group stopped at its limit prints no "test result" line).
tally() { # NAME TESTS
    [ -f "$logs/$1.log" ] || return 0
    local ok failed ignored
    ok=$(grep -c '^test .* \.\.\. ok$' "$logs/$1.log")
    failed=$(grep -c '^test .* \.\.\. FAILED$' "$logs/$1.log")
    ignored=$(grep -c '^test .* \.\.\. ignored' "$logs/$1.log")
    say "$(printf '  %-20s %3s passed, %s failed, %s ignored, %s not finished, of %s' "$1" \
        "$ok" "$failed" "$ignored" $(($2 - ok - failed - ignored)) "$2")"
}
tally tests_parity "${#parity[@]}"
tally tests_fusion "${#fusion[@]}"
tally tests_engines "${#engines[@]}"
grep -h '^test result\|FAILED\|panicked' "$logs"/tests_*.log 2>/dev/null | sed 's/^/  /' | tee -a "$summary"

# goals: issue 27's targets (H100 SXM) next to the measured numbers.
json() { grep -o "\"$2\":[^,}]*" <<<"$1" | head -1 | cut -d: -f2 | tr -d '"'; }
row() { grep -s "\"path\":\"gpu\",\"batch_size\":$1," "$logs/bench.log" | head -1; }
goal() { # NAME VALUE OP TARGET UNIT
    local met=no
    if [ -z "$2" ]; then
        met="not measured"
    elif awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN { exit !(op == "<=" ? v <= t : v >= t) }'; then
        met=yes
    fi
    say "$(printf '  %-46s %12s %s %-10s %s' "$1" "${2:--}" "$3" "$4 $5" "$met")"
}
say "goals (issue 27 item 5, H100 SXM; scale by memory bandwidth for other cards):"
r64=$(row 64)
if [ -n "$r64" ]; then
    steps=$(awk -v n="$(json "$r64" samples)" 'BEGIN { print int((n + 63) / 64) }')
    us=$(awk -v s="$(json "$r64" epoch_seconds)" -v k="$steps" 'BEGIN { printf "%.2f", s * 1e6 / k }')
    sps=$(awk -v x="$(json "$r64" samples_per_second)" 'BEGIN { printf "%.0f", x }')
fi
goal "one model, batch 64: time per step" "${us:-}" "<=" 20 us
goal "one model, batch 64: samples per second" "${sps:-}" ">=" 3000000 /s
r512=$(row 512)
[ -z "$r512" ] || ms=$(awk -v s="$(json "$r512" epoch_seconds)" -v n="$(json "$r512" samples)" \
    'BEGIN { printf "%.3f", s * 1e3 * 60000 / n }')
goal "one model, batch 512: time per epoch (60000)" "${ms:-}" "<=" 5 ms
pop=$(grep -s '"members":256,' "$logs/bench_population_256.log" | head -1)
[ -z "$pop" ] || pop_s=$(awk -v s="$(json "$pop" population_epoch_seconds)" -v n="$(json "$pop" samples)" \
    'BEGIN { printf "%.3f", s * 60000 / n }')
goal "K = 256, batch 64: epoch of every member" "${pop_s:-}" "<=" 0.5 s
# The 4096^3 row of matmul_probe's table: the best f32 variant (the f16 column left out).
tflops=$(awk -F'|' '
    /^\| shape / { for (i = 3; i < NF; i++) { h = $i; gsub(/ /, "", h); name[i] = h } }
    /^\| square 4096 / { for (i = 4; i < NF; i++) { v = $i; gsub(/ /, "", v)
        if (name[i] != "f16" && v ~ /^[0-9.]+$/ && v + 0 > best) { best = v + 0; who = name[i] } } }
    END { if (best > 0) printf "%.2f (%s)", best / 1000, who }' "$results/matmul_probe.log" 2>/dev/null)
goal "f32 matmul 4096^3 (best variant)" "${tflops%% *}" ">=" 15 TFLOP/s
[ -z "$tflops" ] || say "    best variant at 4096^3: ${tflops#* }"
if [ -n "$r64" ]; then
    pct() { awk -v f="$1" 'BEGIN { if (f == "" || f == "null") print "-"; else printf "%.1f%%", f * 100 }'; }
    say "  roofline of the batch-64 epoch: $(pct "$(json "$r64" flop_fraction)") of peak FLOP/s, $(pct "$(json "$r64" bandwidth_fraction)") of peak bandwidth, $(json "$r64" bound) bound"
fi

tar -czf "$results/logs.tar.gz" -C "$work" logs
# The returned files' limit: 16 MiB each (a runaway log keeps its end).
for f in "$results"/*; do
    if [ "$(stat -c %s "$f")" -gt $((16 * 1024 * 1024 - 4096)) ]; then
        tail -c $((15 * 1024 * 1024)) "$f" >"$f.part" && mv "$f.part" "$f"
        say "note: $(basename "$f") cut to its last 15 MiB"
    fi
done
say "files: $(cd "$results" && ls | tr '\n' ' ')"
rm -rf "$work"
exit "$failed"

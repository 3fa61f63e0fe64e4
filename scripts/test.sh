#!/usr/bin/env bash
# The project's test command, on a fresh machine too:
#
#   scripts/test.sh                  # every test, then the 32-lane leg (what CI runs)
#   scripts/test.sh ARGS...          # `cargo test --release ARGS...` in the same set-up,
#                                    # e.g. scripts/test.sh --test gpu parity_matmul::
#   scripts/test.sh --root-packages  # the Debian packages it needs root for (.ci/run)
#   scripts/test.sh --help           # this text
#
# It sets up what needs no root: a Python virtual environment with the pinned packages of
# scripts/requirements-test.txt under target/test-venv (rebuilt when that file changes),
# the MNIST files (found, or downloaded and checked), MNIST_DIR, PYTHON and
# XDG_RUNTIME_DIR. What needs root (the Vulkan driver lavapipe, PostgreSQL's server
# programs, Python's venv module, root itself for the disk-full tests) is checked before
# any work, and a missing piece stops it at once (exit 2) with the exact install line.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian/Ubuntu packages the tests need and only root can install.
root_packages=(mesa-vulkan-drivers libvulkan1 postgresql python3 python3-venv)
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
if [ "${1:-}" = --root-packages ]; then
    echo "${root_packages[*]}"
    exit 0
fi

die() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

# --- What needs root, checked first -------------------------------------------------
command -v cargo >/dev/null ||
    die "cargo not found: install Rust 1.87 or newer (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), then open a new shell"
rust=$(rustc --version | awk '{print $2}')
IFS=. read -r major minor _ <<<"$rust"
if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 87 ]; }; then
    die "rustc $rust is older than 1.87 (wgpu 30 needs it): rustup update stable"
fi

missing=()
if [ "$(uname -s)" = Linux ]; then
    # wgpu opens libvulkan.so.1 at run time; the loader needs a driver's ICD file.
    # (ldconfig lives in /sbin, off a user's PATH on Debian.)
    { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libvulkan\.so\.1 ' ||
        missing+=(libvulkan1)
    icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json \
        /usr/local/share/vulkan/icd.d/*.json 2>/dev/null || true)
    [ -n "$icds" ] || [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] ||
        missing+=(mesa-vulkan-drivers)
fi
# initdb and pg_ctl: Debian keeps them in /usr/lib/postgresql/VERSION/bin, off PATH.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    missing+=(postgresql)
fi
if [ -z "${PYTHON:-}" ]; then
    if ! command -v python3 >/dev/null; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
    die "the tests need ${missing[*]} (lavapipe for the GPU tests, PostgreSQL and Python for the Optuna and TensorBoard tests): sudo apt-get install -y --no-install-recommends ${missing[*]}"
fi
# The disk-full tests (tests/cli_outputs.rs) mount tmpfs file systems of a few KiB.
[ "$(id -u)" -eq 0 ] ||
    die "the disk-full tests of tests/cli_outputs.rs mount tmpfs file systems, which needs root: sudo -E env PATH=\"\$PATH\" scripts/test.sh (CI runs as root)"

# --- What needs no root: set up here --------------------------------------------------
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" # Mesa's headless warning otherwise

# Python with the pinned packages, in a virtual environment under target/ unless PYTHON
# names an interpreter that has them.
if [ -z "${PYTHON:-}" ]; then
    venv=target/test-venv
    req=scripts/requirements-test.txt
    if ! cmp -s "$req" "$venv/requirements-test.txt"; then
        echo "test.sh: Python packages of $req into $venv" >&2
        mkdir -p target
        python3 -m venv --clear "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" ||
            die "pip could not install $req into $venv (no network? set PYTHON to an interpreter with optuna, tensorboard and psycopg2-binary)"
        cp "$req" "$venv/requirements-test.txt"
    fi
    PYTHON="$PWD/$venv/bin/python"
fi
export PYTHON
"$PYTHON" -c 'import optuna, tensorboard, psycopg2, pytest, safetensors' ||
    die "$PYTHON lacks optuna, tensorboard, psycopg2, pytest or safetensors: unset PYTHON to use target/test-venv, or pip install -r scripts/requirements-test.txt"

# MNIST: $MNIST_DIR if set (it must hold the files), else the sibling checkout's shared
# copy, ./data/mnist or the user cache; downloaded into the cache (SHA-256 checked) when
# none has them. Tests run the binary from other directories, so the path is absolute.
has_mnist() {
    local f
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
        t10k-labels-idx1-ubyte; do
        [ -f "$1/$f" ] || [ -f "$1/$f.gz" ] || return 1
    done
}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/wgtrain/mnist"
if [ -n "${MNIST_DIR:-}" ]; then
    has_mnist "$MNIST_DIR" || die "MNIST_DIR=$MNIST_DIR lacks the four MNIST files: unset it, or fill it with wgtrain download mnist --dir $MNIST_DIR"
else
    for d in ../shared/data/mnist data/mnist "$cache"; do
        if has_mnist "$d"; then
            MNIST_DIR=$d
            break
        fi
    done
    if [ -z "${MNIST_DIR:-}" ]; then
        cargo build --release --quiet --bin wgtrain
        mkdir -p "$cache"
        target/release/wgtrain download mnist --dir "$cache"
        MNIST_DIR=$cache
    fi
fi
MNIST_DIR=$(cd "$MNIST_DIR" && pwd)
export MNIST_DIR

# --- The tests ------------------------------------------------------------------------
if [ "$#" -gt 0 ]; then
    exec cargo test --release "$@"
fi
# Each test binary's time (libtest's "finished in"), slowest first, into target/test-times.txt.
times() {
    awk '/^ *(Running|Doc-tests)/ { name = ($1 == "Doc-tests") ? "doc-tests" : ($2 == "unittests") ? $3 : $2 }
        /^test result/ { match($0, /finished in [0-9.]+s/)
            printf "%9.2f s  %s\n", substr($0, RSTART + 12, RLENGTH - 13), name }' "$1" |
        sort -rn
}
start=$SECONDS
# The Python package (python/, pyo3 built by maturin, which pip fetches) from these
# sources into $PYTHON: tests/python_package.rs runs its tests and refuses an installed
# package older than src/, shaders/ or python/src. The Rust build shares target/.
"$PYTHON" -m pip install --quiet --disable-pip-version-check ./python ||
    die "pip could not build the Python package (python/) into $PYTHON: its output is above"
# --no-fail-fast: every target runs, so one failure does not hide the next.
rc=0
cargo test --release --no-fail-fast 2>&1 | tee target/test.log || rc=$?
suite=$((SECONDS - start))
times target/test.log >target/test-times.txt
if [ "$rc" -ne 0 ]; then
    cat target/test-times.txt
    echo "test.sh: cargo test failed (exit $rc): target/test.log holds its output" >&2
    exit "$rc"
fi

# The 32-lane leg: lavapipe with subgroups of 32 (LP_NATIVE_VECTOR_WIDTH=1024), NVIDIA's
# width, the one tiled2d-subgroup was written for; the shared test device reports itself a
# discrete GPU (WGTRAIN_TEST_AS_DISCRETE_GPU), so autotuning times a GPU's candidates.
# The subset: every test of the subgroup 2-D tiled kernel; the variant-by-variant matmul
# tests whose shapes cross its 64 x 256 block, the K split and the grid fold; each fusion
# against the unfused step; GPU populations and training steps against the CPU and their
# single runs, on the kernels a GPU's autotuning picks (docs/testing.md says why it
# suffices).
start=$SECONDS
LP_NATIVE_VECTOR_WIDTH=1024 WGPU_ADAPTER_NAME=llvmpipe WGTRAIN_TEST_AS_DISCRETE_GPU=1 \
    cargo test --release --test gpu -- \
    parity_subgroup_tiled:: \
    parity_matmul::matmul_batch_dim_follows_the_step_record \
    parity_matmul::matmul_epilogues_match_reference \
    parity_population::matmul_members_match_single_launches_for_every_variant \
    fusion::all_fusions_together \
    fusion_update::sgd_epilogue_gives_the_unfused_launches_bits \
    fusion_output::fused_output_layer_gives_the_unfused_bits_for_every_matmul_variant \
    population::gpu_population_members_train_exactly_as_single_runs \
    training::twenty_gpu_steps_match_the_cpu_reference
lanes32=$((SECONDS - start))


echo "test.sh: time per test binary (load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo -)):"
cat target/test-times.txt
echo "test.sh: every test passed: cargo test ${suite} s (build included), 32-lane leg ${lanes32} s"

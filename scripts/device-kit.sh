#!/usr/bin/env bash
# Builds the device kit: what the lent GPU machine (no Rust, no network, perhaps no Vulkan
# loader; ../shared/DEVICE.md) needs to run scripts/gpu-check.sh, in .device/ (ignored by
# git; this script adds it to .git/info/exclude where .gitignore does not cover it):
#
#   .device/bin.tar.xz  wgtrain, examples/matmul_probe and the GPU test executable
#                       (tests/gpu, as gpu-tests), stripped and xz-compressed
#   .device/mnist/      the four MNIST files, gzipped (from $MNIST_DIR, ../shared/data/mnist
#                       or the user cache, as scripts/test.sh finds them)
#   .device/gl/         the Vulkan loader packages (.deb, amd64), unpacked there when the
#                       machine has no libvulkan (from ./.gl/ when it holds them, else
#                       apt-get download, the device documentation's recipe)
#   .device/COMMIT      the commit the kit was built from
#
# It prints the kit's size with the working tree's (both travel: under 40 MiB together, or
# it fails) and the run call that carries it. Usage: scripts/device-kit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.device
limit_mib=40

git check-ignore -q "$kit/" || echo "/$kit/" >>"$(git rev-parse --git-path info/exclude)"
rm -rf "$kit"
mkdir -p "$kit/stage" "$kit/mnist" "$kit/gl"

# The executables: one cargo build for the binary and the probe, one for the test target;
# the test target's path comes from cargo's JSON messages.
cargo build --release --bin wgtrain --example matmul_probe
tests=$(cargo test --release --test gpu --no-run --message-format=json |
    grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/gpu-' | head -1)
[ -n "$tests" ] || {
    echo "error: cargo built no tests/gpu executable" >&2
    exit 1
}
strip -o "$kit/stage/wgtrain" target/release/wgtrain
strip -o "$kit/stage/matmul_probe" target/release/examples/matmul_probe
strip -o "$kit/stage/gpu-tests" "$tests"
tar -cJf "$kit/bin.tar.xz" -C "$kit/stage" wgtrain matmul_probe gpu-tests
rm -rf "$kit/stage"
git rev-parse --short HEAD >"$kit/COMMIT"
git diff --quiet HEAD || echo "+ uncommitted changes" >>"$kit/COMMIT"

# MNIST, gzipped (the binaries read .gz).
cache="${XDG_CACHE_HOME:-$HOME/.cache}/wgtrain/mnist"
src=${MNIST_DIR:-}
if [ -z "$src" ]; then
    for d in ../shared/data/mnist data/mnist "$cache"; do
        if [ -e "$d/train-images-idx3-ubyte.gz" ] || [ -e "$d/train-images-idx3-ubyte" ]; then
            src=$d
            break
        fi
    done
fi
[ -n "$src" ] || {
    echo "error: no MNIST files found: set MNIST_DIR, or fetch them with target/release/wgtrain download mnist" >&2
    exit 2
}
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ -f "$src/$f.gz" ]; then
        cp "$src/$f.gz" "$kit/mnist/"
    elif [ -f "$src/$f" ]; then
        gzip -9 <"$src/$f" >"$kit/mnist/$f.gz"
    else
        echo "error: $src lacks $f (raw or .gz)" >&2
        exit 2
    fi
done

# The Vulkan loader packages, amd64 whatever this machine's architecture.
gl_packages=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
if ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    cp .gl/*.deb "$kit/gl/"
else
    lists=$(mktemp -d)
    mkdir -p "$lists/partial"
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    apt-get "${o[@]}" update -qq
    (cd "$kit/gl" && apt-get "${o[@]}" download -qq "${gl_packages[@]}")
    rm -rf "$lists"
fi

# Sizes: the kit and the working tree that travels with it (tracked and untracked files
# that git does not ignore).
kit_bytes=$(du -cb "$kit" | tail -1 | cut -f1)
tree_bytes=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ { s += $1 } END { print s + 0 }')
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "device kit in $kit: $(mib "$kit_bytes") (bin.tar.xz $(mib "$(stat -c %s "$kit/bin.tar.xz")"), mnist $(mib "$(du -cb "$kit/mnist" | tail -1 | cut -f1)"), gl $(mib "$(du -cb "$kit/gl" | tail -1 | cut -f1)")); working tree $(mib "$tree_bytes"); together $(mib $((kit_bytes + tree_bytes))) of at most $limit_mib MiB"
if [ $((kit_bytes + tree_bytes)) -gt $((limit_mib * 1024 * 1024)) ]; then
    echo "error: the kit and the working tree exceed $limit_mib MiB" >&2
    exit 1
fi
echo 'run it: run(command="bash scripts/gpu-check.sh \"$OUT\"", carry=[".device"], timeout_s=540)'

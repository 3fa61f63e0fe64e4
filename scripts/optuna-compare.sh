#!/usr/bin/env bash
# Issue 24's measurement: one 32-trial Optuna study (MNIST, 3 epochs, TPE seeded, lr
# 1e-3..1 and weight decay 1e-6..1e-2 log-uniform, validation split 0.1, median pruning
# where the path can prune) three ways on one device:
#   per-trial   the old examples/optuna_sweep.py (commit 6484ac4): one `wgtrain train`
#               process per trial, Optuna told the final value only (nothing pruned);
#   per-batch   the same old script with --population 8: one `wgtrain sweep --configs
#               --population 8` process per 8 trials, pruned by the sweep's own median
#               rule within its population, Optuna told at the end;
#   package     today's examples/optuna_sweep.py: wgtrain.optuna with K = 8, Optuna's
#               MedianPruner asked after every epoch, freed slots refilled.
#
#   scripts/optuna-compare.sh cpu|gpu [OUT_DIR]
#
# Needs target/release/wgtrain, $PYTHON (default python3) with optuna and the wgtrain
# package, and MNIST_DIR; WAYS="package per-batch" runs some of the ways, in that order;
# TRAIN_SUBSET=N trains every way on the first N training samples (lavapipe takes about
# 13 s per model-epoch of the full 60,000 on this 2-core machine); the load average
# before and after each way goes to OUT_DIR/load. Prints one line per way: wall seconds,
# trials complete / pruned / failed, best validation accuracy; the workers' outputs stay
# in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
device="${1:?give cpu or gpu}"
out="${2:-$(mktemp -d /tmp/optuna-compare-XXXX)}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export WGTRAIN="${WGTRAIN:-target/release/wgtrain}"  # the old script's binary
: "${MNIST_DIR:?set MNIST_DIR}"
git show 6484ac4:examples/optuna_sweep.py > "$out/old_optuna_sweep.py"
data="$MNIST_DIR"
if [ -n "${TRAIN_SUBSET:-}" ]; then
    # The first N training samples (and the whole test set) as IDX files that every way
    # reads, so the three train on the same samples.
    data="$out/data-$TRAIN_SUBSET"
    mkdir -p "$data"
    "$py" - "$MNIST_DIR" "$data" "$TRAIN_SUBSET" <<'EOF'
import gzip, shutil, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for name, item in (("train-images-idx3-ubyte.gz", 784), ("train-labels-idx1-ubyte.gz", 1)):
    raw = gzip.open(f"{src}/{name}").read()
    header = 16 if item > 1 else 8
    total = struct.unpack(">I", raw[4:8])[0]
    if not 0 < n <= total:
        sys.exit(f"TRAIN_SUBSET={n}: need 1..{total}")
    with gzip.open(f"{dst}/{name}", "wb") as f:
        f.write(raw[:4] + struct.pack(">I", n) + raw[8:header] + raw[header:header + n * item])
for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    shutil.copyfile(f"{src}/{name}", f"{dst}/{name}")
EOF
fi
space=(--lr 1e-3:1 --weight-decay 1e-6:1e-2 --seed 1 --trials 32)
train=(--device "$device" --data "$data" --no-download --epochs 3)

run() { # NAME COMMAND...: wall time of COMMAND, its stdout/stderr in OUT_DIR/NAME.*
    local name="$1"
    shift
    local start end
    start=$(date +%s.%N)
    "$@" > "$out/$name.out" 2> "$out/$name.err" || true
    end=$(date +%s.%N)
    echo "$name $(echo "$end - $start" | bc)" >> "$out/times"
}

uptime >> "$out/load"
ways="${WAYS:-per-trial per-batch package}"  # the order to run them in
for way in $ways; do
case "$way" in
per-trial) run per-trial "$py" "$out/old_optuna_sweep.py" --storage "sqlite:///$out/per-trial.db" \
    --study s --workdir "$out/per-trial" "${space[@]}" -- "${train[@]}" ;;
per-batch) run per-batch "$py" "$out/old_optuna_sweep.py" --storage "sqlite:///$out/per-batch.db" \
    --study s --workdir "$out/per-batch" --population 8 "${space[@]}" -- "${train[@]}" \
    --pruning median ;;
package) run package "$py" examples/optuna_sweep.py --storage "sqlite:///$out/package.db" \
    --study s --population 8 --pruner median --device "$device" --data "$data" \
    --epochs 3 "${space[@]}" ;;
*) echo "unknown way $way (per-trial, per-batch, package)" >&2; exit 2 ;;
esac
uptime >> "$out/load"
done

for name in $ways; do
    "$py" - "$out" "$name" <<'EOF'
import sys, optuna
out, name = sys.argv[1], sys.argv[2]
times = dict(line.split() for line in open(f"{out}/times"))
s = optuna.load_study(study_name="s", storage=f"sqlite:///{out}/{name}.db")
states = [t.state.name for t in s.trials]
best = max((t.value for t in s.trials if t.state.name == "COMPLETE"), default=float("nan"))
print(f"{name:10} {float(times[name]):8.1f} s  {len(states)} trials: "
      f"{states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
      f"{states.count('FAIL')} failed; best val_accuracy {best:.4f}")
EOF
done

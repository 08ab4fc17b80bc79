#!/usr/bin/env bash
# candle (esr-ea speed) against PyTorch (benches/pytorch/esrn.py), same
# network, same shapes, same thread count, run alternately so that a load
# change on a shared machine hits both alike.
#
#   benches/compare.sh                 # 3 rounds, 2 threads, 5 timed steps
#   ROUNDS=5 THREADS=1 STEPS=3 benches/compare.sh
#   QUIET_PCT=5 STRICT=1 benches/compare.sh   # refuse a busy machine
#
# A quiet machine: before every timed run the machine's CPU use by others
# is measured over one second (from /proc/stat, while neither program runs);
# above QUIET_PCT percent (default 10) it waits up to QUIET_WAIT seconds
# (default 120) for it to drop, then warns and goes on (STRICT=1: refuses).
# Each figure of the table carries the worst busy percentage seen before its
# runs, so a figure measured beside other work says so.
#
# Cases, both networks in one run: the seed network (17 blocks, G0 32):
# training step batch 16 x 3x32x32 (x2), training step batch 4 x 3x48x48,
# inference 1x3x128x128 and 1x3x360x640 (a 1280x720 output); the
# quick-config network (`esr-ea speed --arch quick`: 5 blocks, G0 16, 68,671
# parameters): training step batch 8 x 3x24x24 and the 1280x720 inference.
# Prints a table (median over the rounds' medians,
# min-max over every timed run, ratio candle/PyTorch, GFLOP/s at the
# medians, peak memory) and writes every raw JSON to $OUT (default
# target/compare).
#
# Setup on first use: benches/.venv with torch from PyPI (CPU use; PyPI's
# Linux wheel links the CUDA runtime libraries, so when `--no-deps` alone
# cannot import, the full dependency set is installed), then a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
VENV=${VENV:-benches/.venv}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/compare}
PY=$VENV/bin/python
# The two networks, by the names both programs know (`--arch seed|quick`;
# the quick one is of the size configs/quick.yaml draws, G0 16).
SEED="--arch seed --g0 32"
QUICK="--arch quick --g0 16"
# PyTorch's OpenMP threads spin while they wait; on a loaded machine (other
# builds) a spinning thread keeps the core from a preempted one and a 2-thread
# forward became 10-20x slower than 1 thread. PASSIVE waits sleep instead:
# PyTorch's best setting here. Set TORCH_OMP_WAIT_POLICY=ACTIVE to see the other.
TORCH_OMP_WAIT_POLICY=${TORCH_OMP_WAIT_POLICY:-PASSIVE}

QUIET_PCT=${QUIET_PCT:-10}
QUIET_WAIT=${QUIET_WAIT:-120}
STRICT=${STRICT:-0}

# Percent of all CPUs busy over one second (user+nice+system+irq+steal).
busy_pct() {
  local a b
  read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ < /proc/stat
  sleep 1
  read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ < /proc/stat
  local busy=$(( (b1 + b2 + b3 + b6 + b7 + b8) - (a1 + a2 + a3 + a6 + a7 + a8) ))
  local idle=$(( (b4 + b5) - (a4 + a5) ))
  echo $(( 100 * busy / (busy + idle > 0 ? busy + idle : 1) ))
}

# Waits for a quiet machine; writes the busy percentage it started at to $1.
wait_quiet() {
  local pct waited=0
  pct=$(busy_pct)
  while (( pct > QUIET_PCT && waited < QUIET_WAIT )); do
    (( waited == 0 )) && echo "   machine ${pct}% busy (others); waiting up to ${QUIET_WAIT}s for <= ${QUIET_PCT}%"
    sleep 4
    waited=$((waited + 5))
    pct=$(busy_pct)
  done
  if (( pct > QUIET_PCT )); then
    if [[ $STRICT == 1 ]]; then
      echo "error: the machine stays ${pct}% busy with other work (QUIET_PCT=${QUIET_PCT}); refusing to time (STRICT=1)" >&2
      exit 1
    fi
    echo "   warning: timing on a machine ${pct}% busy with other work; the figure is marked"
  fi
  echo "$pct" >"$1"
}

torch_ok() { "$PY" -c 'import torch; torch.randn(2).sum()' >/dev/null 2>&1; }

if ! torch_ok; then
  echo "== setting up $VENV (PyTorch from PyPI)"
  [[ -x $PY ]] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --no-deps torch
  "$PY" -m pip install -q filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe numpy safetensors
  if ! torch_ok; then
    echo "   torch --no-deps cannot load (it links the CUDA runtime); installing its full dependencies"
    "$PY" -m pip install -q torch
  fi
  torch_ok || { echo "error: torch does not import in $VENV" >&2; exit 1; }
fi

echo "== building esr-ea (release)"
cargo build --release --quiet
mkdir -p "$OUT"
# A private copy: the shared target dir may be rebuilt by others meanwhile.
BIN=$OUT/esr-ea
cp "$TARGET/release/esr-ea" "$BIN"

echo "== checking the PyTorch network against the reference vectors"
"$PY" benches/pytorch/esrn.py --check

CASES=(
  "train-b16-p32|$SEED --batch 16 --patch 32 --steps $STEPS --warmup 1 --inference none"
  "train-b4-p48|$SEED --batch 4 --patch 48 --steps $STEPS --warmup 1 --inference none"
  "infer-128|$SEED --steps 0 --inference 256x256 --inference-runs $STEPS --inference-warmup 1"
  "infer-720p|$SEED --steps 0 --inference 1280x720 --inference-runs 2"
  "quick-b8-p24|$QUICK --batch 8 --patch 24 --steps $((STEPS * 4)) --warmup 2 --inference none"
  "quick-infer-720p|$QUICK --steps 0 --inference 1280x720 --inference-runs 3 --inference-warmup 1"
)

run_candle() { wait_quiet "$OUT/$1.busy"; "$BIN" speed --threads "$THREADS" $2 --json >"$OUT/$1"; }
run_torch() { wait_quiet "$OUT/$1.busy"; OMP_WAIT_POLICY=$TORCH_OMP_WAIT_POLICY OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" benches/pytorch/esrn.py --no-check --threads "$THREADS" $2 --json >"$OUT/$1"; }

rm -f "$OUT"/*.json "$OUT"/*.busy
for round in $(seq 1 "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    name=${c%%|*} args=${c#*|}
    echo "== round $round/$ROUNDS: $name  (load $(cut -d' ' -f1-3 /proc/loadavg))"
    # Alternate who goes first, so neither always runs on a warmer machine.
    if (( round % 2 )); then
      run_candle "candle-$name-$round.json" "$args"
      run_torch "torch-$name-$round.json" "$args"
    else
      run_torch "torch-$name-$round.json" "$args"
      run_candle "candle-$name-$round.json" "$args"
    fi
  done
done

"$PY" - "$OUT" "$ROUNDS" "$THREADS" "$TORCH_OMP_WAIT_POLICY" "$QUIET_PCT" <<'PY'
import glob, json, os, platform, statistics, sys

out, rounds, threads, wait_policy, quiet = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
cases = [("train-b16-p32", "seed train 16x3x32x32"), ("train-b4-p48", "seed train 4x3x48x48"),
         ("infer-128", "seed infer 1x3x128x128"), ("infer-720p", "seed infer 1x3x360x640"),
         ("quick-b8-p24", "quick train 8x3x24x24"), ("quick-infer-720p", "quick infer 1x3x360x640")]

def load(impl, name):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, f"{impl}-{name}-*.json")))]

def summary(runs, key):
    pick = (lambda r: r["inference"]["ms"]) if key == "inference" else (lambda r: r[key])
    s = [pick(r) for r in runs]
    return statistics.median(x["median"] for x in s), min(x["min"] for x in s), max(x["max"] for x in s)

def gflops(runs, key):
    """GFLOP/s at the median of the rounds' GFLOP/s (step or inference)."""
    pick = (lambda r: r["inference"]["gflops"]) if key == "inference" else (lambda r: r["train_gflops"]["step"])
    vals = [pick(r) for r in runs if pick(r)]
    return statistics.median(vals) if vals else float("nan")

def busy(impl, name):
    """The worst CPU use by others (percent) seen just before a run of the case."""
    vals = [int(open(p).read()) for p in glob.glob(os.path.join(out, f"{impl}-{name}-*.json.busy"))]
    return max(vals) if vals else float("nan")

def peak(runs, key):
    """Peak resident MiB over the runs, and that less the resident size
    before the network was built (the program and its libraries)."""
    pk = lambda r: r["inference"]["peak_rss_bytes"] if key == "inference" else r["peak_rss_bytes"]["overall"]
    worst = max(runs, key=pk)
    return pk(worst) / 2**20, (pk(worst) - worst.get("baseline_rss_bytes", 0)) / 2**20

loads = []
print()
print(f"candle (esr-ea speed) vs PyTorch, {threads} threads, {rounds} rounds alternated; times in ms")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
print(f"CPU: {cpu} ({os.cpu_count()} CPUs, {'AVX-512' if ' avx512f' in flags else 'AVX2' if ' avx2' in flags else 'no AVX2'})")
print(f"{'case':<24} {'phase':<10} {'candle median (min-max)':>26} {'PyTorch median (min-max)':>26} {'ratio':>6} {'GFLOP/s c/t':>12} {'candle MiB':>12} {'torch MiB':>12} {'busy% c/t':>10}")
for name, label in cases:
    c, t = load("candle", name), load("torch", name)
    if not c or not t:
        continue
    loads += [r["load_average"][0] for r in c + t if r.get("load_average")]
    keys = [("inference", "infer")] if "infer" in name else [
        ("step_ms", "step"), ("forward_ms", "forward"), ("backward_ms", "backward"), ("optimizer_ms", "Adam")]
    for key, phase in keys:
        cm, cmin, cmax = summary(c, key)
        tm, tmin, tmax = summary(t, key)
        ratio = cm / tm if tm > 0 else float("nan")
        mem = phase in ("step", "infer")
        print(f"{label if phase in ('step', 'infer') else '':<24} {phase:<10} "
              f"{f'{cm:.1f} ({cmin:.1f}-{cmax:.1f})':>26} {f'{tm:.1f} ({tmin:.1f}-{tmax:.1f})':>26} {ratio:>6.2f} "
              f"{'%.1f/%.1f' % (gflops(c, key), gflops(t, key)) if mem else '':>12} "
              f"{'%.0f (%.0f)' % peak(c, key) if mem else '':>12} {'%.0f (%.0f)' % peak(t, key) if mem else '':>12} "
              f"{'%s/%s%s' % (busy('candle', name), busy('torch', name), ' !' if max(busy('candle', name), busy('torch', name)) > quiet else '') if mem else '':>10}")
if loads:
    print(f"1-minute load average during the runs: {min(loads):.2f} .. {max(loads):.2f} (machine has {os.cpu_count()} CPUs)")
print("MiB: peak resident memory (VmHWM), in brackets less the resident size before the network was built")
print(f"busy%: the worst CPU use by other work in the second before the case's runs (candle/PyTorch); '!' above QUIET_PCT={quiet}: not a quiet measurement")
print(f"PyTorch OMP_WAIT_POLICY={wait_policy}")
print(f"PyTorch {load('torch', cases[0][0])[0]['implementation'] if load('torch', cases[0][0]) else '?'}; raw JSON in {out}")
PY

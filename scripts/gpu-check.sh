#!/usr/bin/env bash
# One prepared check of the CUDA build on a GPU machine (H100/H200, driver 580).
#
# Run from the repository root with the binary carried in dist/ and $OUT set:
#   bash scripts/gpu-check.sh
# Every step is logged with its time to $OUT/gpu-check.log; a failing step is
# recorded and the script goes on. A summary goes to stdout and the log's end.
#
# Files written under $OUT (never more than 8):
#   gpu-check.log      everything, step by step, with timings and the summary
#   device-check.json  CUDA vs CPU forward/backward/Adam + inference timing (640x360 -> 1280x720)
#   speed.jsonl        esr-ea speed, batch 16 x 32x32 and 16 x 64x64, plain f32 and TF32 (one JSON a line)
#   pytorch.jsonl      benches/pytorch/esrn.py, the same shapes: plain f32 and TF32, cudnn.benchmark off and on
#   profile.txt        GPU time of one 16 x 64x64 training step by kernel and kind of work, esr-ea
#                      beside PyTorch (ncu; scripts/ncu_summary.py)
#   workers.txt        members per hour of a paper-size search with 1, 2, 4 workers on the card,
#                      and with the best count on DIV2K-shaped data
#   workers-history.csv  those searches' history.csv rows, prefixed with the worker count
#   history.csv        the tiny search's history (seconds per individual; its output's tail is in the log)
#
# Switches (environment), so the logic can be dry-run on a CPU:
#   ESR_EA_BIN=path     use this binary instead of gunzipping dist/esr-ea-cuda.gz
#   DEVICE=cuda:0       device for every step (cpu for a dry run)
#   DEADLINE=480        seconds for the whole script; steps that would run past it are cut or skipped
#   INFER_SIZE=640x360  LR size for inference timing and upscale (1280x720 output at x2)
#   INFER_REPEAT=20     timed forward passes in device-check
#   SPEED_STEPS=20      timed training steps of each speed run (esr-ea and PyTorch alike)
#   UPSCALE_RUNS=3      end-to-end `esr-ea upscale` runs
#   TRAIN_STEPS=2       steps of the quick training that makes the upscale model
#   TRAIN_CONFIG=configs/esr_ea.yaml   its config (G0 32, x2, batch 16 x 64x64 patches)
#   WORKERS="1 2 4"     worker counts of the members-per-hour search
#   WORKER_STEPS=150    training steps per member there (esr_ea.yaml, 16-20 blocks, batch 16 x 64x64)
#   SEARCH_GENERATIONS=2 / SEARCH_STEPS=40   size of the tiny search (copy of configs/quick.yaml)
#   PYTORCH_ARGS=""     extra arguments for esrn.py
#   PYTORCH_FLAGS="| --cudnn-benchmark | --tf32 | --tf32 --cudnn-benchmark"
#                       the esrn.py settings timed at each patch size, '|' between them
#   PROFILE_PATCH=64    LR patch side of the profiled step
#   VARIANTS="own-bias-grad:ESR_EA_CUDA_OWN_BIAS_GRAD=1 candle-layout:ESR_EA_CUDA_CANDLE_LAYOUT=1"
#                       LABEL:VAR=VALUE switches timed (speed, profile) and checked
#                       (device-check) one at a time beside the default
#   DIV2K_IMAGES=24     DIV2K-sized (2040x1356) PNGs made for the data-fed workers run (0: none)
#   SKIP="a b"          step names to skip (nvidia-smi libs ldd device-check speed pytorch
#                       profile workers train upscale memory search)
set -uo pipefail

REPO=$(pwd)
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda:0}
DEADLINE=${DEADLINE:-480}
INFER_SIZE=${INFER_SIZE:-640x360}
INFER_REPEAT=${INFER_REPEAT:-20}
UPSCALE_RUNS=${UPSCALE_RUNS:-3}
TRAIN_STEPS=${TRAIN_STEPS:-2}
SPEED_STEPS=${SPEED_STEPS:-20}
WORKERS=${WORKERS:-1 2 4}
WORKER_STEPS=${WORKER_STEPS:-150}
TRAIN_CONFIG=${TRAIN_CONFIG:-configs/esr_ea.yaml}
SEARCH_GENERATIONS=${SEARCH_GENERATIONS:-2}
SEARCH_STEPS=${SEARCH_STEPS:-40}
PYTORCH_ARGS=${PYTORCH_ARGS:-}
PYTORCH_FLAGS=${PYTORCH_FLAGS-| --cudnn-benchmark | --tf32 | --tf32 --cudnn-benchmark}
PROFILE_PATCH=${PROFILE_PATCH:-64}
VARIANTS=${VARIANTS:-own-bias-grad:ESR_EA_CUDA_OWN_BIAS_GRAD=1 candle-layout:ESR_EA_CUDA_CANDLE_LAYOUT=1}
DIV2K_IMAGES=${DIV2K_IMAGES:-24}
SKIP=${SKIP:-}
SEED_ARCH="G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 S_4_16_24 G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 G_6_16_64 G_8_16_16 S_8_16_32"
LOG=$OUT/gpu-check.log
TMP=$(mktemp -d /tmp/gpu-check.XXXXXX)
T0=$(date +%s.%N)
SUMMARY=()
: >"$LOG"

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
# A line for both the log and stdout.
say() { echo "[$(elapsed)s] $*" | tee -a "$LOG"; }

# step NAME TIMEOUT FUNCTION: runs FUNCTION in a child bash under `timeout`,
# its output appended to the log; records rc and seconds; never stops the script.
step() {
  local name=$1 limit=$2 fn=$3
  if [[ " $SKIP " == *" $name "* ]]; then
    say "--- $name: skipped (SKIP)"
    SUMMARY+=("$(printf '%-13s skipped (SKIP)' "$name")")
    return 0
  fi
  local left
  left=$(awk -v d="$DEADLINE" -v e="$(elapsed)" 'BEGIN{printf "%d", d-e}')
  if ((left < 15)); then
    say "--- $name: skipped, only ${left}s left of DEADLINE=${DEADLINE}s"
    SUMMARY+=("$(printf '%-13s skipped (deadline)' "$name")")
    return 0
  fi
  ((limit > left)) && limit=$left
  say "--- $name (limit ${limit}s)"
  local s rc t
  s=$(date +%s.%N)
  timeout --kill-after=10 "$limit" bash -c "$fn" >>"$LOG" 2>&1
  rc=$?
  t=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  local what="rc=$rc"
  ((rc == 124 || rc == 137)) && what="TIMED OUT after ${limit}s"
  ((rc == 3)) && what="skipped (see log)"
  say "--- $name: $what in ${t}s"
  SUMMARY+=("$(printf '%-13s %-22s %7ss' "$name" "$what" "$t")")
}

export PYTORCH_FLAGS PROFILE_PATCH VARIANTS DIV2K_IMAGES REPO OUT DEVICE INFER_SIZE INFER_REPEAT UPSCALE_RUNS TRAIN_STEPS TRAIN_CONFIG SEARCH_GENERATIONS \
  SEARCH_STEPS PYTORCH_ARGS SEED_ARCH TMP LOG SPEED_STEPS WORKERS WORKER_STEPS

# --- the binary ----------------------------------------------------------------
if [[ -n "${ESR_EA_BIN:-}" ]]; then
  BIN=$(readlink -f "$ESR_EA_BIN")
elif [[ -f dist/esr-ea-cuda.gz ]]; then
  BIN=$TMP/esr-ea
  gunzip -c dist/esr-ea-cuda.gz >"$BIN" && chmod +x "$BIN"
elif [[ -f dist/esr-ea-cuda ]]; then
  BIN=$(readlink -f dist/esr-ea-cuda)
else
  BIN=""
fi
export BIN
say "gpu-check: repo $REPO, device $DEVICE, binary ${BIN:-MISSING}, deadline ${DEADLINE}s, host $(hostname)"
[[ -f dist/esr-ea-cuda.txt ]] && sed 's/^/    /' dist/esr-ea-cuda.txt | tee -a "$LOG"
[[ -f dist/esr-ea-cuda.gz ]] && say "    dist/esr-ea-cuda.gz sha256 $(sha256sum dist/esr-ea-cuda.gz | cut -d' ' -f1)"
[[ -z "$BIN" ]] && say "no binary: carry dist/esr-ea-cuda.gz (scripts/build-cuda-dist.sh) or set ESR_EA_BIN"

# --- 1. the GPU ------------------------------------------------------------------
s_nvidia() {
  nvidia-smi || exit 1
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  uname -a
}
export -f s_nvidia
step nvidia-smi 30 s_nvidia

# --- 2. CUDA 13 libraries -> LD_LIBRARY_PATH -----------------------------------------
# PyTorch's CUDA 13 wheels carry them (site-packages/nvidia/cu13/lib or
# nvidia/<lib>/lib); the toolkit's own (/usr/local/cuda*) are the fallback.
# Each library's first directory in that order goes on the path, and the
# driver's libcuda.so.1 too when the loader cache does not know it.
find_libs() {
  local names=(libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libnvrtc.so.13 libcudnn.so.9 libcuda.so.1)
  local roots=() r sp
  sp=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
  for r in $sp /usr/local/cuda /usr/local/nvidia /usr/lib/x86_64-linux-gnu /usr/lib64 /opt /usr/local /; do
    [[ -d "$r" ]] && roots+=("$r")
  done
  local pattern=() n
  for n in "${names[@]}"; do pattern+=(-o -name "$n" -o -name "$n.*"); done
  declare -A found=()
  for r in "${roots[@]}"; do
    # One walk per root for every name; stop at the first root that completes the set.
    while IFS= read -r f; do
      for n in "${names[@]}"; do
        [[ -z "${found[$n]:-}" && $(basename "$f") == "$n"* ]] && found[$n]=$f
      done
    done < <(find "$r" \( -path /proc -o -path /sys -o -path /dev \) -prune -o \( -false "${pattern[@]}" \) -not -path "*/stubs/*" \( -type f -o -type l \) -print 2>/dev/null)
    ((${#found[@]} == ${#names[@]})) && break
  done
  local dirs=()
  for n in "${names[@]}"; do
    if [[ -z "${found[$n]:-}" ]]; then
      echo "MISSING $n" >&2
      continue
    fi
    echo "found $n: ${found[$n]}" >&2
    # The driver's library: only when the loader does not already know it.
    if [[ $n == libcuda.so.1 ]] && ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then
      echo "  (libcuda.so.1 is in the loader cache: $(ldconfig -p | grep -m1 'libcuda.so.1 '))" >&2
      continue
    fi
    dirs+=("$(dirname "${found[$n]}")")
  done
  printf '%s\n' "${dirs[@]}" | awk 'NF && !seen[$0]++' | paste -sd:
}
if [[ " $SKIP " != *" libs "* ]]; then
  say "--- libs: locating the CUDA 13 libraries"
  s=$(date +%s)
  LIBDIRS=$(timeout 120 bash -c "$(declare -f find_libs); find_libs" 2>>"$LOG")
  export LD_LIBRARY_PATH="${LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "--- libs: LD_LIBRARY_PATH=$LD_LIBRARY_PATH ($(($(date +%s) - s))s)"
  grep -q MISSING "$LOG" && say "    some libraries are missing: see the log"
  SUMMARY+=("$(printf '%-13s %s' libs "${LIBDIRS:-none found}")")
fi

s_ldd() {
  [[ -n "$BIN" ]] || exit 1
  ldd "$BIN"
  "$BIN" --version
  ! ldd "$BIN" | grep -q 'not found'
}
export -f s_ldd
step ldd 20 s_ldd

# --- 3. correctness: CUDA against CPU, and inference timing ----------------------
s_device_check() {
  "$BIN" device-check --device "$DEVICE" --json --infer "$INFER_SIZE" --repeat "$INFER_REPEAT" \
    >"$OUT/device-check.json"
  rc=$?
  cat "$OUT/device-check.json"
  # The same check with each switch of VARIANTS.
  local v
  for v in $VARIANTS; do
    env "${v#*:}" "$BIN" device-check --device "$DEVICE" --json >"$TMP/dc.json" || rc=1
    python3 - "$TMP/dc.json" "${v%%:*}" <<'PY' || rc=1
import json, sys
d = json.load(open(sys.argv[1]))
worst = max(d["cases"], key=lambda c: c["grad_worst_rel"])
print(f"device-check ({sys.argv[2]}): ok={d['ok']}, worst gradient rel {worst['grad_worst_rel']:.2e} ({worst['name']}, {worst['grad_worst_param']})")
sys.exit(0 if d["ok"] else 1)
PY
  done
  exit $rc
}
export -f s_device_check
step device-check 120 s_device_check

# --- 4. speed against PyTorch --------------------------------------------------------
# esr-ea and its PyTorch twin, the same network (the 17-block seed), shapes and
# phases, each in plain f32 and with TF32 allowed; PyTorch also with
# cudnn.benchmark (esr-ea always times cuDNN's algorithms per shape).
# speed_row FIELDS: $TMP/speed.json with FIELDS (a Python dict's items) added,
# appended to speed.jsonl.
speed_row() {
  python3 -c "import json; d=json.load(open('$TMP/speed.json')); d.update({$1}); print(json.dumps(d))" \
    >>"$OUT/speed.jsonl"
}
export -f speed_row

s_speed() {
  local rc=0 patch tf
  for patch in 32 64; do
    for tf in "" --tf32; do
      "$BIN" $tf speed --arch seed --device "$DEVICE" --batch 16 --patch "$patch" --steps "$SPEED_STEPS" --warmup 3 \
        --inference 1280x720 --inference-runs 5 --inference-warmup 2 --json >"$TMP/speed.json" || rc=1
      speed_row "'tf32': bool('$tf')" || rc=1
      echo "esr-ea patch $patch ${tf:-f32}: $(head -c 600 "$TMP/speed.json")"
    done
  done
  # What candle's per-tensor CUDA event tracking costs (esr-ea turns it off).
  ESR_EA_CUDA_EVENTS=1 "$BIN" speed --arch seed --device "$DEVICE" --batch 16 --patch 64 --steps "$SPEED_STEPS" \
    --warmup 3 --inference 1280x720 --inference-runs 5 --inference-warmup 2 --json >"$TMP/speed.json" || rc=1
  speed_row "'tf32': False, 'cuda_events': True" || rc=1
  # The switches, one at a time against the default above (A/B, f32, no inference).
  local v
  for v in $VARIANTS; do
    for patch in 32 64; do
      env "${v#*:}" "$BIN" speed --arch seed --device "$DEVICE" --batch 16 --patch "$patch" \
        --steps "$SPEED_STEPS" --warmup 3 --inference none --json >"$TMP/speed.json" || rc=1
      speed_row "'tf32': False, 'variant': '${v%%:*}'" || rc=1
    done
  done
  exit $rc
}
export -f s_speed
step speed 240 s_speed

# --- 4b. where the step's GPU time goes ---------------------------------------------
# One 16 x PROFILE_PATCH^2 training step (forward, backward, Adam) of the seed
# network under Nsight Compute, each kernel timed alone (gpu__time_duration,
# one pass, clocks left alone): esr-ea in plain f32 as built, then with each
# of VARIANTS, then PyTorch (plain f32, cudnn.benchmark). Summed by kernel and
# by kind of work into profile.txt.
s_profile() {
  local ncu rc=0
  ncu=$(command -v ncu || ls -d /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -n 1)
  if [[ -z "$ncu" || "$DEVICE" != cuda* ]]; then
    echo "no ncu on this machine, or device $DEVICE is not CUDA: skipped"
    exit 3
  fi
  local args=(--clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv
    --print-units base --print-kernel-base function --target-processes all)
  local speed=(speed --arch seed --device "$DEVICE" --batch 16 --patch "$PROFILE_PATCH" --steps 1 --warmup 2
    --inference none --profile-last-step --json)
  local labels=() v
  # profile.txt is rewritten after each program: a cut step keeps what is done.
  summarize() { python3 "$REPO/scripts/ncu_summary.py" "${labels[@]}" --top 30 >"$OUT/profile.txt" || rc=1; }
  for v in "default:GPU_CHECK_VARIANT=default" $VARIANTS; do
    # ncu prints its table to stdout at the end; the summary finds it in the mix.
    env "${v#*:}" "$ncu" "${args[@]}" "$BIN" "${speed[@]}" >"$TMP/ncu-${v%%:*}.csv" 2>&1 || rc=1
    labels+=("esr-ea,${v%%:*}=$TMP/ncu-${v%%:*}.csv")
    summarize
  done
  if python3 -c 'import torch' 2>/dev/null; then
    PYTHONUNBUFFERED=1 "$ncu" "${args[@]}" python3 benches/pytorch/esrn.py \
      --device cuda --batch 16 --patch "$PROFILE_PATCH" --steps 1 --warmup 2 --inference none --no-check --json \
      --cudnn-benchmark --profile-last-step >"$TMP/ncu-torch.csv" 2>&1 || rc=1
    labels+=("pytorch,cudnn.benchmark=$TMP/ncu-torch.csv")
  fi
  # What ncu said besides the table (its errors, if any).
  grep -hv '^"' "$TMP"/ncu-*.csv | head -n 40
  summarize
  cat "$OUT/profile.txt"
  exit $rc
}
export -f s_profile
step profile 240 s_profile

s_pytorch() {
  if ! python3 -c 'import torch' 2>/dev/null; then
    echo "no PyTorch here: skipped"
    exit 3
  fi
  local rc=0 patch flags sets
  IFS='|' read -ra sets <<<"$PYTORCH_FLAGS"
  for patch in 32 64; do
    for flags in "${sets[@]}"; do
      # shellcheck disable=SC2086
      PYTHONUNBUFFERED=1 python3 benches/pytorch/esrn.py --device cuda --batch 16 --patch $patch \
        --steps "$SPEED_STEPS" --warmup 3 --inference 1280x720 --inference-runs 5 --inference-warmup 2 \
        --no-check --json $flags $PYTORCH_ARGS 2>>"$LOG" | tail -n 1 >>"$OUT/pytorch.jsonl" || rc=$?
    done
  done
  exit $rc
}
export -f s_pytorch
step pytorch 200 s_pytorch


# Members per hour with 1, 2, 4 workers on the card: configs/esr_ea.yaml as
# shipped (16-20 blocks, ~320k params, batch 16 x 64x64), one generation,
# WORKER_STEPS steps a member; throughput in steps/s, and members/hour at the
# paper's 25,000 steps a member.
# members_per_hour LABEL HISTORY WORKERS START END: one line of workers.txt
# from a search's history.csv and its wall-clock start and end.
members_per_hour() {
  python3 - "$@" "$WORKER_STEPS" <<'PY'
import csv, sys
label, path, n, s, e, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
rows = list(csv.DictReader(open(path)))
done = [r for r in rows if r.get("psnr") not in ("", "nan", None)]
secs = [float(r["seconds"]) for r in done if r["seconds"] not in ("", "nan")]
wall = e - s
per = sum(secs) / len(secs) if secs else float("nan")
# Per member at 25,000 steps: its measured seconds scaled by steps (the
# validation's share, ~1 s, is counted as training: an upper bound on time).
at_paper = per * 25000 / steps
print(f"{label}workers {n}: {len(done)}/{len(rows)} members with a fitness in {wall:.1f} s wall "
      f"({len(done) * 3600 / wall:.0f} members/h at {steps} steps, process start included); "
      f"{per:.2f} s a member -> {n * 3600 / at_paper:.2f} members/h at 25,000 steps "
      f"({n * steps / per:.1f} steps/s on the card)")
PY
}
export -f members_per_hour

s_workers() {
  local n rc=0 cfg=$TMP/paper.yaml
  sed -e "s#\.\./assets#$REPO/assets#g" -e "s#num_generation: *[0-9]*#num_generation: 1#" \
    -e "0,/epochs: 500/s##steps: $WORKER_STEPS#" \
    -e "0,/milestones: \[100, 200\]/s##milestones: [$((WORKER_STEPS / 2))]#" \
    -e "0,/milestones_unit: epochs/s##milestones_unit: steps#" configs/esr_ea.yaml >"$cfg"
  grep -nE 'num_generation|num_individual|^    steps|milestones' "$cfg" | head
  for n in $WORKERS; do
    local members=$((n * 2)) s e
    [[ $members -lt 4 ]] && members=4
    sed -i "s#num_individual: *[0-9]*#num_individual: $members#" "$cfg"
    s=$(date +%s.%N)
    "$BIN" search --headless --stop-after search --devices "$DEVICE*$n" --config "$cfg" \
      --run-dir "$TMP/workers-$n" >"$TMP/workers-$n.log" 2>&1 || rc=1
    e=$(date +%s.%N)
    tail -n 5 "$TMP/workers-$n.log"
    grep -iE "failed|error" "$TMP/workers-$n.log" | head -n 8
    sed "s/^/$n,/" "$TMP/workers-$n/history.csv" >>"$OUT/workers-history.csv"
    members_per_hour "" "$TMP/workers-$n/history.csv" "$n" "$s" "$e" | tee -a "$OUT/workers.txt" || rc=1
  done
  # The same search fed by DIV2K-shaped data: DIV2K_IMAGES made 2040x1356
  # PNGs as the training folder (cached as 8-bit by `search --check` first),
  # with the worker count that gave the most steps a second above.
  if ((DIV2K_IMAGES > 0)) && python3 -c 'import numpy, PIL' 2>/dev/null; then
    python3 - "$TMP/div2k/HR" "$DIV2K_IMAGES" <<'PY' || rc=1
import os, sys
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
y, x = np.mgrid[0:1356, 0:2040].astype(np.float32)
for i in range(n):
    # Smooth shapes, edges and fine texture, like a photograph's mix.
    f = rng.uniform(0.002, 0.02, size=(3, 2))
    img = np.stack([np.sin(x * f[c, 0] + y * f[c, 1] + i) for c in range(3)], -1) * 80 + 128
    img += (np.sin(x * 0.3 + i) * np.sin(y * 0.27) * 30)[..., None]
    img += rng.normal(0, 6, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{out}/{i:04d}.png", compress_level=1)
print(f"made {n} DIV2K-sized PNGs (2040x1356) in {out}")
PY
    n=$(awk -F'[ (]' '/^workers [0-9]+:/{for(i=1;i<=NF;i++) if($i=="steps/s") {print $1" "$2" "$(i-1)}}' "$OUT/workers.txt" \
      | sort -k3 -g | tail -n 1 | awk '{print $2}' | tr -d ':')
    n=${n:-1}
    local div=$TMP/paper-div2k.yaml members=$((n * 2))
    [[ $members -lt 4 ]] && members=4
    sed -e "0,/root_HR: .*assets\/train/s##root_HR: $TMP/div2k/HR#" \
      -e "s#num_individual: *[0-9]*#num_individual: $members#" "$cfg" >"$div"
    grep -n root_HR "$div"
    s=$(date +%s.%N)
    "$BIN" search --check --config "$div" >"$TMP/div2k-check.log" 2>&1 || rc=1
    tail -n 8 "$TMP/div2k-check.log"
    echo "DIV2K-shaped data prepared (search --check) in $(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
    s=$(date +%s.%N)
    "$BIN" search --headless --stop-after search --devices "$DEVICE*$n" --config "$div" \
      --run-dir "$TMP/div2k-run" >"$TMP/div2k-run.log" 2>&1 || rc=1
    e=$(date +%s.%N)
    tail -n 5 "$TMP/div2k-run.log"
    sed "s/^/div2k-$n,/" "$TMP/div2k-run/history.csv" >>"$OUT/workers-history.csv"
    members_per_hour "DIV2K-shaped data, " "$TMP/div2k-run/history.csv" "$n" "$s" "$e" | tee -a "$OUT/workers.txt" || rc=1
  else
    echo "DIV2K-shaped run skipped (DIV2K_IMAGES=$DIV2K_IMAGES, or no numpy/PIL here)"
  fi
  exit $rc
}
export -f s_workers
step workers 330 s_workers

# --- 5. inference for a 1280x720 output, end to end ----------------------------------
s_train() {
  "$BIN" train --config "$TRAIN_CONFIG" --arch $SEED_ARCH --steps "$TRAIN_STEPS" \
    --device "$DEVICE" --out "$TMP/m"
}
export -f s_train
step train 120 s_train

s_upscale() {
  [[ -f "$TMP/m/model.safetensors" ]] || { echo "no model from the train step"; exit 1; }
  local w=${INFER_SIZE%x*} h=${INFER_SIZE#*x} in=$TMP/in.png
  # An LR image of exactly INFER_SIZE from an asset (Pillow); without Pillow
  # (dry runs) a synthetic PNG written with the standard library.
  python3 - "$w" "$h" "$in" <<'PY'
import sys, zlib, struct, math
w, h, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
try:
    from PIL import Image
    Image.open("assets/train/astronaut.png").convert("RGB").resize((w, h), Image.BICUBIC).save(path)
    print(f"input {w}x{h} from assets/train/astronaut.png (Pillow)")
except ImportError:
    rows = b"".join(b"\0" + bytes(int(127 + 120 * math.sin((x * (c + 1) + y * 3) / 17.0)) for x in range(w) for c in range(3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)
    print(f"input {w}x{h} synthetic (no Pillow)")
PY
  [[ -f "$in" ]] || exit 1
  local i rc=0 s e
  for i in $(seq 1 "$UPSCALE_RUNS"); do
    s=$(date +%s.%N)
    "$BIN" upscale --device "$DEVICE" --model "$TMP/m/model.safetensors" "$in" "$TMP/out.png" || rc=1
    e=$(date +%s.%N)
    awk -v a="$s" -v b="$e" -v i="$i" 'BEGIN{printf "upscale run %d: process %.2f s\n", i, b-a}'
  done
  python3 -c "
import struct,sys
d=open('$TMP/out.png','rb').read(24)
print('output size %dx%d' % struct.unpack('>II', d[16:24]))" || rc=1
  exit $rc
}
export -f s_upscale
step upscale 90 s_upscale

# --- 5b. GPU memory: the seed network's upscale and training step ------------------
# Peak memory used on the card (nvidia-smi polled every 50 ms, so a lower
# bound of the true peak) while upscaling 1000x1000 and 4000x3000 inputs with
# the default budget, and during training steps at batch 16 x 64x64; against
# the tile budget and `search --check`'s training estimate.
s_memory() {
  [[ -f "$TMP/m/model.safetensors" ]] || { echo "no model from the train step"; exit 1; }
  command -v nvidia-smi >/dev/null || { echo "no nvidia-smi"; exit 3; }
  local gpu=${DEVICE#cuda:} size w h in pid peak base rc=0
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$gpu" | head -1)
  poll() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$gpu" -lms 50 >"$1" 2>/dev/null & echo $!; }
  for size in 1000x1000 4000x3000; do
    w=${size%x*}; h=${size#*x}; in=$TMP/mem-$size.png
    python3 - "$w" "$h" "$in" <<'PY'
import sys, zlib, struct
w, h, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
base = bytes((i * 7 + (i // 3) * 13) & 255 for i in range(3 * (w + h)))
row = lambda y: b"\0" + base[3 * y:3 * (y + w)]
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"".join(row(y) for y in range(h)), 1)) + chunk(b"IEND", b"")
open(path, "wb").write(png)
PY
    pid=$(poll "$TMP/smi-$size.txt")
    "$BIN" upscale --device "$DEVICE" --model "$TMP/m/model.safetensors" "$in" "$TMP/mem-out.png" || rc=1
    kill "$pid" 2>/dev/null
    peak=$(sort -n "$TMP/smi-$size.txt" | tail -1)
    echo "gpu memory: upscale $size: peak ${peak:-?} MiB used on the card (idle ${base} MiB)"
  done
  pid=$(poll "$TMP/smi-train.txt")
  "$BIN" speed --device "$DEVICE" --arch seed --batch 16 --patch 64 --steps 3 --inference none || rc=1
  kill "$pid" 2>/dev/null
  peak=$(sort -n "$TMP/smi-train.txt" | tail -1)
  echo "gpu memory: training step seed network batch 16 x 64x64: peak ${peak:-?} MiB used on the card (idle ${base} MiB)"
  exit $rc
}
export -f s_memory
step memory 150 s_memory

# --- 6. a tiny search end to end ----------------------------------------------------
s_search() {
  local cfg=$TMP/gpu-quick.yaml
  # Relative data paths resolve against the config's folder: make them absolute.
  sed -e "s#\.\./assets#$REPO/assets#g" \
    -e "s#num_generation: *[0-9]*#num_generation: $SEARCH_GENERATIONS#" \
    -e "s#^\(    steps:\) *[0-9][0-9]*#\1 $SEARCH_STEPS#" \
    -e "s#milestones: \[[0-9]*\]#milestones: [$((SEARCH_STEPS * 3 / 4))]#" \
    configs/quick.yaml >"$cfg"
  grep -nE 'root_HR|num_generation|^    steps|milestones: \[' "$cfg"
  "$BIN" search --headless --stop-after search --devices "$DEVICE" --config "$cfg" --run-dir "$TMP/run" >"$TMP/search.log" 2>&1
  rc=$?
  tail -n 200 "$TMP/search.log"
  cp "$TMP/run/history.csv" "$OUT/history.csv" || rc=1
  python3 - "$TMP/run/history.csv" <<'PY' || rc=1
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
done = [r for r in rows if r["seconds"] not in ("", "nan")]
secs = [float(r["seconds"]) for r in done]
print(f"search: {len(rows)} rows, {len(done)} timed individuals")
for r in rows:
    print(f"  g{r['generation']} #{r['id']} {r['state']:>9} params {r['params']:>7} psnr {r['psnr']:>8} {r['seconds']:>7}s  {r['genes']}")
if secs:
    print(f"seconds per individual: mean {statistics.mean(secs):.2f}, median {statistics.median(secs):.2f}, min {min(secs):.2f}, max {max(secs):.2f}")
PY
  exit $rc
}
export -f s_search
step search 240 s_search

# --- summary -----------------------------------------------------------------------
summary() {
  echo
  echo "=== summary ($(elapsed)s, device $DEVICE)"
  printf '  %s\n' "${SUMMARY[@]}"
  python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
p = os.path.join(out, "device-check.json")
try:
    d = json.load(open(p))
    print(f"  device-check ok={d['ok']} (tolerance {d['tolerance']})")
    for c in d["cases"]:
        print(f"    {c['name']:<16} fwd rel {c['forward_rel']:.2e}  worst grad rel {c['grad_worst_rel']:.2e} ({c['grad_worst_param']})  loss {c['loss_cpu']:.6f}/{c['loss_device']:.6f}")
    i = d.get("inference")
    if i:
        print(f"  inference {i['input'][0]}x{i['input'][1]} -> {i['output'][0]}x{i['output'][1]}: first {i['first_ms']:.1f} ms, forward median {i['forward_median_ms']:.2f} ms, with transfers {i['end_to_end_median_ms']:.2f} ms")
except Exception as e:
    print(f"  device-check: no result ({e})")
PY
  grep -E '^device-check \(|^upscale run|^output size|^seconds per individual|^gpu memory|in [0-9.]+ s( \(.*\))?$' "$LOG" | sed 's/^/  /'
  python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def rows(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
def med(d, k):
    v = d.get(k)
    return v["median"] if isinstance(v, dict) else float("nan")
def inf(d):
    i = d.get("inference") or {}
    return (i.get("ms") or {}).get("median", float("nan"))
ours, torch = rows("speed.jsonl"), rows("pytorch.jsonl")
print("  training step ms (median) and 1280x720 inference ms, seed network, batch 16")
for d in ours:
    print(f"    esr-ea  patch {d.get('patch')} tf32={d.get('tf32')}{' (candle event tracking on)' if d.get('cuda_events') else ''}{' (' + d['variant'] + ')' if d.get('variant') else ''}: step {med(d,'step_ms'):.1f} (fwd {med(d,'forward_ms'):.1f}, bwd {med(d,'backward_ms'):.1f}, adam {med(d,'optimizer_ms'):.1f}), infer {inf(d):.1f}")
for d in torch:
    print(f"    pytorch patch {d.get('patch')} tf32={d.get('tf32')} bench={d.get('cudnn_benchmark')}: step {med(d,'step_ms'):.1f} (fwd {med(d,'forward_ms'):.1f}, bwd {med(d,'backward_ms'):.1f}, adam {med(d,'optimizer_ms'):.1f}), infer {inf(d):.1f}")
for d in [d for d in ours if not d.get("cuda_events")]:
    same = [t for t in torch if t.get("patch") == d.get("patch") and t.get("tf32") == d.get("tf32")]
    if same:
        best = min(same, key=lambda t: med(t, "step_ms"))
        print(f"    ratio patch {d.get('patch')} tf32={d.get('tf32')}{' ' + d['variant'] if d.get('variant') else ''}: step {med(d,'step_ms')/med(best,'step_ms'):.2f}x, inference {inf(d)/min(inf(t) for t in same):.2f}x of PyTorch's best")
PY
  [[ -s "$OUT/workers.txt" ]] && sed 's/^/  /' "$OUT/workers.txt"
  echo "  files: $(cd "$OUT" && ls | paste -sd' ')"
}
summary | tee -a "$LOG"
rm -rf "$TMP"

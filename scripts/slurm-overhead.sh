#!/usr/bin/env bash
# Measures, on a running Slurm (scripts/slurm-local.sh start):
#  1. submission-to-start latency of bare `sbatch` jobs (N in a row);
#  2. esr-ea's per-evaluation overhead with `--executor slurm` against the
#     local executor: the same tiny search, one training at a time, 1 thread.
#
#   scripts/slurm-overhead.sh [ESR_EA_BINARY]    (default target/debug/esr-ea)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/esr-ea}
N=${N:-10}
GENS=${GENS:-2}
STEPS=${STEPS:-20}
WORK=$(mktemp -d /tmp/esr-ea-overhead.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "1. bare sbatch: submission to start, $N jobs one after another"
total=0
for i in $(seq "$N"); do
    t0=$(now)
    sbatch --parsable --output=/dev/null --wrap "date +%s.%N > $WORK/start-$i" >/dev/null
    t1=$(now)
    while [[ ! -s $WORK/start-$i ]]; do sleep 0.01; done
    lat=$(echo "$(cat "$WORK/start-$i") - $t0" | bc)
    printf '   job %2d: sbatch returned after %.3f s, started after %.3f s\n' "$i" "$(echo "$t1 - $t0" | bc)" "$lat"
    total=$(echo "$total + $lat" | bc)
done
printf '   mean submission-to-start: %.3f s\n' "$(echo "$total / $N" | bc -l)"

echo "2. a tiny search ($GENS generations x 4 members, $STEPS steps each), one training at a time, 1 thread"
sed -e "s#\.\./assets#$PWD/assets#" -e "s/num_generation: 3 /num_generation: $GENS /" \
    -e "s/^    steps: 300 /    steps: $STEPS /" configs/quick.yaml > "$WORK/local.yaml"
cp "$WORK/local.yaml" "$WORK/slurm.yaml"
printf 'executor:\n  type: slurm\n  max_in_flight: 1\n  poll_seconds: 0.2\n' >> "$WORK/slurm.yaml"
for kind in local slurm; do
    t0=$(now)
    RAYON_NUM_THREADS=1 "$BIN" search --headless --stop-after search --config "$WORK/$kind.yaml" --run-dir "$WORK/run-$kind" > "$WORK/$kind.log" 2>&1
    t1=$(now)
    evals=$(grep -c '"event":"evaluated"' "$WORK/run-$kind/events.jsonl")
    train=$(python3 -c "import csv,sys; print(sum(float(r['seconds']) for r in csv.DictReader(open('$WORK/run-$kind/history.csv')) if r['seconds']))")
    wall=$(echo "$t1 - $t0" | bc)
    printf '   %-5s: %.2f s for %d evaluations (%.2f s each); training inside them %.2f s (%.2f s each)\n' \
        "$kind" "$wall" "$evals" "$(echo "$wall / $evals" | bc -l)" "$train" "$(echo "$train / $evals" | bc -l)"
    echo "$wall $evals" > "$WORK/$kind.wall"
done
read -r lw le < "$WORK/local.wall"
read -r sw se < "$WORK/slurm.wall"
printf '   overhead per evaluation, slurm vs local: %.2f s\n' "$(echo "($sw / $se) - ($lw / $le)" | bc -l)"
python3 - "$WORK/run-slurm/events.jsonl" <<'PY'
import json, sys
waits = [e["waited"] for e in map(json.loads, open(sys.argv[1])) if e.get("event") == "job_state" and e["state"] == "RUNNING"]
if waits:
    print("   RUNNING seen by the coordinator after submission (poll 0.2 s): " + ", ".join(f"{w:.2f}" for w in waits) + f" s; mean {sum(waits)/len(waits):.2f} s")
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

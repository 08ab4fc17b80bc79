#!/usr/bin/env bash
# Does evolution beat chance? (docs/random-baseline.md)
#
# The measurement behind docs/random-baseline.md: `esr-ea search` on the
# embedded configs/quick.yaml (the README's quick start, the pipeline as
# shipped: search, fully_train, benchmarks, report) for each seed with both
# strategies, interleaved (evolution then random, seed by seed) so that a
# change in the machine's load falls on both alike. Finished runs are
# skipped, so it can be stopped and started again (also in another session:
# runs/ is not committed, the collected files below are).
#
# After every run it copies what `esr-ea compare` reads (config.yaml,
# history.csv, final/1/result.json) and the run's wall time, peak memory and
# load into docs/random-baseline/runs/<strategy>-<seed>/, then compares all
# collected runs into docs/random-baseline/ (compare.md, .csv, .png).
#
# usage: scripts/random-baseline.sh [SEED...]     (default: 1 2 3 4 5)
#   ESR_EA=path/to/esr-ea   the binary (default target/release/esr-ea, built
#                           if missing); every run of one comparison must use
#                           the same binary: its commit is recorded per run
#   ESR_EA_COMMIT=abc1234   the commit it was built from (default: HEAD)
#   STRATEGIES="random"     only these strategies (default: evolution random),
#                           to share one seed's two runs between two streams
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2 3 4 5)
bin=${ESR_EA:-target/release/esr-ea}
[[ -x $bin ]] || cargo build --release --locked
commit=${ESR_EA_COMMIT:-$(git rev-parse --short HEAD)}
work=runs/random-baseline
keep=docs/random-baseline/runs
mkdir -p "$work" "$keep"
for seed in "${seeds[@]}"; do
    for strategy in ${STRATEGIES:-evolution random}; do
        name=$strategy-$seed
        if [[ -f $keep/$name/history.csv ]]; then
            echo "$name: collected already"
            continue
        fi
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        echo "$name: start $(date -u +%FT%TZ), load $load"
        rm -rf "${work:?}/$name"
        /usr/bin/time -v "$bin" search --seed "$seed" --strategy "$strategy" --headless \
            --run-dir "$work/$name" >"$work/$name.out" 2>"$work/$name.err"
        mkdir -p "$keep/$name/final/1"
        cp "$work/$name/config.yaml" "$work/$name/history.csv" "$keep/$name/"
        cp "$work/$name/final/1/result.json" "$keep/$name/final/1/"
        {
            echo "binary_commit: $commit"
            echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
            echo "load_at_start: $load"
            echo "load_at_end: $(cut -d' ' -f1-3 /proc/loadavg)"
            grep -E 'Elapsed \(wall|Maximum resident' "$work/$name.err" | sed 's/^\s*//'
        } >"$keep/$name/machine.txt"
        echo "$name: done, $(grep -m1 'fully trained model' "$work/$name.out" || echo 'no final model line')"
    done
done
"$bin" compare "$keep"/evolution-* "$keep"/random-* --out docs/random-baseline

#!/usr/bin/env bash
# Peak memory and time of `esr-ea upscale` with the seed document's 17-block
# network (520,595 params) at 256x256, 1000x1000 and 4000x3000 inputs, and
# the 256x256 upscale against one whole-image forward pass (`speed`).
#
#   benches/upscale-memory.sh [OUT_DIR]     (default target/upscale-memory)
#   SIZES="256x256" benches/upscale-memory.sh   (only some sizes)
#
# Needs the release binary (cargo build --release), /usr/bin/time and
# python3 (standard library only: the inputs are generated, not committed).
# Prints one line per size: peak resident MiB, wall seconds, tiles used.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/upscale-memory}
bin=target/release/esr-ea
[[ -x $bin ]] || { echo "build it first: cargo build --release" >&2; exit 1; }
mkdir -p "$out"
seed="G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 S_4_16_24 G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 G_6_16_64 G_8_16_16 S_8_16_32"
if [[ ! -f $out/model/model.safetensors ]]; then
    echo "training the seed network for 2 steps (a model file to upscale with)"
    $bin train --arch $seed --steps 2 --out "$out/model" >/dev/null
fi
# A smooth colour pattern with some detail, as a PNG (stdlib zlib + struct).
make_png() {
    python3 - "$1" "$2" "$3" <<'EOF'
import math, struct, sys, zlib
path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
for y in range(h):
    r = bytearray(b"\x00")
    for x in range(w):
        v = (x * 7 + y * 13) & 255
        r += bytes((v, (x * y) & 255, int(127 + 120 * math.sin(x / 17 + y / 23))))
    rows.append(bytes(r))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b"")
open(path, "wb").write(png)
EOF
}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %10s %9s  %s\n' input "peak MiB" "wall s" "plan"
for size in ${SIZES:-256x256 1000x1000 4000x3000}; do
    w=${size%x*}; h=${size#*x}
    [[ -f $out/in-$size.png ]] || make_png "$out/in-$size.png" "$w" "$h"
    /usr/bin/time -f '%M %e' -o "$out/time-$size.txt" \
        $bin upscale --model "$out/model/model.safetensors" "$out/in-$size.png" "$out/out-$size.png" \
        >"$out/log-$size.txt" 2>&1
    read -r kib secs <"$out/time-$size.txt"
    plan=$(grep -oE '\((one pass|[0-9]+ tiles of [0-9]+ px)\)' "$out/log-$size.txt" | tail -1 || true)
    printf '%-10s %10.0f %9.2f  %s\n' "$size" "$(echo "$kib / 1024" | bc -l)" "$secs" "$plan"
done
if command -v farm-bench >/dev/null; then
    echo "256x256: upscale (A) against one whole-image forward pass of the same network (B: speed --steps 0)"
    farm-bench -n 5 --timeout 300 --vs "$bin speed --arch seed --steps 0 --inference 512x512" \
        -- $bin upscale --model "$out/model/model.safetensors" "$out/in-256x256.png" "$out/out-256x256.png"
fi

#!/usr/bin/env python3
"""Where one training step's GPU time goes, from Nsight Compute's CSV.

scripts/gpu-check.sh runs `ncu --profile-from-start off --metrics
gpu__time_duration.sum --csv` over `esr-ea speed --profile-last-step` and
over `benches/pytorch/esrn.py --profile-last-step`, so each CSV holds the
kernels of one step (forward, backward, optimizer), run one at a time. This
sums their durations by kernel and by kind of work and prints the programs
side by side: the sum is the GPU's busy time for the step, to set against
the step's wall time from an unprofiled run.

Usage: ncu_summary.py LABEL=FILE.csv [LABEL=FILE.csv ...] [--top N]

Both of ncu's CSV layouts are read: `--page details` (one row per kernel
and metric, with "Metric Name", "Metric Unit", "Metric Value") and `--page
raw` (one row per kernel, a column per metric, units in the second row).
Standard library only: it runs on the GPU machine's Python as is.
"""

import csv
import re
import sys
from collections import defaultdict

METRIC = "gpu__time_duration.sum"

# Microseconds per unit, as ncu prints them.
UNITS = {"ns": 1e-3, "nsecond": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3,
         "second": 1e6, "s": 1e6}

# (kind, pattern on the lower-cased kernel name), first match wins.
KINDS = [
    ("esr-ea's own kernels", r"^esr_"),
    ("layout transforms", r"nchwtonhwc|nhwctonchw|convert_?tensor|transpose|permute|shuffle"),
    ("convolutions and GEMMs", r"conv|gemm|cudnn|xmma|cutlass|winograd|fft|wgrad|dgrad|fprop|implicit|im2col|sm90_|sm80_|kernel_?\d"),
    ("copies, concatenations, fills", r"copy|cat|fill|memset|zero|narrow|index"),
    ("reductions (sums, norms, bias gradients)", r"reduce|sum|norm|bias|splitk|mean"),
    ("optimizer", r"adam|multi_tensor|foreach|fused_"),
]


def kind_of(name):
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low):
            return kind
    return "other element-wise"


def number(text):
    return float(text.replace(",", "").strip() or "nan")


def read(path):
    """[(kernel name, microseconds)] in launch order."""
    with open(path, newline="", errors="replace") as f:
        lines = f.read().splitlines()
    # ncu's own messages (==PROF==, ==WARNING==) come before the table.
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        raise SystemExit(f"{path}: no ncu CSV table (no line starting with \"ID\")")
    rows = list(csv.reader(lines[start:]))
    head = rows[0]

    def col(*names):
        for n in names:
            if n in head:
                return head.index(n)
        return None

    name_col = col("Kernel Name", "Function Name", "Name")
    if name_col is None:
        raise SystemExit(f"{path}: no kernel-name column in {head}")
    kernels = []
    if "Metric Name" in head:
        m, u, v = col("Metric Name"), col("Metric Unit"), col("Metric Value")
        for r in rows[1:]:
            if len(r) > max(m, u, v) and r[m] == METRIC:
                kernels.append((r[name_col], number(r[v]) * UNITS.get(r[u].strip(), float("nan"))))
    elif METRIC in head:
        c = head.index(METRIC)
        body = rows[1:]
        unit = "nsecond"
        if body and not body[0][col("ID")].strip():  # the units row
            unit = body[0][c].strip() or unit
            body = body[1:]
        for r in body:
            if len(r) > c:
                kernels.append((r[name_col], number(r[c]) * UNITS.get(unit, float("nan"))))
    else:
        raise SystemExit(f"{path}: no {METRIC} in the table")
    return kernels


def summarize(label, kernels, top):
    total = sum(us for _, us in kernels)
    by_name = defaultdict(lambda: [0, 0.0])
    by_kind = defaultdict(lambda: [0, 0.0])
    for name, us in kernels:
        by_name[name][0] += 1
        by_name[name][1] += us
        by_kind[kind_of(name)][0] += 1
        by_kind[kind_of(name)][1] += us
    print(f"== {label}: {len(kernels)} kernel launches, {total / 1e3:.2f} ms of GPU time in the step")
    for kind, (n, us) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        print(f"   {kind:<42} {us / 1e3:8.2f} ms {100 * us / total if total else 0:5.1f}%  {n:6d} launches")
    print(f"   top {top} kernels by time (launches, total ms, mean us, share):")
    for name, (n, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]:
        short = name if len(name) <= 100 else name[:97] + "..."
        print(f"   {n:6d} {us / 1e3:8.3f} ms {us / n:9.1f} us {100 * us / total if total else 0:5.1f}%  {short}")
    print()
    return {k: v[1] for k, v in by_kind.items()}, total


def main(argv):
    top = 25
    pairs = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--top":
            top = int(argv[i + 1])
            i += 2
            continue
        if "=" not in a:
            raise SystemExit(f"argument '{a}': expected LABEL=FILE.csv (or --top N)")
        pairs.append(a.split("=", 1))
        i += 1
    if not pairs:
        raise SystemExit(__doc__)
    results = []
    for label, path in pairs:
        try:
            kernels = read(path)
        except (OSError, SystemExit) as e:
            # One program's failed profile leaves the others' summaries.
            print(f"== {label}: no profile ({e})\n")
            continue
        kinds, total = summarize(label, kernels, top)
        results.append((label, kinds, total))
    if len(results) > 1:
        labels = [r[0] for r in results]
        print("== side by side, ms of GPU time per step: " + " | ".join(labels))
        kinds = sorted({k for r in results for k in r[1]}, key=lambda k: -results[0][1].get(k, 0.0))
        for k in kinds:
            print(f"   {k:<42} " + " ".join(f"{r[1].get(k, 0.0) / 1e3:9.2f}" for r in results))
        print(f"   {'total':<42} " + " ".join(f"{r[2] / 1e3:9.2f}" for r in results))


if __name__ == "__main__":
    main(sys.argv[1:])

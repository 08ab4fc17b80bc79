#!/usr/bin/env python3
"""PyTorch side of the GPU comparison, run by scripts/gpu-check.sh beside
`esr-ea speed --device cuda:0` (same network, shapes and phases).

Checks the PyTorch network against the reference vectors on the GPU, then
times a training step at batch 16 x 3x32x32 and 16 x 3x64x64 (x2) and the
inference of a 1280x720 output. Prints one JSON object per case (prefixed
`json:`) and a table. Extra arguments go to every case (e.g. `--tf32`,
`--steps 10`, `--device cuda:1`).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import esrn  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tf32", action="store_true")
    args, extra = ap.parse_known_args()
    if not torch.cuda.is_available() and args.device.startswith("cuda"):
        raise SystemExit("error: torch sees no CUDA device (torch.cuda.is_available() is False)")
    print(f"torch {torch.__version__}, device {args.device}: "
          f"{torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}", flush=True)
    common = ["--device", args.device, "--steps", str(args.steps), "--warmup", "2"] + (["--tf32"] if args.tf32 else [])
    print("reference vectors:", esrn.check_vectors(torch.device(args.device)), flush=True)
    cases = [
        ("train 16x3x32x32", ["--batch", "16", "--patch", "32", "--inference", "none"]),
        ("train 16x3x64x64", ["--batch", "16", "--patch", "64", "--inference", "none"]),
        ("infer 1x3x360x640", ["--steps", "0", "--inference", "1280x720", "--inference-runs", "10",
                               "--inference-warmup", "2"]),
    ]
    rows = []
    for name, case in cases:
        cli = common + case + extra
        ns = esrn.build_parser().parse_args(cli)
        esrn.apply_backend_flags(ns)
        r = esrn.measure(ns)
        print("json:", json.dumps({"case": name, **r}), flush=True)
        rows.append((name, r))
    print()
    print(f"{'case':<20} {'phase':<9} {'median ms':>10} {'min':>8} {'max':>8} {'GFLOP/s':>9} {'peak MiB':>9}")
    for name, r in rows:
        phases = []
        if r["step_ms"]:
            g = r["train_gflops"]
            p = r["peak_rss_bytes"]
            phases += [("step", r["step_ms"], g["step"], p["overall"]), ("forward", r["forward_ms"], g["forward"], None),
                       ("backward", r["backward_ms"], g["backward"], None), ("Adam", r["optimizer_ms"], None, None)]
        if r["inference"]:
            phases.append(("infer", r["inference"]["ms"], r["inference"]["gflops"], r["inference"]["peak_rss_bytes"]))
        for i, (ph, ms, gf, pk) in enumerate(phases):
            gf_s = f"{gf:.0f}" if gf else ""
            pk_s = f"{pk / 2**20:.0f}" if pk else ""
            print(f"{name if i == 0 else '':<20} {ph:<9} {ms['median']:>10.2f} {ms['min']:>8.2f} {ms['max']:>8.2f} "
                  f"{gf_s:>9} {pk_s:>9}")
    print(f"(peak MiB: {rows[0][1]['peak_memory_kind'] if rows else ''})")


if __name__ == "__main__":
    main()

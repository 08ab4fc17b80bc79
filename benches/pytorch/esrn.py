#!/usr/bin/env python3
"""ESRN in PyTorch: the same network as esr-ea's (spec section 4), for timing
side by side with `esr-ea speed`.

Tensor names follow the reference (spec section 8), so the test vectors load
as they are. Before timing it loads `esrn_mixed_x2.safetensors` (weights,
`input`, `expected_output`) and asserts that this network reproduces the
expected output: the proof that both programs time the same network.

    python3 benches/pytorch/esrn.py --check             # vectors only
    python3 benches/pytorch/esrn.py --threads 2 --batch 16 --patch 32 --json
    python3 benches/pytorch/esrn.py --device cuda --batch 16 --patch 64 --json

Options mirror `esr-ea speed` (same defaults, same JSON keys), so
benches/compare.sh can run both with one argument list. Needs only torch
(the safetensors file is parsed here, so no `safetensors` package is needed).
"""

import argparse
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The quick-config network of `esr-ea speed` (use it with --g0 16).
QUICK_GENES = "G_6_16_16 C_4_16_24 G_4_8_8 G_4_16_16 G_8_8_24"
SEED_GENES = (
    "G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 S_4_16_24 "
    "G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 "
    "G_6_16_64 G_8_16_16 S_8_16_32"
)

# ----------------------------------------------------------------------------
# The network


def parse_gene(text):
    """'S_4_16_24' -> ('S', convs 4, growth 16, out 24)."""
    kind, c, g, o = text.strip().strip("'\"").split("_")
    if kind not in ("S", "G", "C"):
        raise ValueError(f"gene {text!r}: kind must be S, G or C")
    return kind, int(c), int(g), int(o)


def conv(k, cin, cout, bias, groups=1):
    return nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, groups=groups, bias=bias)


def group_conv_groups(c):
    """Groups of the c-th (0-based) dense conv of a G block: min(4, 2^floor(log2(c+1)))."""
    return min(4, 1 << ((c + 1).bit_length() - 1))


def channel_shuffle(x, groups):
    if groups <= 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class RDBConv(nn.Module):
    """Dense layer c of a G block: the running concat ((c+1)*G channels) is
    channel-shuffled with c+1 groups and fed to `conv.0`, a 3x3 conv with
    min(4, 2^floor(log2(c+1))) groups."""

    def __init__(self, c, g, bias):
        super().__init__()
        self.shuffle = c + 1
        self.conv = nn.Sequential(conv(3, (c + 1) * g, g, bias, group_conv_groups(c)), nn.ReLU(inplace=True))

    def forward(self, cat):
        return self.conv(channel_shuffle(cat, self.shuffle))


class Block(nn.Module):
    """An efficient residual dense block (S, G or C) with input width `cin`."""

    def __init__(self, gene, cin, bias):
        super().__init__()
        kind, c_num, g, o = gene
        self.kind, self.cin, self.g, self.o = kind, cin, g, o
        if cin != g:
            self.InConv = conv(1, cin, g, bias)
        if o != cin and o != g:
            self.OutConv = conv(1, cin, o, bias)
        if kind == "G":
            self.convs = nn.ModuleList(RDBConv(c, g, bias) for c in range(c_num))
            self.LFF = conv(1, (c_num + 1) * g, o, bias)
        else:
            self.Convs = nn.ModuleList(
                nn.Sequential(conv(3, g, g, bias), nn.ReLU(inplace=True)) for _ in range(c_num)
            )
            shrinks = []
            for j in range(c_num):
                last = j + 1 == c_num
                if kind == "S":
                    shrinks.append(conv(1, (2 + j) * g, o if last else g, bias))
                else:
                    cin_s = (c_num + 1) * g // 4 if last else (2 + j) * g
                    shrinks.append(conv(1, cin_s, o if last else g, bias))
            self.ShrinkConv = nn.ModuleList(shrinks)

    def body(self, xi):
        if self.kind == "S":
            cat, cur = [xi], xi
            for conv3, shrink in zip(self.Convs, self.ShrinkConv):
                cat.append(conv3(cur))
                cur = shrink(torch.cat(cat, 1))
            return cur
        if self.kind == "G":
            cat = xi
            for layer in self.convs:
                cat = torch.cat([cat, layer(cat)], 1)
            return self.LFF(cat)
        # C: pooled, one conv applied three times per step (shared weights).
        p = F.avg_pool2d(xi, 2)
        cat, cur = [p], p
        last = len(self.Convs) - 1
        for i, (conv3, shrink) in enumerate(zip(self.Convs, self.ShrinkConv)):
            t = cur
            for _ in range(3):
                t = conv3(t)
            cat.append(t)
            if i < last:
                cur = shrink(torch.cat(cat, 1))
            else:
                return shrink(F.pixel_shuffle(torch.cat(cat, 1), 2))

    def forward(self, x):
        xi = self.InConv(x) if self.cin != self.g else x
        body = self.body(xi)
        if self.o == self.cin:
            return x + body
        if self.o == self.g:
            return xi + body
        return self.OutConv(x) + body


class Body(nn.Module):
    """`ERDBLayer`: the second shallow conv, the blocks and global fusion."""

    def __init__(self, genes, g0, bias):
        super().__init__()
        self.SFENet2 = conv(3, g0, g0, bias)
        blocks, cin = [], g0
        for gene in genes:
            blocks.append(Block(gene, cin, bias))
            cin = gene[3]
        self.ERBD = nn.ModuleList(blocks)
        self.GFF = nn.Sequential(conv(1, sum(g[3] for g in genes), g0, bias), conv(3, g0, g0, bias))

    def forward(self, x0):
        x = self.SFENet2(x0)
        kept = []
        for b in self.ERBD:
            x = b(x)
            kept.append(x)
        return self.GFF(torch.cat(kept, 1))


class ESRN(nn.Module):
    """The whole network; `forward` pads odd sizes when a C block needs even ones."""

    def __init__(self, genes, g0=32, scale=2, bias=True):
        super().__init__()
        genes = [parse_gene(g) if isinstance(g, str) else g for g in genes]
        if scale not in (2, 3, 4) or g0 % 4 or not genes:
            raise ValueError("scale must be 2, 3 or 4, G0 a multiple of 4, and at least one gene")
        self.scale = scale
        self.multiple = 2 if any(g[0] == "C" for g in genes) else 1
        self.SFENet1 = conv(3, 3, g0, bias)
        self.ERDBLayer = Body(genes, g0, bias)
        if scale == 2:
            up = [conv(3, g0, 3 * g0, bias), nn.PixelShuffle(2), conv(3, 3 * g0 // 4, 3, bias)]
        elif scale == 3:
            up = [conv(3, g0, 27 * g0 // 4, bias), nn.PixelShuffle(3), conv(3, 3 * g0 // 4, 3, bias)]
        else:
            up = [
                conv(3, g0, 4 * g0, bias),
                nn.PixelShuffle(2),
                conv(3, g0, 4 * g0, bias),
                nn.PixelShuffle(2),
                conv(3, g0, 3, bias),
            ]
        self.UPNet = nn.Sequential(*up)

    def forward(self, lr):
        h, w = lr.shape[-2:]
        m = self.multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m
        x = F.pad(lr, (0, pw, 0, ph), mode="replicate") if ph or pw else lr
        x0 = self.SFENet1(x)
        y = self.UPNet(self.ERDBLayer(x0) + x0)
        return y[..., : self.scale * h, : self.scale * w]


# ----------------------------------------------------------------------------
# Reference vectors

_ST_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def load_safetensors(path):
    """Reads a .safetensors file into a dict of CPU tensors (format: u64 LE
    header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = bytearray(data[base + start : base + end])
        t = torch.frombuffer(buf, dtype=_ST_DTYPES[info["dtype"]]) if buf else torch.empty(0)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def vectors_dir():
    """The shared test vectors: $ESR_EA_VECTORS, else ../shared or shared/
    beside the repository, else /work/shared."""
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    candidates = [
        os.environ.get("ESR_EA_VECTORS", ""),
        os.path.join(repo, "tests", "data", "vectors"),
        os.path.join(repo, "..", "shared", "data", "vectors"),
        os.path.join(repo, "shared", "data", "vectors"),
        "/work/shared/data/vectors",
    ]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "esrn_vectors.json")):
            return c
    return None


def check_vectors(device, scales=(2, 3, 4)):
    """Loads the reference weights and asserts the expected output (to 1e-4).
    Returns a short description; raises AssertionError on a mismatch and
    FileNotFoundError when the vectors are missing."""
    d = vectors_dir()
    if d is None:
        raise FileNotFoundError("test vectors not found (set ESR_EA_VECTORS to tests/data/vectors)")
    meta = json.load(open(os.path.join(d, "esrn_vectors.json")))
    lines = []
    for entry in meta["files"]:
        if entry["scale"] not in scales:
            continue
        tensors = load_safetensors(os.path.join(d, entry["file"]))
        net = ESRN(entry["arch"], entry["G0"], entry["scale"], bias=True)
        weights = {k: v for k, v in tensors.items() if k not in ("input", "expected_output")}
        net.load_state_dict(weights, strict=True)
        net = net.to(device).eval()
        params = sum(p.numel() for p in net.parameters())
        assert params == entry["params"], f"{entry['file']}: {params} params, expected {entry['params']}"
        with torch.no_grad():
            y = net(tensors["input"].to(device)).cpu()
        want = tensors["expected_output"]
        assert y.shape == want.shape, f"{entry['file']}: output {tuple(y.shape)}, expected {tuple(want.shape)}"
        err = (y - want).abs().max().item()
        assert err < 1e-4, f"{entry['file']}: max abs difference {err:.3e} (allowed 1e-4)"
        lines.append(f"{entry['file']}: {params} params, output {tuple(y.shape)}, max |diff| {err:.1e}")
    return "; ".join(lines)


# ----------------------------------------------------------------------------
# Timing (same phases and JSON keys as `esr-ea speed`)


def multi_adds_720p(genes, g0, scale):
    """Exact Multi-Adds for a 1280x720 output (spec section 5), and the LR
    pixel count they are for."""
    genes = [parse_gene(g) for g in genes]
    w, h = 1280 // scale, 720 // scale
    lr, half, hr = w * h, (w // 2) * (h // 2), scale * scale * w * h
    total = 0

    def add(k, cin, cout, pixels, groups=1, runs=1):
        nonlocal total
        total += pixels * runs * cout * (cin // groups) * k * k

    cin = g0
    for kind, c_num, g, o in genes:
        if cin != g:
            add(1, cin, g, lr)
        if kind == "S":
            for i in range(c_num):
                add(3, g, g, lr)
                add(1, (2 + i) * g, o if i + 1 == c_num else g, lr)
        elif kind == "G":
            for c in range(c_num):
                add(3, (c + 1) * g, g, lr, groups=group_conv_groups(c))
            add(1, (c_num + 1) * g, o, lr)
        else:
            for i in range(c_num):
                add(3, g, g, half, runs=3)
                if i + 1 < c_num:
                    add(1, (2 + i) * g, g, half)
            add(1, (c_num + 1) * g // 4, o, lr)
        if o != cin and o != g:
            add(1, cin, o, lr)
        cin = o
    add(3, 3, g0, lr)
    add(3, g0, g0, lr)
    add(1, sum(g[3] for g in genes), g0, lr)
    add(3, g0, g0, lr)
    if scale == 2:
        add(3, g0, 3 * g0, lr)
        add(3, 3 * g0 // 4, 3, hr)
    elif scale == 3:
        add(3, g0, 27 * g0 // 4, lr)
        add(3, 3 * g0 // 4, 3, hr)
    else:
        add(3, g0, 4 * g0, lr)
        add(3, g0, 4 * g0, 4 * lr)
        add(3, g0, 3, hr)
    return total, lr


class Memory:
    """Peak memory per phase: the process's VmHWM (reset through
    /proc/self/clear_refs) on the CPU, torch's allocator peak on CUDA."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def reset(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def current(self):
        """Resident host memory now (VmRSS), bytes; 0 on CUDA."""
        if self.cuda:
            return 0
        try:
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def peak(self):
        if self.cuda:
            return torch.cuda.max_memory_allocated()
        try:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


def stats(ms):
    if not ms:
        return None
    v = sorted(ms)
    return {"median": v[len(v) // 2], "min": v[0], "max": v[-1]}


def gflops(flops, st):
    return flops / (st["median"] * 1e-3) / 1e9 if st and st["median"] > 0 else None


def measure(args):
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    mem = Memory(device)
    baseline = mem.current()
    named = {"seed": SEED_GENES, "quick": QUICK_GENES}
    arch = " ".join(args.arch) if args.arch else "seed"
    genes = named.get(arch, arch).split()
    torch.manual_seed(args.seed)
    net = ESRN(genes, args.g0, args.scale, bias=not args.no_bias).to(device)
    params = sum(p.numel() for p in net.parameters())
    b, p, s = args.batch, args.patch, args.scale
    phases = {k: {"ms": [], "peak": 0} for k in ("forward", "backward", "optimizer", "step", "inference")}

    def timed(name, fn):
        sync()
        mem.reset()
        t = time.perf_counter()
        r = fn()
        sync()
        ms = (time.perf_counter() - t) * 1e3
        return r, ms, mem.peak()

    if args.steps > 0:
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        lr = torch.rand(b, 3, p, p, device=device)
        hr = torch.rand(b, 3, s * p, s * p, device=device)
        last = args.warmup + args.steps - 1
        for i in range(args.warmup + args.steps):
            profiled = args.profile_last_step and i == last
            if profiled:
                # The range a waiting profiler records (ncu --profile-from-start off).
                sync()
                torch.cuda.profiler.start()
            loss, t_f, m_f = timed("forward", lambda: (net(lr) - hr).abs().mean())
            _, t_b, m_b = timed("backward", loss.backward)
            def step():
                opt.step()
                opt.zero_grad(set_to_none=True)
            _, t_o, m_o = timed("optimizer", step)
            if profiled:
                torch.cuda.profiler.stop()
            if i >= args.warmup:
                for k, t, m in (("forward", t_f, m_f), ("backward", t_b, m_b), ("optimizer", t_o, m_o),
                                ("step", t_f + t_b + t_o, max(m_f, m_b, m_o))):
                    phases[k]["ms"].append(t)
                    phases[k]["peak"] = max(phases[k]["peak"], m)
            if not torch.isfinite(loss):
                raise RuntimeError(f"training step {i}: the loss is {loss.item()}")
    inference = None
    if args.inference.lower() != "none":
        w, h = (int(v) for v in args.inference.lower().split("x"))
        w, h = w // s, h // s
        net.eval()
        x = torch.rand(1, 3, h, w, device=device)
        with torch.no_grad():
            for i in range(args.inference_warmup + max(1, args.inference_runs)):
                _, t, m = timed("inference", lambda: net(x))
                if i >= args.inference_warmup:
                    phases["inference"]["ms"].append(t)
                    phases["inference"]["peak"] = max(phases["inference"]["peak"], m)
        inference = (w, h)
    ma, ma_lr = multi_adds_720p(genes, args.g0, s)
    per_lr_pixel = 2.0 * ma / ma_lr
    train_flops = per_lr_pixel * b * p * p
    st = {k: stats(v["ms"]) for k, v in phases.items()}
    result = {
        "implementation": f"pytorch {torch.__version__}",
        "arch": " ".join(genes),
        "g0": args.g0,
        "scale": s,
        "bias": not args.no_bias,
        "params": params,
        "multi_adds_720p": ma,
        "device": str(device),
        "tf32": bool(cuda and args.tf32),
        "cudnn_benchmark": bool(cuda and args.cudnn_benchmark),
        "threads": None if cuda else torch.get_num_threads(),
        "batch": b,
        "patch": p,
        "steps": args.steps,
        "warmup": args.warmup,
        "forward_ms": st["forward"],
        "backward_ms": st["backward"],
        "optimizer_ms": st["optimizer"],
        "step_ms": st["step"],
        "train_gflops": {
            "forward": gflops(train_flops, st["forward"]),
            "backward": gflops(2 * train_flops, st["backward"]),
            "step": gflops(3 * train_flops, st["step"]),
        },
        "inference": None,
        "peak_rss_bytes": {k: phases[k]["peak"] for k in ("forward", "backward", "optimizer", "inference")},
        "peak_memory_kind": "cuda max_memory_allocated" if cuda else "host VmHWM",
        "baseline_rss_bytes": baseline,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    result["peak_rss_bytes"]["overall"] = max(result["peak_rss_bytes"].values())
    if inference:
        w, h = inference
        result["inference"] = {
            "input": f"1x3x{h}x{w}",
            "output": f"{w * s}x{h * s}",
            "runs": len(phases["inference"]["ms"]),
            "ms": st["inference"],
            "gflops": gflops(per_lr_pixel * w * h, st["inference"]),
            "peak_rss_bytes": phases["inference"]["peak"],
        }
    return result


def print_table(r):
    print(f"{r['implementation']}: {len(r['arch'].split())} blocks, G0 {r['g0']}, x{r['scale']}, "
          f"{r['params']} params; device {r['device']}, threads {r['threads']}")
    row = "{:<26} {:>9.1f} {:>9.1f} {:>9.1f} {:>9} {:>9.0f}"
    print("{:<26} {:>9} {:>9} {:>9} {:>9} {:>9}".format("phase", "median ms", "min", "max", "GFLOP/s", "peak MiB"))
    mib = lambda v: (v or 0) / 2**20
    gf = lambda v: "" if v is None else f"{v:.1f}"
    if r["step_ms"]:
        print(f"training, batch {r['batch']} x 3x{r['patch']}x{r['patch']}, {r['steps']} steps")
        for name, key, g, pk in (("  forward + L1", "forward_ms", "forward", "forward"),
                                 ("  backward", "backward_ms", "backward", "backward"),
                                 ("  Adam", "optimizer_ms", None, "optimizer"),
                                 ("  whole step", "step_ms", "step", "overall")):
            m = r[key]
            print(row.format(name, m["median"], m["min"], m["max"],
                             gf(r["train_gflops"][g]) if g else "", mib(r["peak_rss_bytes"][pk])))
    i = r["inference"]
    if i:
        m = i["ms"]
        print(row.format(f"inference {i['input']} -> {i['output']}", m["median"], m["min"], m["max"],
                         gf(i["gflops"]), mib(i["peak_rss_bytes"])))
    print(f"load average {r['load_average']}")


def build_parser():
    """The command line (the same options and defaults as `esr-ea speed`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=None, nargs="+",
                    help="genes, as separate arguments or space separated, or seed / quick (default: the seed's 17 blocks)")
    ap.add_argument("--g0", type=int, default=32)
    ap.add_argument("--no-bias", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--inference", default="1280x720", help="output size WxH, or none")
    ap.add_argument("--inference-runs", type=int, default=1)
    ap.add_argument("--inference-warmup", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (off: plain f32, like candle)")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="time cuDNN's algorithms per shape first (torch.backends.cudnn.benchmark), as esr-ea does")
    ap.add_argument("--check", action="store_true", help="only check the reference vectors")
    ap.add_argument("--no-check", action="store_true", help="skip the reference-vector check")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--profile-last-step", action="store_true",
                    help="wrap the last timed step in a CUDA profiler range (ncu --profile-from-start off); CUDA only")
    return ap


def apply_backend_flags(args):
    """Device, TF32 and thread settings from the parsed arguments."""
    if args.device.startswith("cuda:"):
        torch.cuda.set_device(int(args.device.split(":")[1]))
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.threads:
        torch.set_num_threads(args.threads)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.profile_last_step and (not args.device.startswith("cuda") or args.steps < 1):
        raise SystemExit("error: --profile-last-step needs a CUDA --device and --steps 1 or more")
    apply_backend_flags(args)
    device = torch.device(args.device)
    check = None
    if not args.no_check:
        try:
            check = check_vectors(device)
        except FileNotFoundError as e:
            if args.check:
                raise SystemExit(f"error: {e}")
            print(f"warning: {e}; network not checked", file=sys.stderr)
        else:
            print(f"reference vectors reproduced: {check}", file=sys.stderr)
    if args.check:
        return
    result = measure(args)
    result["vectors_checked"] = check
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()

//! `esr-ea speed`: how fast this machine trains and runs an architecture.
//!
//! Times each phase of a training step (forward + L1 loss, backward, the
//! project's Adam, the whole step) and one inference, and reports the
//! achieved GFLOP/s from the exact Multi-Adds and the peak host memory of
//! each phase. `benches/compare.sh` runs it beside the PyTorch twin
//! (`benches/pytorch/esrn.py`) with the same shapes.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::model::Esrn;
use crate::ops::mem;
use crate::space::cost::Resolution;
use crate::space::{Arch, GeneList};
use crate::train::fitness::device;
use crate::train::{Adam, AdamConfig};

/// The seed architecture of the reference's search (17 blocks), the default.
pub const SEED_GENES: &str = "G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 \
    S_4_16_24 G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 \
    G_6_16_64 G_8_16_16 S_8_16_32";

/// Arguments of `speed`.
#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// Architecture to time (default: the reference's 17-block seed network).
    #[arg(long, value_name = "GENES", num_args = 1..)]
    pub arch: Vec<String>,
    /// Channels of the shallow features and global fusion (a multiple of 4).
    #[arg(long, default_value_t = 32)]
    pub g0: usize,
    /// Convolutions without biases (the reference's 1.x network).
    #[arg(long)]
    pub no_bias: bool,
    /// Training batch size.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// LR patch side in pixels (the HR patch is `scale` times larger).
    #[arg(long, default_value_t = 32)]
    pub patch: usize,
    /// Upscaling factor.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub scale: u8,
    /// Timed training steps (0: time inference only).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps (and inferences) before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// CPU threads of the convolution kernels (RAYON_NUM_THREADS; default: the
    /// physical cores). candle's element-wise ops run on one thread unless
    /// CANDLE_NUM_THREADS says otherwise (see `esr_ea::ops::configure_threads`).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Device: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output size WxH of the timed inference (one image, no gradients), or `none`.
    #[arg(long, default_value = "1280x720", value_name = "WxH|none")]
    pub inference: String,
    /// Timed inference runs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub inference_runs: usize,
    /// Untimed inference runs before the timed ones.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub inference_warmup: usize,
    /// Seed of the weights and the random batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Median, minimum and maximum of a set of timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Middle value (upper middle for an even count).
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
}

impl Stats {
    /// Summarises `ms`; `None` when it is empty.
    pub fn of(ms: &[f64]) -> Option<Stats> {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Stats {
            median: *v.get(v.len() / 2)?,
            min: *v.first()?,
            max: *v.last()?,
        })
    }

    fn json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

/// Timings and peak memory of one phase over the timed runs.
#[derive(Debug, Default)]
struct Phase {
    ms: Vec<f64>,
    /// Highest resident-set peak over the runs, bytes (0: unknown).
    peak: u64,
}

impl Phase {
    fn record(&mut self, ms: f64, peak: Option<u64>) {
        self.ms.push(ms);
        self.peak = self.peak.max(peak.unwrap_or(0));
    }
}

/// Runs `speed`.
pub fn run(args: &SpeedArgs) -> Result<()> {
    if args.threads == Some(0) {
        bail!("--threads 0: give at least 1 thread");
    }
    if let Some(t) = args.threads.filter(|&t| t > MAX_THREADS) {
        bail!("--threads {t}: at most {MAX_THREADS} threads");
    }
    // Before anything touches candle: its thread pools read these once.
    crate::ops::configure_threads(args.threads);
    let arch = parse_arch(args)?;
    if args.batch == 0 || args.patch == 0 {
        bail!(
            "--batch {} --patch {}: both must be at least 1",
            args.batch,
            args.patch
        );
    }
    let inference = parse_inference(&args.inference, arch.scale)?;
    if let Some((w, h)) = inference {
        check_inference_memory(&arch, w, h, &args.inference)?;
    }
    let dev = device(&args.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let report = measure(args, &arch, inference, &dev)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn parse_arch(args: &SpeedArgs) -> Result<Arch> {
    let genes = if args.arch.is_empty() {
        GeneList::parse_args(&[SEED_GENES])?
    } else {
        GeneList::parse_args(&args.arch)?
    };
    let arch = Arch {
        genes,
        g0: args.g0,
        scale: args.scale as usize,
        bias: !args.no_bias,
    };
    crate::model::esrn::check_arch(&arch).map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    Ok(arch)
}

/// Parses `WxH` (an output size; the LR input is `W/scale × H/scale`) or
/// `none`; returns the LR (width, height).
pub fn parse_inference(text: &str, scale: usize) -> Result<Option<(usize, usize)>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)));
    match parsed {
        Some((w, h)) if w >= scale && h >= scale => Ok(Some((w / scale, h / scale))),
        _ => bail!(
            "--inference '{text}': expected an output size WxH of at least {scale}x{scale} (like 1280x720) or 'none'"
        ),
    }
}

/// Threads beyond this are refused (spawning them fails or thrashes).
const MAX_THREADS: usize = 1024;

/// `speed` times one whole, untiled inference: refuse one that cannot fit
/// in memory instead of aborting on a failed allocation.
fn check_inference_memory(arch: &Arch, w: usize, h: usize, text: &str) -> Result<()> {
    let need = (crate::model::tiled::bytes_per_pixel(arch) as u128) * (w as u128) * (h as u128);
    let have = crate::model::tiled::available_memory().unwrap_or(u64::MAX);
    if need > u128::from(have) {
        bail!(
            "--inference {text}: one untiled inference of that size needs about {} GiB, more than the {} GiB available (`esr-ea upscale` tiles images of any size)",
            need >> 30,
            have >> 30
        );
    }
    Ok(())
}

/// Uniform values in 0..1 from a seeded generator.
fn random(rng: &mut ChaCha8Rng, dims: &[usize], dev: &Device) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
    Ok(Tensor::from_vec(v, dims, dev)?)
}

/// Runs `f` and returns its result with its wall time in milliseconds, the
/// device synchronised before and after so queued GPU work is counted.
fn timed<R>(dev: &Device, f: impl FnOnce() -> Result<R>) -> Result<(R, f64)> {
    dev.synchronize()?;
    let t = Instant::now();
    let r = f()?;
    dev.synchronize()?;
    Ok((r, t.elapsed().as_secs_f64() * 1e3))
}

/// Resets the memory peak, runs `f` timed, and reads the peak it reached.
fn phase<R>(dev: &Device, f: impl FnOnce() -> Result<R>) -> Result<(R, f64, Option<u64>)> {
    mem::reset_peak();
    let (r, ms) = timed(dev, f)?;
    Ok((r, ms, mem::rss().map(|m| m.peak)))
}

/// Forward FLOPs (2 per multiply-add) for `lr_pixels` LR pixels in all.
fn forward_flops(arch: &Arch, lr_pixels: u64) -> f64 {
    let per_lr_pixel = arch.cost().multi_adds as f64 / Resolution::for_scale(arch.scale).lr as f64;
    2.0 * per_lr_pixel * lr_pixels as f64
}

fn gflops(flops: f64, ms: Option<Stats>) -> Value {
    match ms {
        Some(s) if s.median > 0.0 => json!(flops / (s.median * 1e-3) / 1e9),
        _ => Value::Null,
    }
}

fn stats_json(p: &Phase) -> Value {
    Stats::of(&p.ms).map_or(Value::Null, |s| s.json())
}

fn measure(
    args: &SpeedArgs,
    arch: &Arch,
    inference: Option<(usize, usize)>,
    dev: &Device,
) -> Result<Value> {
    // Resident before the network exists: the program itself, for telling
    // the phases' peaks from what merely loading the program costs.
    let baseline = mem::rss().map_or(0, |m| m.current);
    let (model, varmap) = Esrn::seeded(arch, args.seed, dev)?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    let (b, p, s) = (args.batch, args.patch, arch.scale);
    let (mut fwd, mut bwd, mut opt, mut step) = Default::default();
    if args.steps > 0 {
        let lr = random(&mut rng, &[b, 3, p, p], dev)?;
        let hr = random(&mut rng, &[b, 3, s * p, s * p], dev)?;
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("the variable map lock is poisoned"))?
            .clone();
        let mut adam = Adam::new(&vars, AdamConfig::default())?;
        let vars: Vec<Var> = vars.into_values().collect();
        train_steps(
            args,
            &model,
            &mut adam,
            &vars,
            (&lr, &hr),
            dev,
            [&mut fwd, &mut bwd, &mut opt, &mut step],
        )?;
    }
    let mut infer = Phase::default();
    if let Some((w, h)) = inference {
        // A copy of the network over plain tensors: nothing records a
        // gradient graph, as under PyTorch's `no_grad`.
        let plain: HashMap<String, Tensor> = model
            .named_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .collect();
        let net = Esrn::new(arch, VarBuilder::from_tensors(plain, DType::F32, dev))?;
        let lr = random(&mut rng, &[1, 3, h, w], dev)?;
        for i in 0..args.inference_warmup + args.inference_runs.max(1) {
            let (_, ms, peak) = phase(dev, || Ok(net.forward(&lr)?))?;
            if i >= args.inference_warmup {
                infer.record(ms, peak);
            }
        }
    }
    let train_flops = forward_flops(arch, (b * p * p) as u64);
    let cost = arch.cost();
    let peak_all = [&fwd, &bwd, &opt, &infer]
        .iter()
        .map(|p| p.peak)
        .max()
        .unwrap_or(0);
    let threads = crate::ops::par::threads();
    Ok(json!({
        "arch": arch.genes.to_string(),
        "g0": arch.g0,
        "scale": arch.scale,
        "bias": arch.bias,
        "params": cost.params,
        "multi_adds_720p": cost.multi_adds,
        "device": args.device,
        "threads": if dev.is_cpu() { json!(threads) } else { Value::Null },
        "candle_elementwise_threads": std::env::var("CANDLE_NUM_THREADS").ok(),
        "batch": b,
        "patch": p,
        "steps": args.steps,
        "warmup": args.warmup,
        "forward_ms": stats_json(&fwd),
        "backward_ms": stats_json(&bwd),
        "optimizer_ms": stats_json(&opt),
        "step_ms": stats_json(&step),
        "train_gflops": {
            "forward": gflops(train_flops, Stats::of(&fwd.ms)),
            "backward": gflops(2.0 * train_flops, Stats::of(&bwd.ms)),
            "step": gflops(3.0 * train_flops, Stats::of(&step.ms)),
        },
        "inference": inference.map(|(w, h)| json!({
            "input": format!("1x3x{h}x{w}"),
            "output": format!("{}x{}", w * s, h * s),
            "runs": infer.ms.len(),
            "ms": stats_json(&infer),
            "gflops": gflops(forward_flops(arch, (w * h) as u64), Stats::of(&infer.ms)),
            "peak_rss_bytes": infer.peak,
        })),
        "peak_rss_bytes": {
            "forward": fwd.peak,
            "backward": bwd.peak,
            "optimizer": opt.peak,
            "inference": infer.peak,
            "overall": peak_all,
        },
        "baseline_rss_bytes": baseline,
        "load_average": load_average(),
    }))
}

/// The training loop. Per step: forward + loss, then
/// [`Adam::backward_step`] on it (backward and update: with the forward, the
/// whole step). The optimiser alone is timed on a probe loss, `Σ 0·w` over
/// every variable, whose gradients cost next to nothing to compute but are
/// full-size tensors like the real ones: Adam's time is the probe's
/// `backward_step` less the probe's lone `backward`. The backward phase is
/// the real `backward_step` less that.
fn train_steps(
    args: &SpeedArgs,
    model: &Esrn,
    adam: &mut Adam,
    vars: &[Var],
    (lr, hr): (&Tensor, &Tensor),
    dev: &Device,
    [fwd, bwd, opt, step]: [&mut Phase; 4],
) -> Result<()> {
    // Multiplied by zero tensors, not by the scalar 0: candle prunes
    // `affine(0, _)` from the gradient graph, which would leave Adam nothing.
    let zeros = vars
        .iter()
        .map(|v| v.as_tensor().zeros_like())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let probe = || -> Result<Tensor> {
        let mut terms = Vec::with_capacity(vars.len());
        for (v, z) in vars.iter().zip(&zeros) {
            terms.push((v.as_tensor() * z)?.sum_all()?);
        }
        Ok(Tensor::stack(&terms, 0)?.sum_all()?)
    };
    for i in 0..args.warmup + args.steps {
        let (loss, t_fwd, m_fwd) =
            phase(dev, || Ok((model.forward(lr)? - hr)?.abs()?.mean_all()?))?;
        let (_, t_both, m_bwd) = phase(dev, || Ok(adam.backward_step(&loss)?))?;
        let p = probe()?;
        let (grads, t_probe_bwd, _) = phase(dev, || Ok(p.backward()?))?;
        drop(grads);
        let (_, t_probe_step, m_opt) = phase(dev, || Ok(adam.backward_step(&p)?))?;
        let t_opt = (t_probe_step - t_probe_bwd).max(0.0);
        if i >= args.warmup {
            fwd.record(t_fwd, m_fwd);
            bwd.record((t_both - t_opt).max(0.0), m_bwd);
            opt.record(t_opt, m_opt);
            step.record(t_fwd + t_both, m_fwd.max(m_bwd));
        }
        let v = loss.to_scalar::<f32>().context("reading the loss")?;
        if !v.is_finite() {
            bail!("training step {i}: the loss is {v}");
        }
    }
    Ok(())
}

/// The 1, 5 and 15 minute load averages (Linux), so timings taken on a
/// shared machine can be judged.
fn load_average() -> Value {
    let Ok(text) = std::fs::read_to_string("/proc/loadavg") else {
        return Value::Null;
    };
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

/// The human-readable report.
fn table(r: &Value) -> String {
    let mut out = format!(
        "{} blocks, G0 {}, x{}, {} params, {:.1} G Multi-Adds at 720p; device {}, threads {}\n",
        r["arch"].as_str().unwrap_or("").split_whitespace().count(),
        r["g0"],
        r["scale"],
        r["params"],
        r["multi_adds_720p"].as_f64().unwrap_or(0.0) / 1e9,
        r["device"].as_str().unwrap_or(""),
        r["threads"],
    );
    let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    let row = |name: &str, ms: &Value, gf: &Value, peak: &Value| {
        let gf = gf.as_f64().map_or(String::new(), |g| format!("{g:7.1}"));
        format!(
            "{name:<26} {:>9.1} {:>9.1} {:>9.1} {gf:>9} {:>9.0}\n",
            ms["median"].as_f64().unwrap_or(f64::NAN),
            ms["min"].as_f64().unwrap_or(f64::NAN),
            ms["max"].as_f64().unwrap_or(f64::NAN),
            mib(peak),
        )
    };
    out += &format!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "phase", "median ms", "min", "max", "GFLOP/s", "peak MiB"
    );
    if !r["step_ms"].is_null() {
        let what = format!("batch {} x 3x{p}x{p}", r["batch"], p = r["patch"]);
        out += &format!("training, {what}, {} steps\n", r["steps"]);
        let peaks = &r["peak_rss_bytes"];
        let gf = &r["train_gflops"];
        out += &row(
            "  forward + L1",
            &r["forward_ms"],
            &gf["forward"],
            &peaks["forward"],
        );
        out += &row(
            "  backward",
            &r["backward_ms"],
            &gf["backward"],
            &peaks["backward"],
        );
        out += &row(
            "  Adam",
            &r["optimizer_ms"],
            &Value::Null,
            &peaks["optimizer"],
        );
        out += &row(
            "  whole step",
            &r["step_ms"],
            &gf["step"],
            &peaks["overall"],
        );
    }
    if let Some(inf) = r["inference"].as_object() {
        out += &row(
            &format!(
                "inference {} -> {}",
                inf["input"].as_str().unwrap_or(""),
                inf["output"].as_str().unwrap_or("")
            ),
            &inf["ms"],
            &inf["gflops"],
            &inf["peak_rss_bytes"],
        );
    }
    out += &format!("load average {}\n", r["load_average"]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_median_min_max() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn inference_size_is_an_output_size() {
        assert_eq!(parse_inference("1280x720", 2).unwrap(), Some((640, 360)));
        assert_eq!(parse_inference("none", 3).unwrap(), None);
        assert_eq!(parse_inference("1280x720", 3).unwrap(), Some((426, 240)));
        for bad in ["720p", "0x0", "12x", "x5"] {
            let e = parse_inference(bad, 2).unwrap_err().to_string();
            assert!(e.contains("--inference") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn flops_scale_with_lr_pixels() {
        let arch = Arch {
            genes: GeneList::parse_args(&["S_4_8_8"]).unwrap(),
            g0: 32,
            scale: 2,
            bias: true,
        };
        let full = forward_flops(&arch, 640 * 360);
        assert_eq!(full, 2.0 * arch.cost().multi_adds as f64);
        assert_eq!(forward_flops(&arch, 320 * 360), full / 2.0);
    }
}

//! How fast this machine trains and runs an architecture.
//!
//! Times each phase of a training step (forward + L1 loss, backward, the
//! project's Adam, the whole step) and one inference, and reports the
//! achieved GFLOP/s from the exact Multi-Adds and the peak host memory of
//! each phase. `benches/compare.sh` runs it (`esr-ea speed`) beside the
//! PyTorch twin (`benches/pytorch/esrn.py`) with the same shapes.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{random_tensor, Stats};
use crate::model::Esrn;
use crate::ops::mem;
use crate::space::cost::Resolution;
use crate::space::Arch;
use crate::train::{Adam, AdamConfig};

/// What to time.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedPlan {
    /// Training batch size.
    pub batch: usize,
    /// LR patch side in pixels (the HR patch is `scale` times larger).
    pub patch: usize,
    /// Timed training steps (0: time inference only).
    pub steps: usize,
    /// Untimed steps before the timed ones.
    pub warmup: usize,
    /// LR (width, height) of the timed inference, if any.
    pub inference: Option<(usize, usize)>,
    /// Timed inference runs (at least one).
    pub inference_runs: usize,
    /// Untimed inference runs before the timed ones.
    pub inference_warmup: usize,
    /// Seed of the weights and the random batches.
    pub seed: u64,
    /// Wrap the last timed step's forward and backward + Adam in a CUDA
    /// profiler range ([`crate::device::cuda_profiler`]).
    pub profile_last_step: bool,
}

/// Achieved GFLOP/s of the training phases (`None`: not timed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrainGflops {
    /// Forward + loss.
    pub forward: Option<f64>,
    /// Backward (counted as twice the forward's work).
    pub backward: Option<f64>,
    /// The whole step (three times the forward's work).
    pub step: Option<f64>,
}

/// The timed inference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceTiming {
    /// Input dimensions, `1x3xHxW`.
    pub input: String,
    /// Output size, `WxH`.
    pub output: String,
    /// Timed runs.
    pub runs: usize,
    /// Their timings.
    pub ms: Option<Stats>,
    /// Achieved GFLOP/s at the median.
    pub gflops: Option<f64>,
    /// Highest resident-set peak over the runs, bytes (0: unknown).
    pub peak_rss_bytes: u64,
}

/// Highest resident-set peak of each phase, bytes (0: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peaks {
    /// Forward + loss.
    pub forward: u64,
    /// Backward.
    pub backward: u64,
    /// Adam.
    pub optimizer: u64,
    /// Inference.
    pub inference: u64,
    /// The highest of all.
    pub overall: u64,
}

/// The memory estimates for the timed phases, bytes (`None`: not timed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimates {
    /// A training step ([`crate::model::memory::training_step_bytes`]).
    pub training: Option<u64>,
    /// The inference ([`crate::model::tiled::bytes_per_pixel`] times its pixels).
    pub inference: Option<u64>,
}

/// What `speed` measured (its `--json` output, field for field).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedReport {
    /// Which network `esr-ea speed` timed (`seed`, `quick`, `custom`), if
    /// it names one.
    pub network: Option<String>,
    /// The genes, space-separated.
    pub arch: String,
    /// G0.
    pub g0: usize,
    /// Upscaling factor.
    pub scale: usize,
    /// Biases on/off.
    pub bias: bool,
    /// Exact parameters.
    pub params: u64,
    /// Multi-Adds for a 1280x720 output.
    pub multi_adds_720p: u64,
    /// The device's name.
    pub device: String,
    /// Convolution threads on the CPU (`None` on a GPU).
    pub threads: Option<usize>,
    /// `CANDLE_NUM_THREADS`, when set.
    pub candle_elementwise_threads: Option<String>,
    /// Training batch size.
    pub batch: usize,
    /// LR patch side.
    pub patch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Forward + L1 loss.
    pub forward_ms: Option<Stats>,
    /// Backward.
    pub backward_ms: Option<Stats>,
    /// Adam.
    pub optimizer_ms: Option<Stats>,
    /// The whole step.
    pub step_ms: Option<Stats>,
    /// Achieved GFLOP/s of the training phases.
    pub train_gflops: TrainGflops,
    /// The timed inference, if any.
    pub inference: Option<InferenceTiming>,
    /// Peak memory by phase.
    pub peak_rss_bytes: Peaks,
    /// Resident before the network exists (the program itself), bytes.
    pub baseline_rss_bytes: u64,
    /// What the memory estimates say these phases need, to compare with the
    /// measured peaks.
    pub estimated_bytes: Estimates,
    /// The 1, 5 and 15 minute load averages (Linux), so timings taken on a
    /// shared machine can be judged.
    pub load_average: Option<Vec<f64>>,
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

fn gflops(flops: f64, ms: Option<Stats>) -> Option<f64> {
    match ms {
        Some(s) if s.median > 0.0 => Some(flops / (s.median * 1e-3) / 1e9),
        _ => None,
    }
}

/// Refuses an untiled inference of `arch` on an LR image of `lr` (width,
/// height) that cannot fit in the memory available now: the allocation would
/// fail and abort the process instead of returning an error.
pub fn check_inference_memory(arch: &Arch, lr: (usize, usize)) -> Result<()> {
    let (w, h) = lr;
    let need = (crate::model::tiled::bytes_per_pixel(arch) as u128) * (w as u128) * (h as u128);
    let have = crate::model::tiled::available_memory().unwrap_or(u64::MAX);
    if need > u128::from(have) {
        bail!(
            "one untiled inference of that size needs about {} GiB, more than the {} GiB available (`esr-ea upscale` tiles images of any size)",
            need >> 30,
            have >> 30
        );
    }
    Ok(())
}

/// Times `plan` for `arch` on `dev` (named `device` in the report). An
/// inference too large for the memory is refused first
/// ([`check_inference_memory`]).
pub fn measure(plan: &SpeedPlan, arch: &Arch, device: &str, dev: &Device) -> Result<SpeedReport> {
    if let Some(lr) = plan.inference {
        check_inference_memory(arch, lr)?;
    }
    // Resident before the network exists: the program itself, for telling
    // the phases' peaks from what merely loading the program costs.
    let baseline = mem::rss().map_or(0, |m| m.current);
    let (model, varmap) = Esrn::seeded(arch, plan.seed, dev)?;
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed.wrapping_add(1));
    let (b, p, s) = (plan.batch, plan.patch, arch.scale);
    let (mut fwd, mut bwd, mut opt, mut step) = Default::default();
    if plan.steps > 0 {
        let lr = random_tensor(&mut rng, &[b, 3, p, p], dev)?;
        let hr = random_tensor(&mut rng, &[b, 3, s * p, s * p], dev)?;
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("the variable map lock is poisoned"))?
            .clone();
        let mut adam = Adam::new(&vars, AdamConfig::default())?;
        let vars: Vec<Var> = vars.into_values().collect();
        train_steps(
            plan,
            &model,
            &mut adam,
            &vars,
            (&lr, &hr),
            dev,
            [&mut fwd, &mut bwd, &mut opt, &mut step],
        )?;
    }
    let mut infer = Phase::default();
    if let Some((w, h)) = plan.inference {
        // Nothing records a gradient graph, as under PyTorch's `no_grad`.
        let net = model.inference_copy()?;
        let lr = random_tensor(&mut rng, &[1, 3, h, w], dev)?;
        for i in 0..plan.inference_warmup + plan.inference_runs.max(1) {
            let (_, ms, peak) = phase(dev, || Ok(net.forward(&lr)?))?;
            if i >= plan.inference_warmup {
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
    Ok(SpeedReport {
        network: None,
        arch: arch.genes.to_string(),
        g0: arch.g0,
        scale: arch.scale,
        bias: arch.bias,
        params: cost.params,
        multi_adds_720p: cost.multi_adds,
        device: device.to_string(),
        threads: dev.is_cpu().then_some(threads),
        candle_elementwise_threads: std::env::var("CANDLE_NUM_THREADS").ok(),
        batch: b,
        patch: p,
        steps: plan.steps,
        warmup: plan.warmup,
        forward_ms: Stats::of(&fwd.ms),
        backward_ms: Stats::of(&bwd.ms),
        optimizer_ms: Stats::of(&opt.ms),
        step_ms: Stats::of(&step.ms),
        train_gflops: TrainGflops {
            forward: gflops(train_flops, Stats::of(&fwd.ms)),
            backward: gflops(2.0 * train_flops, Stats::of(&bwd.ms)),
            step: gflops(3.0 * train_flops, Stats::of(&step.ms)),
        },
        inference: plan.inference.map(|(w, h)| InferenceTiming {
            input: format!("1x3x{h}x{w}"),
            output: format!("{}x{}", w * s, h * s),
            runs: infer.ms.len(),
            ms: Stats::of(&infer.ms),
            gflops: gflops(forward_flops(arch, (w * h) as u64), Stats::of(&infer.ms)),
            peak_rss_bytes: infer.peak,
        }),
        peak_rss_bytes: Peaks {
            forward: fwd.peak,
            backward: bwd.peak,
            optimizer: opt.peak,
            inference: infer.peak,
            overall: peak_all,
        },
        baseline_rss_bytes: baseline,
        estimated_bytes: Estimates {
            training: (plan.steps > 0)
                .then(|| crate::model::memory::training_step_bytes(arch, b, p)),
            inference: plan
                .inference
                .map(|(w, h)| (w * h) as u64 * crate::model::tiled::bytes_per_pixel(arch) as u64),
        },
        load_average: load_average(),
    })
}

/// The training loop. Per step: forward + loss, then
/// [`Adam::backward_step`] on it (backward and update: with the forward, the
/// whole step). The optimiser alone is timed on a probe loss, `Σ 0·w` over
/// every variable, whose gradients cost next to nothing to compute but are
/// full-size tensors like the real ones: Adam's time is the probe's
/// `backward_step` less the probe's lone `backward`. The backward phase is
/// the real `backward_step` less that.
fn train_steps(
    plan: &SpeedPlan,
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
    let last = plan.warmup + plan.steps - 1;
    for i in 0..plan.warmup + plan.steps {
        let profiled = plan.profile_last_step && i == last;
        if profiled {
            crate::device::cuda_profiler(dev, true)?;
        }
        let (loss, t_fwd, m_fwd) =
            phase(dev, || Ok((model.forward(lr)? - hr)?.abs()?.mean_all()?))?;
        let (_, t_both, m_bwd) = phase(dev, || Ok(adam.backward_step(&loss)?))?;
        if profiled {
            crate::device::cuda_profiler(dev, false)?;
        }
        let p = probe()?;
        let (grads, t_probe_bwd, _) = phase(dev, || Ok(p.backward()?))?;
        drop(grads);
        let (_, t_probe_step, m_opt) = phase(dev, || Ok(adam.backward_step(&p)?))?;
        let t_opt = (t_probe_step - t_probe_bwd).max(0.0);
        if i >= plan.warmup {
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

/// The 1, 5 and 15 minute load averages (Linux).
fn load_average() -> Option<Vec<f64>> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::GeneList;

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

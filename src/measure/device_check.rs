//! Whether the network computes the same thing on a device as on the CPU,
//! and how fast it infers there.
//!
//! For a few architectures it builds identical seeded weights on the CPU and
//! on the device, runs a forward pass on the same input and an L1 loss
//! backward, and compares the outputs, every parameter's gradient and the
//! weight changes of two Adam steps. On the
//! CPU against itself the differences must be exactly zero, which is how it
//! is tested without a GPU.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::{seeded_tensor, Stats};
use crate::model::Esrn;
use crate::space::{Arch, GeneList, SEED_GENES};
use crate::train::{Adam, AdamConfig};

/// A small chain with every block kind and residual form: identity residual
/// (S 16→16), grouped convs (G), a contextual block (C, 2x2 pooling) and
/// in/out projections (S 24→16).
pub const MIXED_ARCH: &str = "S_4_16_16 G_4_8_16 C_4_8_24 S_6_8_16";

/// One network and input to compare.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short label.
    pub name: &'static str,
    /// The network.
    pub arch: Arch,
    /// Input dimensions `[B, 3, H, W]`; odd H or W exercise the padding path.
    pub input: [usize; 4],
}

/// The cases the command runs: the seed network at x2 and the small mixed
/// chain at x3 (odd sizes, padded) and at x4 (no biases).
pub fn default_cases() -> Result<Vec<Case>> {
    let genes = |s: &str| GeneList::parse_args(&[s]).map_err(anyhow::Error::from);
    Ok(vec![
        Case {
            name: "seed-x2",
            arch: Arch {
                genes: genes(SEED_GENES)?,
                g0: 32,
                scale: 2,
                bias: true,
            },
            input: [2, 3, 24, 20],
        },
        Case {
            name: "mixed-x3-odd",
            arch: Arch {
                genes: genes(MIXED_ARCH)?,
                g0: 16,
                scale: 3,
                bias: true,
            },
            input: [2, 3, 21, 17],
        },
        Case {
            name: "mixed-x4-nobias",
            arch: Arch {
                genes: genes(MIXED_ARCH)?,
                g0: 16,
                scale: 4,
                bias: false,
            },
            input: [2, 3, 16, 12],
        },
    ])
}

/// How far apart the device and the CPU are for one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The case's label.
    pub name: String,
    /// The genes, space-separated.
    pub arch: String,
    /// Upscaling factor.
    pub scale: usize,
    /// Input dimensions.
    pub input: Vec<usize>,
    /// Output dimensions.
    pub output: Vec<usize>,
    /// Largest |device − CPU| over the output.
    pub forward_max_abs_diff: f64,
    /// Largest |CPU output|.
    pub forward_max_abs: f64,
    /// `forward_max_abs_diff / forward_max_abs`.
    pub forward_rel: f64,
    /// L1 loss on the CPU.
    pub loss_cpu: f64,
    /// L1 loss on the device.
    pub loss_device: f64,
    /// Number of parameter tensors compared.
    pub params: usize,
    /// Largest relative gradient difference over all parameters.
    pub grad_worst_rel: f64,
    /// The parameter with that difference.
    pub grad_worst_param: String,
    /// Seconds for forward + backward on the device (first run: includes kernel loading).
    pub device_seconds: f64,
    /// Two Adam steps (clipping on): ‖Δw_device − Δw_cpu‖ / ‖Δw_cpu‖ over all weights.
    pub adam_rel: f64,
    /// Relative difference of the gradient norm the second step reported.
    pub adam_norm_rel: f64,
    /// Whether every difference is within the tolerance.
    pub ok: bool,
}

/// Output, loss and gradients (by parameter name, on the CPU) of one run.
struct Pass {
    output: Tensor,
    loss: f64,
    grads: Vec<(String, Tensor)>,
}

/// Seeded network on `dev`, forward on `x`, L1 loss against `target`, backward.
fn run_pass(case: &Case, x: &Tensor, target: &Tensor, dev: &Device) -> Result<Pass> {
    let (model, varmap) = Esrn::seeded(&case.arch, 17, dev)?;
    let out = model.forward(&x.to_device(dev)?)?;
    let loss = (&out - target.to_device(dev)?)?.abs()?.mean_all()?;
    let grads = loss.backward()?;
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("the variable map lock is poisoned"))?;
    let mut named = Vec::with_capacity(vars.len());
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .with_context(|| format!("{}: no gradient for {name}", case.name))?;
        named.push((name.clone(), g.to_device(&Device::Cpu)?));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Pass {
        output: out.to_device(&Device::Cpu)?,
        loss: f64::from(loss.to_scalar::<f32>()?),
        grads: named,
    })
}

/// Largest |a − b| and largest |a| (both on the CPU, same shape).
fn max_diff(a: &Tensor, b: &Tensor) -> Result<(f64, f64)> {
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((f64::from(diff), f64::from(scale)))
}

/// `diff / scale`, 0 when both are 0 (a zero gradient matched exactly).
fn relative(diff: f64, scale: f64) -> f64 {
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(f64::MIN_POSITIVE)
    }
}

/// Weight changes of two Adam steps (clipping on) from the seeded network,
/// by parameter name, and the gradient norm the second step reported.
fn adam_pass(
    case: &Case,
    x: &Tensor,
    target: &Tensor,
    dev: &Device,
) -> Result<(Vec<(String, Tensor)>, f64)> {
    let (model, varmap) = Esrn::seeded(&case.arch, 17, dev)?;
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("the variable map lock is poisoned"))?
        .clone();
    let before: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
        .collect::<Result<_>>()?;
    let config = AdamConfig {
        lr: 1e-3,
        max_grad_norm: Some(0.05),
        ..AdamConfig::default()
    };
    let mut adam = Adam::new(&vars, config)?;
    let (x, target) = (x.to_device(dev)?, target.to_device(dev)?);
    let mut norm = 0.0;
    for _ in 0..2 {
        let loss = (model.forward(&x)? - &target)?.abs()?.mean_all()?;
        norm = adam.backward_step(&loss)?;
    }
    let mut deltas = Vec::with_capacity(before.len());
    for (name, w0) in before {
        let w1 = vars[&name].as_tensor().to_device(&Device::Cpu)?;
        deltas.push((name, (w1 - w0.to_device(&Device::Cpu)?)?));
    }
    deltas.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((deltas, norm))
}

/// ‖a − b‖ / ‖a‖ over every tensor of two same-named lists.
fn l2_relative(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> Result<f64> {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        if na != nb {
            bail!("parameter {na} has no twin ({nb})");
        }
        diff += f64::from((ta - tb)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        norm += f64::from(ta.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    Ok(relative(diff.sqrt(), norm.sqrt()))
}

/// Compares one case on `dev` against the CPU.
pub fn check_case(case: &Case, dev: &Device, tolerance: f64) -> Result<CaseReport> {
    let [b, _, h, w] = case.input;
    let s = case.arch.scale;
    let x = seeded_tensor(1, &case.input, &Device::Cpu)?;
    let target = seeded_tensor(2, &[b, 3, h * s, w * s], &Device::Cpu)?;
    let cpu = run_pass(case, &x, &target, &Device::Cpu)?;
    let start = Instant::now();
    let other = run_pass(case, &x, &target, dev)?;
    let device_seconds = start.elapsed().as_secs_f64();
    let (fwd_diff, fwd_max) = max_diff(&cpu.output, &other.output)?;
    let forward_rel = relative(fwd_diff, fwd_max);
    if cpu.grads.len() != other.grads.len() {
        bail!(
            "{}: {} gradients on the CPU but {} on {dev:?}",
            case.name,
            cpu.grads.len(),
            other.grads.len()
        );
    }
    let mut worst = (0.0f64, String::new());
    for ((name, g_cpu), (name_dev, g_dev)) in cpu.grads.iter().zip(&other.grads) {
        if name != name_dev {
            bail!(
                "{}: parameter {name} has no twin on the device ({name_dev})",
                case.name
            );
        }
        let (d, m) = max_diff(g_cpu, g_dev)?;
        let rel = relative(d, m);
        if rel > worst.0 || worst.1.is_empty() {
            worst = (rel, name.clone());
        }
    }
    let (adam_cpu, norm_cpu) = adam_pass(case, &x, &target, &Device::Cpu)?;
    let (adam_dev, norm_dev) = adam_pass(case, &x, &target, dev)?;
    let adam_rel = l2_relative(&adam_cpu, &adam_dev)?;
    let adam_norm_rel = relative((norm_cpu - norm_dev).abs(), norm_cpu.abs());
    let ok = forward_rel <= tolerance
        && worst.0 <= tolerance
        && worst.0.is_finite()
        && adam_rel <= tolerance
        && adam_norm_rel <= tolerance;
    Ok(CaseReport {
        name: case.name.to_string(),
        arch: case
            .arch
            .genes
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        scale: s,
        input: case.input.to_vec(),
        output: cpu.output.dims().to_vec(),
        forward_max_abs_diff: fwd_diff,
        forward_max_abs: fwd_max,
        forward_rel,
        loss_cpu: cpu.loss,
        loss_device: other.loss,
        params: cpu.grads.len(),
        grad_worst_rel: worst.0,
        grad_worst_param: worst.1,
        device_seconds,
        adam_rel,
        adam_norm_rel,
        ok,
    })
}

/// Inference timings of the seed network on one LR size.
#[derive(Debug, Clone, Serialize)]
pub struct InferenceReport {
    /// LR width and height.
    pub input: [usize; 2],
    /// SR width and height.
    pub output: [usize; 2],
    /// First forward, including kernel loading and allocation, in ms.
    pub first_ms: f64,
    /// Forward only (device synchronised), each timed run, in ms.
    pub forward_ms: Vec<f64>,
    /// Median of `forward_ms`.
    pub forward_median_ms: f64,
    /// Upload, forward, clamp and download to the host (what `upscale` pays
    /// besides image decoding and encoding), median over the runs, in ms.
    pub end_to_end_median_ms: f64,
}

/// Times the seed network (x2, seeded weights) on a `w × h` LR image on `dev`.
pub fn time_inference(
    dev: &Device,
    (w, h): (usize, usize),
    repeat: u32,
) -> Result<InferenceReport> {
    let arch = default_cases()?.remove(0).arch;
    let (model, _) = Esrn::seeded(&arch, 17, dev)?;
    let host = seeded_tensor(3, &[1, 3, h, w], &Device::Cpu)?;
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1e3;
    let x = host.to_device(dev)?;
    let start = Instant::now();
    let out = model.forward(&x)?;
    dev.synchronize()?;
    let first_ms = ms(start);
    let output = [out.dim(3)?, out.dim(2)?];
    drop(out);
    // One more warm-up run: allocator and caches settle.
    model.forward(&x)?;
    dev.synchronize()?;
    let mut forward_ms = Vec::with_capacity(repeat as usize);
    for _ in 0..repeat {
        let start = Instant::now();
        let out = model.forward(&x)?;
        dev.synchronize()?;
        forward_ms.push(ms(start));
        drop(out);
    }
    let mut end_to_end = Vec::with_capacity(repeat as usize);
    for _ in 0..repeat {
        let start = Instant::now();
        let x = host.to_device(dev)?;
        let out = model
            .forward(&x)?
            .clamp(0.0, 1.0)?
            .to_device(&Device::Cpu)?;
        end_to_end.push(ms(start));
        drop(out);
    }
    Ok(InferenceReport {
        input: [w, h],
        output,
        first_ms,
        forward_median_ms: median(&forward_ms),
        forward_ms,
        end_to_end_median_ms: median(&end_to_end),
    })
}

/// The median of timings (`NaN` for none).
fn median(ms: &[f64]) -> f64 {
    Stats::of(ms).map_or(f64::NAN, |s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_against_cpu_is_exact() {
        // The seed network on a smaller input than the command's, to stay fast.
        let mut cases = default_cases().unwrap();
        cases[0].input = [1, 3, 8, 6];
        for case in cases {
            let r = check_case(&case, &Device::Cpu, 0.0).unwrap();
            assert!(r.ok, "{r:?}");
            assert_eq!(r.forward_max_abs_diff, 0.0, "{}", r.name);
            assert_eq!(r.grad_worst_rel, 0.0, "{}", r.name);
            assert_eq!(r.loss_cpu, r.loss_device, "{}", r.name);
            assert!(r.forward_max_abs > 0.0 && r.params > 0, "{r:?}");
            let s = case.arch.scale;
            assert_eq!(
                r.output,
                vec![case.input[0], 3, case.input[2] * s, case.input[3] * s]
            );
        }
    }

    #[test]
    fn inference_timing_reports_the_output_size() {
        let r = time_inference(&Device::Cpu, (9, 7), 2).unwrap();
        assert_eq!(r.output, [18, 14]);
        assert_eq!(r.forward_ms.len(), 2);
        assert!(r.forward_median_ms > 0.0 && r.end_to_end_median_ms > 0.0);
    }
}

//! Exporting the best architectures of a search, with their quick-trained weights.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::rundir::model_file;
use crate::fsutil::atomic_write;
use crate::search::{Member, SearchState, Status};
use crate::space::SearchSpace;

/// What `export` writes for each architecture (`<rank>.yaml`).
#[derive(Debug, Clone, Serialize)]
pub struct ExportedArch {
    /// 1 for the best.
    pub rank: usize,
    /// Member that was trained.
    pub id: u64,
    /// Generation it was trained in, counted from 1 as the dashboard says it.
    pub generation: usize,
    /// Block genes.
    pub genes: Vec<String>,
    /// The reference's list form: `['G_8_16_24', ...]`.
    pub genes_python: String,
    /// Upscaling factor.
    pub scale: usize,
    /// G0.
    pub g0: usize,
    /// Biases on/off.
    pub bias: bool,
    /// Exact params.
    pub params: u64,
    /// Multi-Adds at 720p output.
    pub multi_adds: u64,
    /// Validation PSNR (the fitness).
    pub psnr: f64,
    /// Validation SSIM.
    pub ssim: f64,
    /// Weights file beside this one; export checks the quick-trained weights
    /// load and hold this network, and fails otherwise (never `null` now).
    pub weights: Option<String>,
    /// ONNX file beside this one (`export --onnx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnx: Option<String>,
    /// Measured ms per frame (`export --latency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<crate::latency::Latency>,
}

/// Deployment files `export` can add beside each model with weights.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Write `<rank>.onnx`.
    pub onnx: bool,
    /// Measure candle's latency: (width, height), threads, frames.
    pub latency: Option<((usize, usize), usize, usize)>,
}

/// The best `top` distinct architectures evaluated so far, best first
/// (each the member that was actually trained, not a cache hit).
pub fn best_members(state: &SearchState, top: usize) -> Vec<Member> {
    let mut trained: Vec<&Member> = state
        .history
        .iter()
        .filter(|m| matches!(m.status, Status::Evaluated(_)))
        .collect();
    trained.sort_by(|a, b| {
        b.fitness()
            .unwrap()
            .total_cmp(&a.fitness().unwrap())
            .then(a.id.cmp(&b.id))
    });
    let mut seen = std::collections::HashSet::new();
    trained
        .into_iter()
        .filter(|m| seen.insert(m.key()))
        .take(top)
        .cloned()
        .collect()
}

/// Writes the best `top` architectures of a run to `out`: `<rank>.yaml`
/// (genes in both forms, costs, fitness), `<rank>.safetensors` (weights,
/// loadable by `train --model`, `bench`, `upscale`) and `best.yaml` listing all.
pub fn export_top(
    state: &SearchState,
    space: &SearchSpace,
    run_dir: &Path,
    top: usize,
    out: &Path,
) -> Result<usize> {
    export_top_with(state, space, run_dir, top, out, &DeployOptions::default())
}

/// [`export_top`], plus `<rank>.onnx` files and a measured latency in each
/// `<rank>.yaml` as `deploy` asks.
pub fn export_top_with(
    state: &SearchState,
    space: &SearchSpace,
    run_dir: &Path,
    top: usize,
    out: &Path,
    deploy: &DeployOptions,
) -> Result<usize> {
    if top == 0 {
        bail!("--top 0: export at least one architecture");
    }
    let best = best_members(state, top);
    if best.is_empty() {
        bail!("nothing to export yet: no individual has been evaluated");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut all = Vec::new();
    for (i, m) in best.iter().enumerate() {
        let rank = i + 1;
        let eval = match &m.status {
            Status::Evaluated(e) => e.clone(),
            _ => unreachable!("best_members keeps evaluated members only"),
        };
        let source = model_file(run_dir, m.id);
        let name = format!("{rank}.safetensors");
        let bytes = verified_weights(&source, m, space)?;
        atomic_write(&out.join(&name), &bytes)
            .with_context(|| format!("cannot write {}", out.join(&name).display()))?;
        let weights = Some(name);
        let (onnx, latency) = deploy_files(out, rank, weights.as_deref(), deploy)?;
        let entry = ExportedArch {
            rank,
            id: m.id,
            generation: m.generation + 1,
            genes: m.genes.iter().map(|g| g.to_string()).collect(),
            genes_python: m.genes.to_python_list(),
            scale: space.scale,
            g0: space.g0,
            bias: space.bias,
            params: m.params,
            multi_adds: m.multi_adds,
            psnr: eval.psnr,
            ssim: eval.ssim,
            weights,
            onnx,
            latency,
        };
        let yaml = fitness_comment(&entry, state.bicubic_psnr) + &serde_yaml::to_string(&entry)?;
        atomic_write(&out.join(format!("{rank}.yaml")), yaml.as_bytes())?;
        all.push(entry);
    }
    let comments: String = all
        .iter()
        .map(|e| fitness_comment(e, state.bicubic_psnr))
        .collect();
    atomic_write(
        &out.join("best.yaml"),
        (comments + &serde_yaml::to_string(&all)?).as_bytes(),
    )?;
    Ok(all.len())
}

/// `# #1 (member 12): fitness 30.123 dB after quick training, +0.45 dB vs
/// bicubic (29.673 dB) on the same validation images`: a YAML comment line,
/// so readers of the file see the fitness against its reference and parsers
/// see nothing new.
fn fitness_comment(e: &ExportedArch, bicubic: Option<f64>) -> String {
    let against = match bicubic {
        Some(b) => format!(
            ", {} ({b:.3} dB) on the same validation images",
            crate::format::vs_bicubic(e.psnr, b)
        ),
        None => " (bicubic PSNR not recorded for this run)".into(),
    };
    format!(
        "# #{} (member {}): fitness {:.3} dB after quick training{against}\n",
        e.rank, e.id, e.psnr
    )
}

/// Reads a member's quick-trained weights and checks they are what is being
/// exported: a complete checkpoint that loads, of this member's genes and of
/// the run's scale, G0 and biases (not a truncated file, not another
/// member's). Returns the file's bytes.
fn verified_weights(source: &Path, m: &Member, space: &SearchSpace) -> Result<Vec<u8>> {
    let bytes = std::fs::read(source).with_context(|| {
        format!(
            "the weights of #{} are missing or unreadable ({}); nothing exported",
            m.id,
            source.display()
        )
    })?;
    let (model, _) = crate::model::load_model(source, &candle_core::Device::Cpu).map_err(|e| {
        anyhow::anyhow!(
            "the weights of #{} in {} are broken ({e}); nothing exported",
            m.id,
            source.display()
        )
    })?;
    let arch = model.arch();
    if arch.genes != m.genes
        || arch.scale != space.scale
        || arch.g0 != space.g0
        || arch.bias != space.bias
    {
        bail!(
            "{} does not hold #{}'s network: it has {} (x{}, G0 {}), #{} is {} (x{}, G0 {}); nothing exported",
            source.display(),
            m.id,
            arch.genes,
            arch.scale,
            arch.g0,
            m.id,
            m.genes,
            space.scale,
            space.g0
        );
    }
    Ok(bytes)
}

/// Writes `<rank>.onnx` and measures the latency of the exported weights
/// `weights` (a file in `out`), as `deploy` asks.
fn deploy_files(
    out: &Path,
    rank: usize,
    weights: Option<&str>,
    deploy: &DeployOptions,
) -> Result<(Option<String>, Option<crate::latency::Latency>)> {
    let Some(weights) = weights.filter(|_| deploy.onnx || deploy.latency.is_some()) else {
        return Ok((None, None));
    };
    let (model, _) = crate::model::load_model(out.join(weights), &candle_core::Device::Cpu)?;
    let onnx = if deploy.onnx {
        let name = format!("{rank}.onnx");
        crate::onnx::write_onnx(&model, &out.join(&name))?;
        Some(name)
    } else {
        None
    };
    let latency = match deploy.latency {
        Some((size, threads, frames)) => Some(crate::latency::measure_candle(
            &model,
            size,
            threads,
            frames,
            |_, _| {},
        )?),
        None => None,
    };
    Ok((onnx, latency))
}

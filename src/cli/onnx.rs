//! `esr-ea onnx`: convert a model file to ONNX for deployment.

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use clap::Args;

use crate::model::checkpoint::load_model;

/// Arguments of `onnx`.
#[derive(Debug, Args)]
pub struct OnnxArgs {
    /// Model file written by esr-ea (`train`, `export`).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The ONNX file to write (opset 17, input `lr`, output `sr`).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
}

/// Runs `onnx`.
pub fn run(args: &OnnxArgs) -> Result<()> {
    let ext = args
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if ext != "onnx" {
        bail!(
            "{}: the output must end in .onnx (got '{ext}')",
            args.output.display()
        );
    }
    let (model, _) = load_model(&args.model, &Device::Cpu)?;
    crate::onnx::write_onnx(&model, &args.output)?;
    let arch = model.arch();
    println!(
        "{} -> {}: {} blocks, x{}, {} params, opset {}; input '{}' [batch, 3, H, W] RGB 0..1, any size",
        args.model.display(),
        args.output.display(),
        arch.genes.len(),
        arch.scale,
        crate::format::thousands(model.num_params() as u64),
        crate::onnx::ONNX_OPSET,
        crate::onnx::INPUT_NAME,
    );
    Ok(())
}

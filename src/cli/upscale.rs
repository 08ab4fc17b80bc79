//! `esr-ea upscale`: super-resolve an image with a trained model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::data::load_rgb;
use crate::device::DeviceName;
use crate::model::checkpoint::load_model;
use crate::train::trainer::{timed, upscale_image};

/// Arguments of `upscale`.
#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Model file written by esr-ea (`train`, `export`).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Device: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceName,
    /// Input image (PNG, JPEG, BMP; any size).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output image; the format follows the extension (png, jpg, bmp).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
}

/// Runs `upscale`.
pub fn run(args: &UpscaleArgs) -> Result<()> {
    let ext = args
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "bmp") {
        bail!(
            "{}: unsupported output extension '{ext}' (allowed: png, jpg, jpeg, bmp)",
            args.output.display()
        );
    }
    let dev = args.device.open().context("--device")?;
    let (model, _) = load_model(&args.model, &dev)?;
    let lr = load_rgb(&args.input)?;
    let (sr, secs) = timed(|| upscale_image(&model, &lr, &dev));
    let sr = sr?;
    crate::data::save_rgb(&sr, &args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{} ({}x{}) -> {} ({}x{}), x{} in {:.2} s",
        args.input.display(),
        lr.width,
        lr.height,
        args.output.display(),
        sr.width,
        sr.height,
        model.arch().scale,
        secs
    );
    Ok(())
}

//! `esr-ea upscale`: super-resolve an image with a trained model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::progress::Progress;
use crate::data::load_rgb;
use crate::device::DeviceName;
use crate::model::checkpoint::load_model;
use crate::model::infer::upscale_image_tiled;
use crate::train::trainer::timed;

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
    /// Memory budget of the network's working set: the image is processed in
    /// overlapping tiles that fit (e.g. `512M`, `2G`). Default: a quarter of
    /// the available memory, at most 16 GiB (on a GPU: of its free memory).
    #[arg(long, value_name = "BYTES", value_parser = crate::format::parse_memory)]
    pub max_memory: Option<u64>,
}

/// What 8-bit RGB output loses of the input: alpha, or bits beyond 8.
fn dropped_by_rgb8(path: &Path) -> Option<String> {
    use image::ImageDecoder;
    let decoder = image::ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    let color = decoder.color_type();
    let mut lost = Vec::new();
    if color.has_alpha() {
        lost.push("its alpha channel");
    }
    if color.bytes_per_pixel() / color.channel_count() > 1 {
        lost.push("its 16-bit depth");
    }
    (!lost.is_empty()).then(|| lost.join(" and "))
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
    let same = match (args.input.canonicalize(), args.output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        bail!(
            "{} is both the input and the output: name another OUT (the input is not overwritten)",
            args.input.display()
        );
    }
    let dev = args.device.open().context("--device")?;
    let (model, _) = load_model(&args.model, &dev)?;
    let lr = load_rgb(&args.input)?;
    if let Some(lost) = dropped_by_rgb8(&args.input) {
        eprintln!(
            "note: {} has {lost}; the output is 8-bit RGB without them",
            args.input.display()
        );
    }
    let plan = super::tile_plan(model.arch(), args.max_memory, &dev, lr.height, lr.width)?;
    let tiles = plan.tiles(lr.height, lr.width).len();
    let mut progress = (tiles > 1).then(|| Progress::new("upscale", tiles));
    let (sr, secs) = timed(|| {
        upscale_image_tiled(&model, &lr, &dev, &plan, |done, _| {
            if let Some(p) = progress.as_mut() {
                p.update(done, "tiles");
            }
        })
    });
    if let Some(p) = progress.as_mut() {
        p.finish();
    }
    let sr = sr?;
    crate::data::save_rgb(&sr, &args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let how = match tiles {
        1 => "one pass".to_string(),
        n => format!("{n} tiles of {} px", plan.core),
    };
    println!(
        "{} ({}x{}) -> {} ({}x{}), x{} in {:.2} s ({how})",
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

//! `esr-ea bench`: PSNR/SSIM on benchmark folders, as the SR papers report them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::progress::Progress;
use crate::data::upscale_bicubic;
use crate::device::DeviceName;
use crate::metrics::{score_image, ImageScores, Score};
use crate::model::checkpoint::load_model;
use crate::model::infer::upscale_image_tiled;
use crate::train::datasets::load_benchmark_for_scoring;

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model file, or `bicubic` for the baseline alone.
    #[arg(long, value_name = "FILE|bicubic")]
    pub model: String,
    /// Benchmark folder (repeatable): HR images, or `HR/` + `LR/` subfolders paired by name.
    #[arg(long = "data", value_name = "DIR", required = true)]
    pub data: Vec<PathBuf>,
    /// Upscaling factor (default: the model's; required with `bicubic`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub scale: Option<u8>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Device: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceName,
    /// Memory budget of the network's working set (e.g. `512M`, `2G`);
    /// images are processed in tiles that fit. Default: a quarter of the
    /// available memory, at most 16 GiB (on a GPU: of its free memory).
    #[arg(long, value_name = "BYTES", value_parser = crate::format::parse_memory)]
    pub max_memory: Option<u64>,
}

/// One image's scores.
#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    /// File name.
    pub name: String,
    /// Method (`bicubic` or the model file).
    pub method: String,
    /// Y-PSNR, dB.
    pub psnr: f64,
    /// Y-SSIM.
    pub ssim: f64,
}

/// One dataset's mean scores per method.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetScore {
    /// Folder.
    pub dataset: String,
    /// Images.
    pub images: usize,
    /// Method.
    pub method: String,
    /// Mean Y-PSNR.
    pub psnr: f64,
    /// Mean Y-SSIM.
    pub ssim: f64,
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let dev = args.device.open().context("--device")?;
    let model = if args.model == "bicubic" {
        None
    } else {
        Some(load_model(&args.model, &dev)?.0)
    };
    let scale = match (args.scale, &model) {
        (Some(s), Some(m)) if s as usize != m.arch().scale => bail!(
            "--scale {s}: the model {} is x{}",
            args.model,
            m.arch().scale
        ),
        (Some(s), _) => s as usize,
        (None, Some(m)) => m.arch().scale,
        (None, None) => bail!("--model bicubic needs --scale 2, 3 or 4"),
    };
    let mut per_image = Vec::new();
    let mut per_set = Vec::new();
    let cache = crate::train::datasets::reported_cache(
        crate::data::CachePlace::default().unless_environment_says(),
        |line| eprintln!("{line}"),
    );
    for dir in &args.data {
        let data = load_benchmark_for_scoring(dir, None, scale, &cache)?;
        let name = dir.display().to_string();
        let mut progress = Progress::new(&format!("bench {name}"), data.len());
        // Per method, its images' (name, PSNR, SSIM): bicubic, then the model.
        let mut methods: Vec<(String, ImageScores)> = vec![("bicubic".into(), vec![])];
        if model.is_some() {
            methods.push((args.model.clone(), vec![]));
        }
        for (i, pair) in data.pairs.iter().enumerate() {
            let (lr, hr) = (pair.lr.to_rgb(), pair.hr.to_rgb());
            let mut outputs = vec![upscale_bicubic(&lr, scale)?];
            if let Some(m) = &model {
                let plan = super::tile_plan(
                    m.arch(),
                    args.max_memory,
                    &dev,
                    pair.lr.height,
                    pair.lr.width,
                )?;
                outputs.push(upscale_image_tiled(m, &lr, &dev, &plan, |_, _| {})?);
            }
            for ((method, images), sr) in methods.iter_mut().zip(&outputs) {
                let (psnr, ssim) = score_image(sr, &hr, scale)?;
                images.push((pair.name.clone(), psnr, ssim));
                per_image.push(ImageScore {
                    name: format!("{name}/{}", pair.name),
                    method: method.clone(),
                    psnr,
                    ssim,
                });
            }
            progress.update(i + 1, &pair.name);
        }
        progress.finish();
        for (method, images) in methods {
            let score = Score::from_images(images);
            per_set.push(DatasetScore {
                dataset: name.clone(),
                images: data.len(),
                method,
                psnr: score.psnr,
                ssim: score.ssim,
            });
        }
    }
    if args.json {
        let out = serde_json::json!({"scale": scale, "datasets": per_set, "images": per_image});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("x{scale}, Y channel, {scale} px shaved (PSNR dB / SSIM)");
    println!(
        "{:<40} {:>6}  {:<24} {:>8} {:>7}",
        "dataset", "images", "method", "PSNR", "SSIM"
    );
    for s in &per_set {
        println!(
            "{:<40} {:>6}  {:<24} {:>8.3} {:>7.4}",
            s.dataset, s.images, s.method, s.psnr, s.ssim
        );
    }
    println!();
    println!(
        "{:<48} {:<24} {:>8} {:>7}",
        "image", "method", "PSNR", "SSIM"
    );
    for s in &per_image {
        println!(
            "{:<48} {:<24} {:>8.3} {:>7.4}",
            s.name, s.method, s.psnr, s.ssim
        );
    }
    Ok(())
}

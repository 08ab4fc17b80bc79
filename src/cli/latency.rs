//! `esr-ea latency`: milliseconds per frame of a model in candle or in
//! onnxruntime.

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use clap::Args;

use crate::latency::{
    measure_candle, measure_onnxruntime, onnxruntime_python, parse_size, Runtime,
};
use crate::model::checkpoint::load_model;

/// Arguments of `latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Model file written by esr-ea (`.safetensors`), or an exported `.onnx`
    /// file (onnxruntime only).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Input (LR) frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    pub size: String,
    /// Where to run it.
    #[arg(long, value_enum, default_value_t = Runtime::Candle)]
    pub runtime: Runtime,
    /// CPU threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed frames (after one untimed warm-up frame).
    #[arg(long, default_value_t = 5)]
    pub frames: usize,
}

/// Runs `latency`.
pub fn run(args: &LatencyArgs) -> Result<()> {
    if args.threads == 0 {
        bail!("--threads 0: give at least 1 thread");
    }
    if args.frames == 0 {
        bail!("--frames 0: time at least 1 frame");
    }
    let size = parse_size(&args.size).map_err(|e| anyhow::anyhow!("--size: {e}"))?;
    let is_onnx = args
        .model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let progress = |i: usize, ms: f64| eprintln!("frame {i}/{}: {ms:.1} ms", args.frames);
    let latency = match args.runtime {
        Runtime::Candle => {
            if is_onnx {
                bail!(
                    "{}: candle runs esr-ea model files (.safetensors); use --runtime onnxruntime for .onnx",
                    args.model.display()
                );
            }
            crate::ops::configure_threads(Some(args.threads));
            let (model, _) = load_model(&args.model, &Device::Cpu)?;
            measure_candle(&model, size, args.threads, args.frames, progress)?
        }
        Runtime::Onnxruntime => {
            let python = onnxruntime_python()?;
            if is_onnx {
                measure_onnxruntime(&python, &args.model, size, args.threads, args.frames)?
            } else {
                let (model, _) = load_model(&args.model, &Device::Cpu)?;
                let tmp = std::env::temp_dir()
                    .join(format!("esr-ea-latency-{}.onnx", std::process::id()));
                crate::onnx::write_onnx(&model, &tmp)?;
                let result = measure_onnxruntime(&python, &tmp, size, args.threads, args.frames);
                let _ = std::fs::remove_file(&tmp);
                result?
            }
        }
    };
    println!(
        "{}: {} {}x{}, {} thread(s), {} frames: median {:.1} ms, min {:.1} ms, max {:.1} ms per frame",
        args.model.display(),
        latency.runtime,
        latency.width,
        latency.height,
        latency.threads,
        latency.frames,
        latency.median_ms,
        latency.min_ms,
        latency.max_ms
    );
    Ok(())
}

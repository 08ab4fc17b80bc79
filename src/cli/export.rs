//! `esr-ea export`: the best architectures of a run, with their weights.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::engine::RunDir;
use crate::format::{plural, thousands};

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// How many architectures.
    #[arg(long, default_value_t = 4)]
    pub top: usize,
    /// Where to write them (default `<run>/export`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write `<rank>.onnx` beside each model (as `esr-ea onnx` does).
    #[arg(long)]
    pub onnx: bool,
    /// Also measure each model's candle latency (ms per frame, 1 thread, 3
    /// frames) at this LR size, WIDTHxHEIGHT, into its YAML.
    #[arg(long, value_name = "SIZE")]
    pub latency: Option<String>,
}

/// Runs `export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let config = run.load_config()?;
    let mut state = run.load_state()?;
    if state.bicubic_psnr.is_none() {
        // A run saved before bicubic was recorded: score it now if the images are there.
        state.bicubic_psnr =
            crate::train::fitness::bicubic_of_config(&config, &super::data_cache(&config)).ok();
    }
    let out = args.out.clone().unwrap_or_else(|| run.file("export"));
    let latency = match &args.latency {
        Some(size) => {
            crate::ops::configure_threads(Some(1));
            let size =
                crate::latency::parse_size(size).map_err(|e| anyhow::anyhow!("--latency: {e}"))?;
            Some((size, 1, 3))
        }
        None => None,
    };
    let deploy = crate::engine::export::DeployOptions {
        onnx: args.onnx,
        latency,
    };
    let n = crate::engine::export::export_top_with(
        &state,
        &config.search_space,
        run.path(),
        args.top,
        &out,
        &deploy,
    )?;
    println!(
        "exported {} to {}",
        plural(n, "architecture"),
        out.display()
    );
    for m in crate::engine::export::best_members(&state, n) {
        let psnr = m.fitness().unwrap_or(f64::NAN);
        println!(
            "  #{:<4} {psnr:.3} dB{}  {} params  {}",
            m.id,
            crate::format::vs_bicubic_note(psnr, state.bicubic_psnr),
            thousands(m.params),
            m.genes
        );
    }
    Ok(())
}

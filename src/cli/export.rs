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
}

/// Runs `export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let config = run.load_config()?;
    let state = run.load_state()?;
    let out = args.out.clone().unwrap_or_else(|| run.file("export"));
    let n = crate::engine::export::export_top(
        &state,
        &config.search_space,
        run.path(),
        args.top,
        &out,
    )?;
    println!(
        "exported {} to {}",
        plural(n, "architecture"),
        out.display()
    );
    for m in crate::engine::export::best_members(&state, n) {
        println!(
            "  #{:<4} {:.3} dB  {} params  {}",
            m.id,
            m.fitness().unwrap_or(f64::NAN),
            thousands(m.params),
            m.genes
        );
    }
    Ok(())
}

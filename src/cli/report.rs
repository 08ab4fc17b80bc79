//! `esr-ea report RUN_DIR`: regenerates a run's report files from what the
//! run directory holds (the pipeline's report stage writes the same).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (`runs/<name>`).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
}

/// Runs `report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let files = crate::report::write_report(&args.run_dir)?;
    println!("report of {}:", args.run_dir.display());
    for path in files.all() {
        println!("  {}", path.display());
    }
    Ok(())
}

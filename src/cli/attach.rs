//! `esr-ea attach <run dir>`: the live dashboard on a search that runs
//! elsewhere on this machine (e.g. `esr-ea search --headless` under nohup).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The run directory of the search (`runs/<name>`).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
}

/// Runs `attach`.
pub fn run(args: &AttachArgs) -> Result<()> {
    crate::tui::attach(&args.run_dir)
}

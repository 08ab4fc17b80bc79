//! `esr-ea compare RUN...`: evolution against random search over several
//! runs (see `report::compare`), written as `compare.md`, `.csv` and `.png`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::fsutil::atomic_write;
use crate::report::compare::Comparison;
use crate::report::compare_png;

/// Arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directories (e.g. five with `--strategy random` and five without,
    /// each with its own `--seed`).
    #[arg(value_name = "RUN_DIR", required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// Where to write compare.md, compare.csv and compare.png.
    #[arg(long, value_name = "DIR", default_value = "compare")]
    pub out: PathBuf,
}

/// Runs `compare`: prints the verdict and writes the three files.
pub fn run(args: &CompareArgs) -> Result<()> {
    let comparison = Comparison::load(&args.runs)?;
    for w in &comparison.warnings {
        eprintln!("warning: {w}");
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.out.display()))?;
    let md = comparison.markdown();
    atomic_write(&args.out.join("compare.md"), md.as_bytes())?;
    atomic_write(&args.out.join("compare.csv"), comparison.csv().as_bytes())?;
    compare_png(&comparison, &args.out.join("compare.png"))?;
    for v in comparison.verdicts() {
        println!("{v}");
    }
    println!(
        "wrote {}/compare.md, compare.csv and compare.png",
        args.out.display()
    );
    Ok(())
}

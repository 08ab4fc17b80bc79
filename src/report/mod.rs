//! The run's report (`esr-ea report RUN_DIR`, and the pipeline's last
//! stage): everything regenerated from the run directory's files.
//!
//! * `report.md`: the paper-style table (params, Multi-Adds, PSNR/SSIM per
//!   benchmark set, validation PSNR, bicubic, search fitness, training time),
//!   the models and how to use them, the run's facts and stage times;
//! * `report.csv`, `report.json`: the same numbers (JSON with the facts);
//! * `pareto.png`: validation PSNR over bicubic against Multi-Adds of every
//!   evaluated network, the Pareto front, elites and finalists;
//! * `progress.png`: best and mean fitness per generation.
//!
//! A run that has only searched gets the search's part (its elites, the
//! charts) and says that no finalist was fully trained.

mod charts;
pub mod compare;
mod inputs;
mod pareto;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use charts::{compare_png, HEIGHT as CHART_HEIGHT, WIDTH as CHART_WIDTH};
pub use inputs::{BicubicBaseline, RunInputs};
pub use pareto::pareto_front;
pub use table::{finalist_name, Report, ReportRow, RowKind, RunFacts, SetCell, SetInfo, StageFact};

/// File names the report writes into the run directory.
pub mod files {
    /// The table and facts, Markdown.
    pub const MARKDOWN: &str = "report.md";
    /// The table, CSV.
    pub const CSV: &str = "report.csv";
    /// Table and facts, JSON ([`super::Report`]).
    pub const JSON: &str = "report.json";
    /// Fitness against Multi-Adds.
    pub const PARETO: &str = "pareto.png";
    /// Fitness per generation.
    pub const PROGRESS: &str = "progress.png";
}

/// Where [`write_report`] put each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.csv`.
    pub csv: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// `pareto.png`.
    pub pareto: PathBuf,
    /// `progress.png`.
    pub progress: PathBuf,
}

impl ReportFiles {
    /// All five, in the order above.
    pub fn all(&self) -> [&Path; 5] {
        [
            &self.markdown,
            &self.csv,
            &self.json,
            &self.pareto,
            &self.progress,
        ]
    }
}

/// Reads the run in `run_dir` and (re)writes its report files there, each
/// atomically. Fails with one line naming the file when the run is not one
/// (no `state.json`) or a stage `pipeline.json` calls done left no results.
pub fn write_report(run_dir: &Path) -> Result<ReportFiles> {
    let run = RunInputs::load(run_dir)?;
    let report = Report::build(&run);
    let files = ReportFiles {
        markdown: run_dir.join(files::MARKDOWN),
        csv: run_dir.join(files::CSV),
        json: run_dir.join(files::JSON),
        pareto: run_dir.join(files::PARETO),
        progress: run_dir.join(files::PROGRESS),
    };
    let write = |path: &Path, text: &str| {
        crate::fsutil::atomic_write(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write(&files.markdown, &report.markdown())?;
    write(&files.csv, &report.csv())?;
    crate::engine::results::write_json(&files.json, &report)?;
    charts::pareto_png(&run, &files.pareto)?;
    charts::progress_png(&run, &files.progress)?;
    Ok(files)
}

//! The files the pipeline's later stages leave in a run directory, read by
//! the report (`esr-ea report RUN_DIR`) and by `--resume`:
//!
//! ```text
//! RUN_DIR/pipeline.json            which stages are done (PipelineState)
//! RUN_DIR/final/<rank>/            one fully trained finalist: the trainer's
//!                                  checkpoint files, model.safetensors and
//!                                  result.json (FinalResult)
//! RUN_DIR/bench.json               every benchmark set measured (BenchResults)
//! ```
//!
//! Each file is written whole and atomically (temp file + rename), so a
//! reader sees the previous version or the new one, never half of one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// File names inside a run directory.
pub mod files {
    /// Stage bookkeeping.
    pub const PIPELINE: &str = "pipeline.json";
    /// Folder of the fully trained finalists, one sub-folder per rank.
    pub const FINAL: &str = "final";
    /// A finalist's summary, inside `final/<rank>/`.
    pub const RESULT: &str = "result.json";
    /// A finalist's trained weights, inside `final/<rank>/`.
    pub const MODEL: &str = "model.safetensors";
    /// Benchmark figures.
    pub const BENCH: &str = "bench.json";
}

/// A stage's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Not started.
    Pending,
    /// Started, not finished (resumed from its last checkpoint).
    Running,
    /// Finished: never redone.
    Done,
}

/// One stage of the pipeline as written in `pipeline.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `search`, `fully_train`, `benchmark_<Name>` or `report`.
    pub name: String,
    /// Its progress.
    pub status: StageStatus,
    /// Wall seconds spent in it so far (summed over resumed runs).
    #[serde(default)]
    pub seconds: f64,
}

/// `pipeline.json`: the stages of this run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineState {
    /// The stages in the order they run.
    pub stages: Vec<Stage>,
}

/// One point of a finalist's training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimiser steps done.
    pub step: usize,
    /// Training loss at that step (smoothed as the trainer reports it).
    pub loss: f64,
    /// Validation PSNR (dB) when validated at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_psnr: Option<f64>,
}

/// `final/<rank>/result.json`: a fully trained finalist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalResult {
    /// 1 = the search's best distinct architecture.
    pub rank: usize,
    /// The search member it came from.
    pub member_id: u64,
    /// Its genes, e.g. `["G_8_16_24", "C_8_16_16"]`.
    pub genes: Vec<String>,
    /// Exact parameter count.
    pub params: u64,
    /// Multi-Adds for a 1280x720 output.
    pub multi_adds: u64,
    /// Its search fitness (validation PSNR after quick training, dB).
    pub fitness_psnr: f64,
    /// Optimiser steps of the full training.
    pub steps: usize,
    /// Wall seconds of the full training (summed over resumed runs).
    pub train_seconds: f64,
    /// Device it was trained on.
    pub device: String,
    /// Validation PSNR / SSIM of the fully trained model (search's validation images).
    pub val_psnr: f64,
    /// See `val_psnr`.
    pub val_ssim: f64,
    /// Bicubic on the same validation images.
    pub bicubic_val_psnr: f64,
    /// See `bicubic_val_psnr`.
    pub bicubic_val_ssim: f64,
    /// Loss (and periodic validation) during the full training.
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
}

/// PSNR and SSIM of one model on one set (means over its images, Y channel).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetScore {
    /// Mean PSNR, dB.
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
}

impl From<crate::metrics::Score> for SetScore {
    fn from(score: crate::metrics::Score) -> SetScore {
        SetScore {
            psnr: score.psnr,
            ssim: score.ssim,
        }
    }
}

/// One finalist's score on one benchmark set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    /// The finalist's rank (`final/<rank>`).
    pub rank: usize,
    /// Its score.
    #[serde(flatten)]
    pub score: SetScore,
}

/// One benchmark set (a `benchmark_<Name>` section of the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSet {
    /// `Set5` for `benchmark_Set5`.
    pub name: String,
    /// The HR folder (or DIV2K root) it read.
    pub path: String,
    /// Number of images.
    pub images: usize,
    /// Bicubic on this set.
    pub bicubic: SetScore,
    /// Each finalist on this set.
    pub models: Vec<ModelScore>,
}

/// `bench.json`: every benchmark set measured so far, in pipeline order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    /// The sets.
    pub sets: Vec<BenchSet>,
}

/// `RUN_DIR/final/<rank>`.
pub fn final_dir(run_dir: &Path, rank: usize) -> PathBuf {
    run_dir.join(files::FINAL).join(rank.to_string())
}

/// Reads a JSON results file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not a valid esr-ea results file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a JSON results file atomically (temp file + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    crate::fsutil::atomic_write(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_and_missing_file_is_none() {
        let dir = std::env::temp_dir().join(format!("esr-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(files::BENCH);
        assert!(read_json::<BenchResults>(&path).unwrap().is_none());
        let bench = BenchResults {
            sets: vec![BenchSet {
                name: "Set5".into(),
                path: "/data/Set5".into(),
                images: 5,
                bicubic: SetScore {
                    psnr: 33.66,
                    ssim: 0.93,
                },
                models: vec![ModelScore {
                    rank: 1,
                    score: SetScore {
                        psnr: 36.1,
                        ssim: 0.95,
                    },
                }],
            }],
        };
        write_json(&path, &bench).unwrap();
        assert_eq!(read_json::<BenchResults>(&path).unwrap(), Some(bench));
        std::fs::write(&path, b"{").unwrap();
        let err = read_json::<BenchResults>(&path).unwrap_err();
        assert!(format!("{err:#}").contains("bench.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

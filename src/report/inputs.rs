//! Everything the report reads from a run directory: the search's own files
//! (`state.json`, `config.yaml`, `events.jsonl`) and those of the later
//! stages (`pipeline.json`, `final/<rank>/result.json`, `bench.json`).
//!
//! A stage that has not run yet simply contributes nothing; a stage that
//! `pipeline.json` calls done but whose file is missing is an error naming
//! that file, since a report without it would silently omit results.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::engine::results::{
    self, files, BenchResults, FinalResult, PipelineState, SetScore, StageStatus,
};
use crate::engine::rundir::{self, RunDir};
use crate::engine::Event;
use crate::search::SearchState;
use crate::train::datasets::load_split;

/// Bicubic on the search's validation images, or why it is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum BicubicBaseline {
    /// Its mean PSNR / SSIM, and where it came from.
    Known {
        /// The figures.
        score: SetScore,
        /// `final/1/result.json`, or the validation folder it was measured on.
        source: String,
    },
    /// Could not be had (validation images missing): the reason.
    Unknown(String),
}

impl BicubicBaseline {
    /// The PSNR, when known.
    pub fn psnr(&self) -> Option<f64> {
        match self {
            BicubicBaseline::Known { score, .. } => Some(score.psnr),
            BicubicBaseline::Unknown(_) => None,
        }
    }

    /// The PSNR / SSIM, when known.
    pub fn score(&self) -> Option<&SetScore> {
        match self {
            BicubicBaseline::Known { score, .. } => Some(score),
            BicubicBaseline::Unknown(_) => None,
        }
    }
}

/// A run directory's files, read and checked against each other.
#[derive(Debug, Clone)]
pub struct RunInputs {
    /// The run directory.
    pub dir: PathBuf,
    /// Its name (the folder's name).
    pub name: String,
    /// The resolved configuration (`config.yaml`).
    pub config: Config,
    /// The file (or embedded name) the run's configuration was resolved
    /// from, as `config.yaml`'s first line records it.
    pub config_origin: String,
    /// The search (`state.json`).
    pub state: SearchState,
    /// The stages, when the run has a `pipeline.json`.
    pub pipeline: Option<PipelineState>,
    /// Fully trained finalists, by rank.
    pub finals: Vec<FinalResult>,
    /// Benchmark figures, when measured.
    pub bench: Option<BenchResults>,
    /// Devices of the latest start of the search (`events.jsonl`).
    pub devices: Vec<String>,
    /// Bicubic on the validation images.
    pub bicubic: BicubicBaseline,
}

impl RunInputs {
    /// Reads the run in `dir`.
    pub fn load(dir: &Path) -> Result<RunInputs> {
        let run = RunDir::open(dir)?;
        let state = run.load_state()?;
        let config = rundir::load_config(dir)?;
        let config_origin = config_origin(&run.file(rundir::files::CONFIG))
            .unwrap_or_else(|| config.source.clone());
        let pipeline: Option<PipelineState> = results::read_json(&dir.join(files::PIPELINE))?;
        let done = |stage: &str| {
            pipeline.as_ref().is_some_and(|p| {
                p.stages
                    .iter()
                    .any(|s| s.name == stage && s.status == StageStatus::Done)
            })
        };
        let finals = read_finals(dir, done("fully_train"))?;
        let bench: Option<BenchResults> = results::read_json(&dir.join(files::BENCH))?;
        check_benchmarks(dir, pipeline.as_ref(), bench.as_ref())?;
        let devices = last_devices(&run.file(rundir::files::EVENTS));
        let bicubic = match finals.first() {
            Some(f) => BicubicBaseline::Known {
                score: SetScore {
                    psnr: f.bicubic_val_psnr,
                    ssim: f.bicubic_val_ssim,
                },
                source: format!("{}/{}/{}", files::FINAL, f.rank, files::RESULT),
            },
            None => measure_bicubic(&config),
        };
        Ok(RunInputs {
            dir: dir.to_path_buf(),
            name: run.name(),
            config,
            config_origin,
            state,
            pipeline,
            finals,
            bench,
            devices,
            bicubic,
        })
    }
}

/// What `config.yaml`'s header says it was resolved from (written by
/// `Config::to_yaml`); the loaded config's own source is `config.yaml` itself.
fn config_origin(config_yaml: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config_yaml).ok()?;
    let origin = text
        .lines()
        .next()?
        .strip_prefix("# esr-ea configuration, resolved from ")?;
    Some(origin.trim().to_string())
}

/// Every `final/<rank>/result.json`, by rank. A rank folder without one is a
/// finalist still in training, unless the stage is done.
fn read_finals(dir: &Path, stage_done: bool) -> Result<Vec<FinalResult>> {
    let root = dir.join(files::FINAL);
    let mut ranks: Vec<usize> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", root.display())),
    };
    ranks.sort_unstable();
    if stage_done && ranks.is_empty() {
        ranks.push(1);
    }
    let mut finals = Vec::new();
    for rank in ranks {
        let path = results::final_dir(dir, rank).join(files::RESULT);
        match results::read_json::<FinalResult>(&path)? {
            Some(result) => finals.push(result),
            None if stage_done => bail!(
                "{} is missing although {} says fully_train is done",
                path.display(),
                files::PIPELINE
            ),
            None => {}
        }
    }
    Ok(finals)
}

/// Each benchmark stage that `pipeline.json` calls done has its set in `bench.json`.
fn check_benchmarks(
    dir: &Path,
    pipeline: Option<&PipelineState>,
    bench: Option<&BenchResults>,
) -> Result<()> {
    let Some(pipeline) = pipeline else {
        return Ok(());
    };
    let path = dir.join(files::BENCH);
    for stage in &pipeline.stages {
        let Some(set) = stage.name.strip_prefix("benchmark_") else {
            continue;
        };
        if stage.status != StageStatus::Done {
            continue;
        }
        match bench {
            None => bail!(
                "{} is missing although {} says {} is done",
                path.display(),
                files::PIPELINE,
                stage.name
            ),
            Some(b) if !b.sets.iter().any(|s| s.name == set) => bail!(
                "{} has no set {set} although {} says {} is done",
                path.display(),
                files::PIPELINE,
                stage.name
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The devices of the last `run_started` in the event log; a missing log or
/// torn lines leave what could be read.
fn last_devices(events: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(events) else {
        return Vec::new();
    };
    text.lines()
        .rev()
        .find_map(|line| match serde_json::from_str::<Event>(line) {
            Ok(Event::RunStarted { devices, .. }) => Some(devices),
            _ => None,
        })
        .unwrap_or_default()
}

/// Bicubic on the config's validation split, measured as the fitness is
/// (Y channel, `scale` pixels shaved, mean over images).
fn measure_bicubic(config: &Config) -> BicubicBaseline {
    let scale = config.search_space.scale;
    let split = &config.dataset.test;
    let measured = (|| -> Result<(SetScore, String)> {
        // Silent: the report is written under a running dashboard too.
        let cache = crate::data::DataCache::new(config.data_cache(), |_| {});
        let val = load_split(split, scale, &cache)?;
        if val.is_empty() {
            bail!("{} has no images", val.source);
        }
        Ok((
            SetScore::from(crate::metrics::Score::bicubic(&val, scale)?),
            val.source.clone(),
        ))
    })();
    match measured {
        Ok((score, source)) => BicubicBaseline::Known { score, source },
        Err(e) => BicubicBaseline::Unknown(format!(
            "bicubic not measured on {}: {e:#}",
            split.root_hr.display()
        )),
    }
}

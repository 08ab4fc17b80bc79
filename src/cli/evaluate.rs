//! `esr-ea evaluate JOB.json` (hidden): one member's quick training and
//! validation, as a Slurm batch job runs it on a compute node. It trains
//! exactly as a local worker of `esr-ea search` would (same config, seed and
//! trainer, so on CPU the same losses and fitness), appends one progress line
//! per step to the job's progress file and writes its result atomically; the
//! coordinator tails the one and collects the other.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use crate::config::Config;
use crate::engine::executor::jobfile::{self, JobResult, JobSpec, ProgressLine};
use crate::engine::{Failure, Fitness, Job};
use crate::search::{Evaluation, Rung, Stop};
use crate::train::fitness::QuickTrain;

/// Arguments of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The job file the Slurm executor wrote (`<run>/jobs/<id>.json`).
    #[arg(value_name = "JOB.json")]
    pub job: PathBuf,
}

/// Runs `evaluate`: exits non-zero (after writing the result) when the
/// member failed, so Slurm shows the job as FAILED too.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    let spec = jobfile::read_spec(&args.job)?;
    let result = match evaluate(&spec) {
        Ok(evaluation) => JobResult::Evaluated { evaluation },
        Err(Ended::Stopped(stop)) => JobResult::Stopped { stop },
        Err(Ended::Waiting(rung)) => JobResult::Waiting { rung },
        Err(Ended::Failed(reason)) => JobResult::Failed { reason },
    };
    jobfile::write_result(&spec.result, &result)?;
    match result {
        JobResult::Evaluated { evaluation } => {
            println!(
                "member #{}: PSNR {:.4} dB, SSIM {:.5}, {:.1} s",
                spec.member.id, evaluation.psnr, evaluation.ssim, evaluation.seconds
            );
            Ok(())
        }
        JobResult::Stopped { stop } => {
            println!(
                "member #{}: stopped by {} after {} of {} steps ({})",
                spec.member.id,
                stop.rule_name(),
                stop.step,
                stop.steps,
                stop.reason()
            );
            Ok(())
        }
        JobResult::Waiting { rung } => {
            println!(
                "member #{}: trained to step {} (mean loss {:.5}), saved for successive halving",
                spec.member.id, rung.step, rung.loss
            );
            Ok(())
        }
        JobResult::Failed { reason } => bail!("member #{}: {reason}", spec.member.id),
    }
}

/// How a job ended without an evaluation.
enum Ended {
    /// The median stopping rule stopped it: a result, not a failure.
    Stopped(Stop),
    /// Successive halving: it reached its leg's checkpoint.
    Waiting(Rung),
    /// It failed, one line.
    Failed(String),
}

impl From<String> for Ended {
    fn from(reason: String) -> Ended {
        Ended::Failed(reason)
    }
}

fn evaluate(spec: &JobSpec) -> Result<Evaluation, Ended> {
    let loaded = Config::load(&spec.config).map_err(|e| e.to_string())?;
    let config = loaded.config;
    let scale = config.search_space.scale;
    use crate::train::datasets::{load_for, Role};
    let crop = config.dataset.train.crop;
    let train = load_for(&config.dataset.train, scale, Role::Training { crop })
        .map_err(|e| format!("training images: {e}"))?;
    let val = load_for(&config.dataset.test, scale, Role::Scoring)
        .map_err(|e| format!("validation images: {e}"))?;
    let fitness = QuickTrain::from_config(&config, Arc::new(train), Arc::new(val));
    let job = Job {
        arch: config.search_space.arch(spec.member.genes.clone()),
        member: spec.member.clone(),
        seed: spec.seed,
        device: spec.device.clone(),
        weights: spec.weights.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        adopt: None,
        // Measured on the node when the run has a latency limit.
        latency_ms: None,
        checks: spec.checks.clone(),
        leg: spec.leg.clone(),
    };
    let mut progress = std::fs::File::create(&spec.progress)
        .map_err(|e| format!("cannot create {}: {e}", spec.progress.display()))?;
    let mut write_error = None;
    let mut report = |r: crate::train::StepReport| {
        let mut line = serde_json::to_string(&ProgressLine::from(r)).expect("plain numbers");
        line.push('\n');
        // One write per line: the coordinator never reads half a line as whole.
        if let Err(e) = progress.write_all(line.as_bytes()) {
            write_error.get_or_insert(e);
        }
    };
    let outcome = fitness.evaluate(&job, &mut report);
    if let Some(e) = write_error {
        eprintln!("warning: cannot append to {}: {e}", spec.progress.display());
    }
    outcome.map_err(|f| match f {
        Failure::Stopped(stop) => Ended::Stopped(stop),
        Failure::Waiting(rung) => Ended::Waiting(rung),
        Failure::Error(reason) | Failure::Rejected { reason, .. } => Ended::Failed(reason),
        // The job cannot tell the coordinator to stop: the member fails, saying why.
        Failure::Storage(reason) => {
            Ended::Failed(format!("cannot write the run's files: {reason}"))
        }
        Failure::Cancelled | Failure::Detached => Ended::Failed("cancelled".into()),
    })
}

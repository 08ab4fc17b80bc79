//! `esr-ea evaluate JOB.json` (hidden): one member's quick training and
//! validation, as a Slurm batch job runs it on a compute node. It trains
//! exactly as a local worker of `esr-ea search` would (same config, seed and
//! trainer, so on CPU the same losses and fitness), appends one progress line
//! per step to the job's progress file and writes its result atomically; the
//! coordinator tails the one and collects the other. A study's job file
//! (kind `study_task`) runs one training of `esr-ea study --executor slurm`
//! instead, writing the study's record of it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use crate::config::Config;
use crate::engine::executor::jobfile::{self, JobKind, JobSpec, ProgressLine};
use crate::engine::{Fitness, Job, Outcome};
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
    let (outcome, what) = match spec.kind {
        JobKind::Member => (evaluate(&spec).unwrap_or_else(Outcome::failed), "member"),
        JobKind::StudyTask => (
            crate::study::run_job(
                &spec.run_dir,
                spec.member.id,
                &spec.device,
                super::data_cache,
            ),
            "study training",
        ),
    };
    // What the job file carries: the coordinator records it as a local
    // worker's outcome would be recorded.
    let outcome = match outcome {
        // The job cannot tell the coordinator to stop: the member fails, saying why.
        Outcome::StorageFailed { reason } => {
            Outcome::failed(format!("cannot write the run's files: {reason}"))
        }
        Outcome::Cancelled | Outcome::Detached => Outcome::failed("cancelled"),
        other => other,
    };
    jobfile::write_result(&spec.result, &outcome)?;
    let id = spec.member.id;
    match outcome {
        Outcome::Evaluated { evaluation } => println!(
            "{what} #{id}: PSNR {:.4} dB, SSIM {:.5}, {:.1} s",
            evaluation.psnr, evaluation.ssim, evaluation.seconds
        ),
        Outcome::Stopped { stop } => println!(
            "{what} #{id}: stopped by {} after {} of {} steps ({})",
            stop.rule_name(),
            stop.step,
            stop.steps,
            stop.reason()
        ),
        Outcome::Waiting { rung } => println!(
            "{what} #{id}: trained to step {} (mean loss {:.5}), saved for successive halving",
            rung.step, rung.loss
        ),
        Outcome::Rejected { reason, .. } => println!("{what} #{id}: not trained: {reason}"),
        Outcome::Failed { reason } | Outcome::StorageFailed { reason } => {
            bail!("{what} #{id}: {reason}")
        }
        Outcome::Cancelled | Outcome::Detached => bail!("{what} #{id}: cancelled"),
    }
    Ok(())
}

/// The job's training, or why it could not begin (its config or data).
fn evaluate(spec: &JobSpec) -> Result<Outcome, String> {
    let loaded = Config::load(&spec.config).map_err(|e| e.to_string())?;
    let config = loaded.config;
    let fitness =
        QuickTrain::load(&config, &super::data_cache(&config)).map_err(|e| format!("{e:#}"))?;
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
    Ok(outcome)
}

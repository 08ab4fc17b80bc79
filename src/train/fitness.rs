//! What the search engine asks of a trainer ([`Fitness`]: a [`Job`] in, an
//! evaluation out) and the real one: quick-train a member with candle,
//! validate it on the fixed validation set, save its weights.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::trainer::{TrainError, TrainPlan, Trainer};
use super::StepReport;
use crate::data::dataset::Dataset;
use crate::search::{Evaluation, Member};
use crate::space::Arch;

/// Quick training as the search's fitness.
pub struct QuickTrain {
    /// Training images.
    pub train: Arc<Dataset>,
    /// Fixed validation images.
    pub val: Arc<Dataset>,
    /// How each member is trained.
    pub plan: TrainPlan,
}

/// One training job handed to a worker.
#[derive(Debug, Clone)]
pub struct Job {
    /// The member to train.
    pub member: Member,
    /// Its network.
    pub arch: Arch,
    /// Seed for its weights and patches: derived from the run seed and the
    /// member id, so a re-run after a crash trains identically.
    pub seed: u64,
    /// Device name (`cpu`, `cuda:0`, …).
    pub device: String,
    /// Where to save the quick-trained weights.
    pub weights: PathBuf,
    /// Set when the member is killed or the search stops.
    pub cancel: Arc<AtomicBool>,
    /// The outside job (Slurm job id) that a previous coordinator submitted
    /// for this member, from `state.json`: adopt it rather than submit again.
    pub adopt: Option<String>,
}

/// Why an evaluation produced no fitness.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The job's cancel flag was seen.
    Cancelled,
    /// Training or validation failed: the member's own fault, its fitness.
    Error(String),
    /// Writing the run's files (the member's weights) failed: not the
    /// member's fault, so the search stops and the member is redone on resume.
    Storage(String),
    /// The search stopped and the job was left running (a Slurm job), to be
    /// adopted on resume; the member stays queued.
    Detached,
}

/// Turns a job into a fitness. Implementations must check `job.cancel`
/// regularly (at least every training step) and return `Failure::Cancelled`.
pub trait Fitness: Send + Sync {
    /// Training steps per evaluation (for progress and ETA).
    fn steps(&self) -> usize;
    /// Trains and validates the job's network, reporting each step.
    fn evaluate(
        &self,
        job: &Job,
        report: &mut dyn FnMut(StepReport),
    ) -> Result<Evaluation, Failure>;
}

impl Fitness for QuickTrain {
    fn steps(&self) -> usize {
        self.plan.steps
    }

    fn evaluate(
        &self,
        job: &Job,
        report: &mut dyn FnMut(StepReport),
    ) -> Result<Evaluation, Failure> {
        let start = Instant::now();
        let device = crate::device::open(&job.device).map_err(|e| Failure::Error(e.to_string()))?;
        let fail = |e: TrainError| match e {
            TrainError::Stopped(_) => Failure::Cancelled,
            other => Failure::Error(other.to_string()),
        };
        let mut trainer = Trainer::new(
            &job.arch,
            self.plan.clone(),
            Arc::clone(&self.train),
            job.seed,
            &device,
        )
        .map_err(fail)?;
        trainer
            .run(|r| {
                report(r);
                !job.cancel.load(Ordering::SeqCst)
            })
            .map_err(fail)?;
        if job.cancel.load(Ordering::SeqCst) {
            return Err(Failure::Cancelled);
        }
        let score = trainer.validate(&self.val).map_err(fail)?;
        trainer
            .save_weights(&job.weights)
            .map_err(|e| Failure::Storage(e.to_string()))?;
        Ok(Evaluation {
            psnr: score.psnr,
            ssim: score.ssim,
            final_loss: trainer.losses.last().copied(),
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

//! What the search engine asks of a trainer ([`Fitness`]: a [`Job`] in, an
//! evaluation out) and the real one: quick-train a member with candle,
//! validate it on the fixed validation set, save its weights.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::trainer::{TrainError, TrainPlan, Trainer};
use super::StepReport;
use crate::data::dataset::Dataset;
use crate::latency::LatencyLimit;
use crate::search::median_stop::{window_mean, StopWatch};
use crate::search::{Evaluation, Member, Rung, Stop, StopCheck, StopRule};
use crate::space::Arch;

/// Quick training as the search's fitness.
pub struct QuickTrain {
    /// Training images.
    pub train: Arc<Dataset>,
    /// Fixed validation images.
    pub val: Arc<Dataset>,
    /// How each member is trained.
    pub plan: TrainPlan,
    /// The latency constraint: members over it are not trained.
    pub latency: Option<LatencyLimit>,
    /// Common random numbers: when set, every member trains with this seed
    /// (patch stream and initial weights) instead of its own job seed, so
    /// members of one run differ by their architecture only.
    pub common_seed: Option<u64>,
}

impl QuickTrain {
    /// The search's fitness as a config defines it (`nas.trainer`,
    /// `nas.dataset`, `range.max_latency_ms`, the run seed for common random
    /// numbers), on already loaded images: what `search`, a Slurm job and
    /// `study` all evaluate with. The stopping rules are not the trainer's:
    /// they come with each [`Job`] as its checks and leg.
    pub fn from_config(
        config: &crate::config::Config,
        train: Arc<Dataset>,
        val: Arc<Dataset>,
    ) -> QuickTrain {
        let plan =
            TrainPlan::from_config(&config.search_trainer, &config.dataset.train, train.len());
        QuickTrain {
            train,
            val,
            plan,
            latency: config.latency_limit.clone(),
            common_seed: config
                .search_trainer
                .common_random_numbers
                .then(|| crate::seeds::common_seed(config.seed)),
        }
    }

    /// [`QuickTrain::from_config`] with the config's images loaded and
    /// checked (`nas.dataset`: the training set against its crop, the
    /// validation set for scoring); an error says which set failed.
    pub fn load(
        config: &crate::config::Config,
        cache: &crate::data::DataCache,
    ) -> anyhow::Result<QuickTrain> {
        use crate::train::datasets::{load_for, Role};
        use anyhow::Context;
        let scale = config.search_space.scale;
        let split = &config.dataset.train;
        let train = load_for(split, scale, Role::Training { crop: split.crop }, cache)
            .with_context(|| format!("training images {}", split.root_hr.display()))?;
        let split = &config.dataset.test;
        let val = load_for(split, scale, Role::Scoring, cache)
            .with_context(|| format!("validation images {}", split.root_hr.display()))?;
        Ok(QuickTrain::from_config(
            config,
            Arc::new(train),
            Arc::new(val),
        ))
    }

    /// The seed a job trains with: the run's common seed, else its own.
    pub fn training_seed(&self, job: &Job) -> u64 {
        self.common_seed.unwrap_or(job.seed)
    }
}

/// The bicubic PSNR of a run's fitness validation images (`nas.dataset.test`
/// of `config`), scored as the fitness is: for a run saved without it.
pub fn bicubic_of_config(
    config: &crate::config::Config,
    cache: &crate::data::DataCache,
) -> anyhow::Result<f64> {
    let scale = config.search_space.scale;
    let val = crate::train::datasets::load_for(
        &config.dataset.test,
        scale,
        crate::train::datasets::Role::Scoring,
        cache,
    )?;
    Ok(crate::train::trainer::bicubic_psnr(&val, scale)?)
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
    /// Its architecture's latency when measured before (the search state's
    /// latency cache), so it is not measured again.
    pub latency_ms: Option<f64>,
    /// The median stopping rule's checkpoints for this member, limits
    /// included, fixed by the coordinator from earlier generations
    /// ([`crate::search::MedianStop::checks`]); empty when the rule is off.
    pub checks: Vec<StopCheck>,
    /// Which part of the training this job is, under successive halving;
    /// the default is the whole training.
    pub leg: Leg,
}

/// A part of a member's training under successive halving: from the start
/// or a saved checkpoint, to the next checkpoint or the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// Continue from this checkpoint (the member was promoted): where it was
    /// saved and what the training had measured there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<LegStart>,
    /// Stop at this checkpoint, save the training there and wait; `None`:
    /// train to the end and validate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<LegEnd>,
}

/// Where a promoted member continues from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegStart {
    /// The checkpoint folder ([`Trainer::save_checkpoint`]).
    pub checkpoint: PathBuf,
    /// What it had reached there.
    pub rung: Rung,
}

/// The halving checkpoint a leg ends at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegEnd {
    /// Which checkpoint (index into the schedule).
    pub rung: usize,
    /// The step after which the training waits.
    pub step: usize,
    /// Steps whose mean loss ranks the member there.
    pub window: usize,
    /// Where to save the training.
    pub checkpoint: PathBuf,
}

/// How an evaluation ended: the one answer a trainer gives, a worker thread
/// or a Slurm job passes on (as `jobs/<id>.result.json`) and the engine
/// records. Only [`Outcome::Evaluated`] carries a fitness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Trained and validated.
    Evaluated {
        /// The fitness and its figures.
        evaluation: Evaluation,
    },
    /// Training or validation failed: the member's own fault, its result.
    Failed {
        /// Why, one line.
        reason: String,
    },
    /// Stopped early by the median stopping rule at one of its checkpoints.
    Stopped {
        /// Where and why.
        stop: Stop,
    },
    /// Successive halving: trained to the leg's checkpoint and saved there.
    Waiting {
        /// What it reached.
        rung: Rung,
    },
    /// Not trained: the measured latency is over the run's limit.
    Rejected {
        /// Why, with the figures (`latency 812.0 ms > max_latency_ms 500 (…)`).
        reason: String,
        /// The measured median ms per frame.
        latency_ms: f64,
    },
    /// The job's cancel flag was seen.
    Cancelled,
    /// The search stopped and the job was left running (a Slurm job), to be
    /// adopted on resume; the member stays queued.
    Detached,
    /// Writing the run's files (the member's weights) failed: not the
    /// member's fault, so the search stops and the member is redone on resume.
    StorageFailed {
        /// Why, one line.
        reason: String,
    },
}

impl Outcome {
    /// A failure with its reason.
    pub fn failed(reason: impl Into<String>) -> Outcome {
        Outcome::Failed {
            reason: reason.into(),
        }
    }

    /// The evaluation, or the outcome that ended without one.
    pub fn into_evaluation(self) -> Result<Evaluation, Outcome> {
        match self {
            Outcome::Evaluated { evaluation } => Ok(evaluation),
            other => Err(other),
        }
    }
}

/// Turns a job into an [`Outcome`]. Implementations must check `job.cancel`
/// regularly (at least every training step) and end with
/// [`Outcome::Cancelled`] when it is set.
pub trait Fitness: Send + Sync {
    /// Trains and validates the job's network, reporting each step.
    fn evaluate(&self, job: &Job, report: &mut dyn FnMut(StepReport)) -> Outcome;
}

impl Fitness for QuickTrain {
    fn evaluate(&self, job: &Job, report: &mut dyn FnMut(StepReport)) -> Outcome {
        match self.train_and_validate(job, report) {
            Ok(evaluation) => Outcome::Evaluated { evaluation },
            Err(ended) => ended,
        }
    }
}

impl QuickTrain {
    /// [`Fitness::evaluate`], with every ending but an evaluation as `Err`
    /// (so `?` ends the training where it failed).
    fn train_and_validate(
        &self,
        job: &Job,
        report: &mut dyn FnMut(StepReport),
    ) -> Result<Evaluation, Outcome> {
        let start = Instant::now();
        let latency_ms = match &self.latency {
            None => None,
            Some(limit) => {
                let ms = match job.latency_ms {
                    Some(ms) => ms,
                    None => limit
                        .measure(&job.arch, job.seed)
                        .map_err(|e| Outcome::failed(format!("latency measurement: {e:#}")))?,
                };
                if let Some(reason) = limit.rejection(ms) {
                    return Err(Outcome::Rejected {
                        reason,
                        latency_ms: ms,
                    });
                }
                Some(ms)
            }
        };
        if job.cancel.load(Ordering::SeqCst) {
            return Err(Outcome::Cancelled);
        }
        let device =
            crate::device::open(&job.device).map_err(|e| Outcome::failed(e.to_string()))?;
        let fail = |e: TrainError| match e {
            TrainError::Stopped(_) => Outcome::Cancelled,
            other => Outcome::failed(other.to_string()),
        };
        let mut trainer = match &job.leg.from {
            None => Trainer::new(
                &job.arch,
                self.plan.clone(),
                Arc::clone(&self.train),
                self.training_seed(job),
                &device,
            ),
            Some(start) => Trainer::resume(&start.checkpoint, Arc::clone(&self.train), &device),
        }
        .map_err(fail)?;
        let before = job.leg.from.as_ref().map(|s| &s.rung);
        let seconds_before = before.map_or(0.0, |r| r.seconds);
        let losses_before = before
            .map(|r| r.checkpoint_losses.clone())
            .unwrap_or_default();
        let until = job.leg.until.as_ref();
        let mut watch = StopWatch::new(job.checks.clone());
        let mut stopped = None;
        let run = trainer.run(|r| {
            report(r);
            stopped = watch.step(r.step, r.loss);
            stopped.is_none()
                && until.is_none_or(|u| r.step < u.step)
                && !job.cancel.load(Ordering::SeqCst)
        });
        if let Some(point) = stopped {
            return Err(Outcome::Stopped {
                stop: Stop {
                    step: point.step,
                    steps: self.plan.steps,
                    loss: point.loss,
                    median: point.median,
                    checkpoint_losses: watch.checkpoint_losses,
                    seconds: start.elapsed().as_secs_f64(),
                    rule: StopRule::Median,
                },
            });
        }
        if let Some(until) = until {
            if trainer.step() == until.step && !job.cancel.load(Ordering::SeqCst) {
                let loss = window_mean(&trainer.losses, until.window);
                trainer
                    .save_checkpoint(&until.checkpoint)
                    .map_err(|e| Outcome::StorageFailed {
                        reason: e.to_string(),
                    })?;
                let mut checkpoint_losses = losses_before;
                checkpoint_losses.push(loss);
                return Err(Outcome::Waiting {
                    rung: Rung {
                        rung: until.rung,
                        step: until.step,
                        loss,
                        checkpoint_losses,
                        seconds: seconds_before + start.elapsed().as_secs_f64(),
                    },
                });
            }
        }
        run.map_err(fail)?;
        if job.cancel.load(Ordering::SeqCst) {
            return Err(Outcome::Cancelled);
        }
        let score = trainer.validate(&self.val).map_err(fail)?;
        trainer
            .save_weights(&job.weights)
            .map_err(|e| Outcome::StorageFailed {
                reason: e.to_string(),
            })?;
        let checkpoint_losses = if job.leg == Leg::default() {
            watch.checkpoint_losses
        } else {
            losses_before
        };
        Ok(Evaluation {
            psnr: score.psnr,
            ssim: score.ssim,
            final_loss: trainer.losses.last().copied(),
            seconds: seconds_before + start.elapsed().as_secs_f64(),
            latency_ms,
            checkpoint_losses,
        })
    }
}

//! One training of a study, wherever it runs: a worker thread of this
//! process ([`Trainings`], through the local executor) or a Slurm job
//! (`esr-ea evaluate` on a study task's job file, [`run_job`]). Both train
//! the same way and write the same record, so a study's table does not
//! depend on where its trainings ran.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{files, write_json, CurvePoint, Study, Task, TrainingRecord};
use crate::config::Config;
use crate::data::DataCache;
use crate::seeds::study_seed;
use crate::train::fitness::{Fitness, Job, Outcome, QuickTrain};
use crate::train::trainer::{TrainError, Trainer};
use crate::train::StepReport;

impl Study {
    /// The search's fitness for run seed `run_seed`: the config as the
    /// search would run it with that seed.
    fn fitness_for(&self, run_seed: u64) -> QuickTrain {
        let mut config = self.config.clone();
        config.seed = run_seed;
        QuickTrain::from_config(&config, Arc::clone(&self.train), Arc::clone(&self.val))
    }

    /// Runs one training to its record; `None` when cancelled.
    pub(super) fn train_one(
        &self,
        task: Task,
        device: &str,
        cancel: &Arc<AtomicBool>,
    ) -> Option<TrainingRecord> {
        let start = Instant::now();
        let planned = &self.plan.archs[task.arch()];
        let arch = self.config.search_space.arch(planned.genes.clone());
        let weights = self
            .dir
            .join(files::MODELS)
            .join(format!("{}.safetensors", task.key()));
        let mut curve = Vec::new();
        let mut checkpoint_losses = Vec::new();
        let outcome: Result<f64, String> = match task {
            Task::Fitness {
                arch: index,
                repeat,
            } => {
                let run_seed = self.plan.settings.seed.wrapping_add(repeat as u64);
                let fitness = self.fitness_for(run_seed);
                let job = Job {
                    member: planned.member(index as u64),
                    arch,
                    seed: study_seed(run_seed, index as u64),
                    device: device.to_string(),
                    weights,
                    cancel: Arc::clone(cancel),
                    adopt: None,
                    latency_ms: None,
                    // The study measures the whole fitness: its stopping
                    // rule's checkpoints only record the loss there.
                    checks: self.rule_checkpoints(),
                    leg: Default::default(),
                };
                match fitness.evaluate(&job, &mut |_| {}) {
                    Outcome::Evaluated { evaluation } => {
                        checkpoint_losses = evaluation.checkpoint_losses;
                        Ok(evaluation.psnr)
                    }
                    Outcome::Cancelled | Outcome::Detached => return None,
                    Outcome::Failed { reason }
                    | Outcome::StorageFailed { reason }
                    | Outcome::Rejected { reason, .. } => Err(reason),
                    Outcome::Stopped { stop } => Err(format!(
                        "stopped by {} after {} steps",
                        stop.rule_name(),
                        stop.step
                    )),
                    Outcome::Waiting { rung } => Err(format!(
                        "waiting at step {} for successive halving",
                        rung.step
                    )),
                }
            }
            Task::Reference {
                arch: index,
                repeat,
            } => match self.reference_training(&arch, index, repeat, device, &weights, cancel) {
                Ok((psnr, points)) => {
                    curve = points;
                    Ok(psnr)
                }
                Err(TrainError::Stopped(_)) => return None,
                Err(e) => Err(e.to_string()),
            },
        };
        if cancel.load(Ordering::SeqCst) {
            return None;
        }
        let (psnr, error) = match outcome {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        };
        Some(TrainingRecord {
            task,
            psnr,
            error,
            seconds: start.elapsed().as_secs_f64(),
            device: device.to_string(),
            curve,
            checkpoint_losses,
        })
    }

    /// The config's stopping rule's checkpoints in a fitness training, as
    /// checks that never stop anyone.
    fn rule_checkpoints(&self) -> Vec<crate::search::StopCheck> {
        self.config
            .search_rules(self.train.len())
            .checkpoints()
            .into_iter()
            .map(|(step, window)| crate::search::StopCheck {
                step,
                window,
                limit: None,
            })
            .collect()
    }

    /// The reference: the full training's plan (or `--reference-steps`) on
    /// the full dataset's training images, validated on the fitness's
    /// validation images so both scores compare.
    fn reference_training(
        &self,
        arch: &crate::space::Arch,
        index: usize,
        repeat: usize,
        device: &str,
        weights: &Path,
        cancel: &Arc<AtomicBool>,
    ) -> Result<(f64, Vec<CurvePoint>), TrainError> {
        let dev = crate::device::open(device).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        let train = if self.config.full_dataset == self.config.dataset {
            Arc::clone(&self.train)
        } else {
            Arc::new(crate::train::datasets::load_for(
                &self.config.full_dataset.train,
                self.config.search_space.scale,
                crate::train::datasets::Role::Training {
                    crop: self.config.full_dataset.train.crop,
                },
                &self.cache,
            )?)
        };
        // Its own seed, unrelated to any fitness run's: shared luck would
        // inflate the correlation.
        let seed = study_seed(
            (self.plan.settings.seed ^ 0x5EF0_0000_0000_0000).wrapping_add(repeat as u64),
            index as u64,
        );
        let mut trainer = Trainer::new(arch, self.plan.reference.clone(), train, seed, &dev)?;
        let steps = self.plan.reference.steps;
        let every = (steps / 10).max(1);
        let mut curve = Vec::new();
        if cancel.load(Ordering::SeqCst) && trainer.step() < steps {
            return Err(TrainError::Stopped(trainer.step()));
        }
        let val = &self.val;
        let finished = trainer.train_to(steps, |trainer, r| {
            if r.step % every == 0 || r.step == steps {
                let psnr = trainer.validate(val)?.psnr;
                curve.push(CurvePoint { step: r.step, psnr });
            }
            Ok::<_, TrainError>(r.step == steps || !cancel.load(Ordering::SeqCst))
        })?;
        if !finished {
            return Err(TrainError::Stopped(trainer.step()));
        }
        // The last point is the final score (a zero-step plan still gets one).
        if curve.last().is_none_or(|p| p.step != steps) {
            let psnr = trainer.validate(&self.val)?.psnr;
            curve.push(CurvePoint { step: steps, psnr });
        }
        trainer.save_weights(weights)?;
        Ok((curve[curve.len() - 1].psnr, curve))
    }
}

/// The study's trainings as the executors' [`Fitness`]: a job's member id
/// is the task's place in [`Study::tasks`]; the record is written here
/// (the worker's side), so the study only reads it when the job is done.
pub struct Trainings(pub Arc<Study>);

impl Fitness for Trainings {
    fn evaluate(&self, job: &Job, _report: &mut dyn FnMut(StepReport)) -> Outcome {
        train_and_record(&self.0, job.member.id, &job.device, &job.cancel)
    }
}

/// Task `index` of `study` trained on `device` and its record written:
/// `Evaluated` (the record holds the PSNR), `Failed` (the record holds
/// why), `Cancelled`, or `StorageFailed` when the record cannot be written.
fn train_and_record(study: &Study, index: u64, device: &str, cancel: &Arc<AtomicBool>) -> Outcome {
    let Some(task) = study.tasks().get(index as usize).copied() else {
        return Outcome::failed(format!(
            "the study has no training #{index} (it plans {})",
            study.tasks().len()
        ));
    };
    let Some(record) = study.train_one(task, device, cancel) else {
        return Outcome::Cancelled;
    };
    if let Err(e) = write_json(&study.record_path(&task), &record) {
        return Outcome::StorageFailed {
            reason: format!("{e:#}"),
        };
    }
    match (record.psnr, record.error) {
        (Some(psnr), _) => Outcome::Evaluated {
            evaluation: crate::search::Evaluation {
                psnr,
                ssim: 0.0,
                final_loss: None,
                seconds: record.seconds,
                latency_ms: None,
                checkpoint_losses: record.checkpoint_losses,
            },
        },
        (None, error) => Outcome::failed(error.unwrap_or_else(|| "no PSNR".into())),
    }
}

/// A Slurm job's side of a study training (`esr-ea evaluate` on a job file
/// of kind `study_task`): the study in `dir` opened (its images decoded
/// through the cache `cache_for` gives), task `index` trained on `device`
/// and its record written into the study's `trainings/`.
pub fn run_job(
    dir: &Path,
    index: u64,
    device: &str,
    cache_for: impl FnOnce(&Config) -> DataCache,
) -> Outcome {
    let study = match Study::open(dir, cache_for) {
        Ok(study) => study,
        Err(e) => return Outcome::failed(format!("{e:#}")),
    };
    train_and_record(&study, index, device, &Arc::new(AtomicBool::new(false)))
}

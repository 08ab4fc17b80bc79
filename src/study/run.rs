//! A study's trainings run through an [`Executor`], as the search runs its
//! members: worker threads on this machine (`--devices`) or one Slurm batch
//! job each (`--executor slurm`). Each training's record is written where
//! it trains; the study here only hands out the trainings not yet recorded,
//! reads each record as its job ends and reports it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use super::training::Trainings;
use super::{files, make_folders, read_record, write_json, Finished, Study, Task, TrainingRecord};
use crate::config::ExecutorConfig;
use crate::engine::executor::jobfile::JobKind;
use crate::engine::executor::local::LocalExecutor;
use crate::engine::executor::slurm::SlurmExecutor;
use crate::engine::executor::Executor;
use crate::engine::{Event, Inbox, Job, Outcome};

/// Where `study`'s trainings run: one worker per entry of `devices`
/// (already expanded), or Slurm jobs with `executor`'s settings.
pub fn executor_for(
    study: &Arc<Study>,
    executor: &ExecutorConfig,
    devices: Vec<String>,
) -> Result<Box<dyn Executor>> {
    Ok(match executor {
        ExecutorConfig::Local => Box::new(LocalExecutor::new(
            devices,
            Arc::new(Trainings(Arc::clone(study))),
        )),
        ExecutorConfig::Slurm(settings) => Box::new(
            SlurmExecutor::for_kind(settings.clone(), study.dir(), JobKind::StudyTask)
                .map_err(|e| anyhow!("--executor slurm: {e}"))?,
        ),
    })
}

impl Study {
    /// Runs every training not yet recorded on `executor`; `on_finished`
    /// hears each as it is recorded, `say` the executor's news (which Slurm
    /// job runs what). Returns false when `cancel` stopped it: trainings in
    /// flight are cancelled (local workers at their next step, Slurm jobs
    /// with `scancel`) and what finished is kept.
    pub fn run(
        &self,
        mut executor: Box<dyn Executor>,
        cancel: Arc<AtomicBool>,
        mut on_finished: impl FnMut(&Finished),
        mut say: impl FnMut(String),
    ) -> Result<bool> {
        // A resumed study copied without its weights (or with a folder
        // removed) would otherwise fail every training at its last write.
        make_folders(&self.dir)?;
        let done_before = self.records()?;
        let tasks = self.tasks();
        let total = tasks.len();
        let mut queue: VecDeque<(u64, Task)> = tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| !done_before.contains_key(&t.key()))
            .map(|(index, t)| (index as u64, *t))
            .collect();
        let steps_of = |t: &Task| -> f64 {
            let steps = match t {
                Task::Fitness { .. } => self.plan.fitness.steps,
                Task::Reference { .. } => self.plan.reference.steps,
            };
            steps as f64
        };
        let mut steps_left: f64 = queue.iter().map(|(_, t)| steps_of(t)).sum();
        let start = Instant::now();
        let mut done = done_before.len();
        let mut steps_done = 0.0;
        let mut error: Option<anyhow::Error> = None;
        let mut in_flight: HashMap<u64, Job> = HashMap::new();
        let (inbox, messages) = mpsc::channel();
        executor.start(inbox);
        let mut stopping = false;
        loop {
            if !stopping && (cancel.load(Ordering::SeqCst) || error.is_some()) {
                stopping = true;
                for job in in_flight.values() {
                    job.cancel.store(true, Ordering::SeqCst);
                }
            }
            while !stopping && executor.free_slots() > 0 {
                let Some((index, task)) = queue.pop_front() else {
                    break;
                };
                let job = self.job_for(index, task);
                match executor.submit(job.clone()) {
                    Ok(_) => {
                        in_flight.insert(index, job);
                    }
                    Err(reason) => {
                        // A cluster that refuses one job refuses the next:
                        // stop rather than record every training as failed.
                        error = Some(anyhow!("cannot start {}: {reason}", task.key()));
                        break;
                    }
                }
            }
            if in_flight.is_empty() && (stopping || error.is_some() || queue.is_empty()) {
                break;
            }
            match messages.recv_timeout(Duration::from_millis(100)) {
                Ok(Inbox::Done { id, outcome }) => {
                    executor.release(id);
                    if in_flight.remove(&id).is_none() {
                        continue;
                    }
                    let task = tasks[id as usize];
                    match self.ended(task, outcome) {
                        Ok(Some(record)) => {
                            done += 1;
                            steps_done += steps_of(&task);
                            steps_left -= steps_of(&task);
                            // Elapsed wall time already spans all workers.
                            let per_step = start.elapsed().as_secs_f64() / steps_done.max(1.0);
                            on_finished(&Finished {
                                genes: self.plan.archs[task.arch()].genes.to_string(),
                                record,
                                done,
                                total,
                                eta_seconds: per_step * steps_left.max(0.0),
                            });
                        }
                        // Cancelled: trained again on resume.
                        Ok(None) => {}
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                }
                Ok(Inbox::Emit(Event::Log { message, .. })) | Ok(Inbox::Warn(message)) => {
                    say(message)
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    error.get_or_insert(anyhow!("the study's executor is gone"));
                    break;
                }
            }
        }
        executor.shutdown();
        if let Some(e) = error {
            return Err(e);
        }
        Ok(!cancel.load(Ordering::SeqCst) && done == total)
    }

    /// The executor's job for training `index` of the study (`task`): the
    /// member id is the index; seeds are derived where it trains.
    fn job_for(&self, index: u64, task: Task) -> Job {
        let planned = &self.plan.archs[task.arch()];
        Job {
            member: planned.member(index),
            arch: self.config.search_space.arch(planned.genes.clone()),
            seed: self.plan.settings.seed,
            device: String::new(),
            weights: self
                .dir
                .join(files::MODELS)
                .join(format!("{}.safetensors", task.key())),
            cancel: Arc::new(AtomicBool::new(false)),
            adopt: None,
            latency_ms: None,
            checks: Vec::new(),
            leg: Default::default(),
        }
    }

    /// The record of a training whose job ended: the one its trainer wrote,
    /// or for a job that ended without one (it could not begin, e.g. its
    /// config or images on a node) one saying why; `None` when it was
    /// cancelled.
    fn ended(&self, task: Task, outcome: Outcome) -> Result<Option<TrainingRecord>> {
        let reason = match outcome {
            Outcome::Cancelled | Outcome::Detached => return Ok(None),
            Outcome::StorageFailed { reason } => {
                bail!("cannot write the study's files: {reason}")
            }
            Outcome::Failed { reason } => reason,
            _ => "the training ended without writing its record".to_string(),
        };
        let path = self.record_path(&task);
        if path.is_file() {
            return read_record(&path).map(Some);
        }
        let record = TrainingRecord {
            task,
            psnr: None,
            error: Some(reason),
            seconds: 0.0,
            device: String::new(),
            curve: Vec::new(),
            checkpoint_losses: Vec::new(),
        };
        write_json(&path, &record)?;
        Ok(Some(record))
    }
}

//! The `fully_train` stage: the search's best distinct architectures trained
//! to the end of `fully_train.trainer`, one per device at a time, with
//! periodic validation and checkpoints that resume exactly.
//!
//! Each finalist lives in `final/<rank>/`: `checkpoint.json` names the last
//! complete checkpoint folder (`ckpt-<step>/`: weights, optimiser, sampler,
//! validation points), written before the name is switched to it, so a kill
//! at any moment leaves one whole checkpoint to resume from.

use crate::device::WorkEnd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::super::results::{self, files, CurvePoint, FinalResult};
use super::super::{member_seed, Event, Inbox};
use super::Pipeline;
use crate::data::dataset::Dataset;
use crate::search::{Member, SearchState};
use crate::space::{Arch, SearchSpace};
use crate::train::datasets::{load_for, Role};
use crate::train::trainer::{TrainPlan, Trainer};

/// Points of the loss curve kept in `result.json`.
const CURVE_POINTS: usize = 400;

/// One architecture to fully train.
#[derive(Debug, Clone)]
pub struct Finalist {
    /// 1 = the search's best.
    pub rank: usize,
    /// The member it came from.
    pub member: Member,
    /// Its network.
    pub arch: Arch,
}

/// The best `top_n` distinct architectures of a finished search, best first.
pub fn finalists(state: &SearchState, space: &SearchSpace, top_n: usize) -> Vec<Finalist> {
    super::super::export::best_members(state, top_n)
        .into_iter()
        .enumerate()
        .map(|(i, member)| Finalist {
            rank: i + 1,
            arch: space.arch(member.genes.clone()),
            member,
        })
        .collect()
}

/// `checkpoint.json`: which checkpoint folder is the last complete one.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    dir: String,
}

/// Saved beside a checkpoint: what the trainer does not keep.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Extra {
    /// (step, validation PSNR).
    val: Vec<(usize, f64)>,
    /// Training seconds before this checkpoint.
    seconds: f64,
}

/// What every finalist's training shares.
struct Shared {
    run_dir: PathBuf,
    train: Arc<Dataset>,
    val: Arc<Dataset>,
    plan: TrainPlan,
    seed: u64,
    bicubic: (f64, f64),
    scale: usize,
    outbox: Sender<Inbox>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Pipeline {
    /// Runs the stage; `Ok(false)` when it was stopped (resumable).
    pub(super) fn fully_train(&mut self, search: &crate::search::Search) -> Result<bool> {
        let finalists = finalists(&search.state, &search.problem.space, self.config.top_n);
        let scale = self.config.search_space.scale;
        let training = Role::Training {
            crop: self.config.full_dataset.train.crop,
        };
        let cache = self.data_cache();
        let train = Arc::new(load_for(
            &self.config.full_dataset.train,
            scale,
            training,
            &cache,
        )?);
        // Validated on the search's own validation images, as its fitness was.
        let val = Arc::new(load_for(
            &self.config.dataset.test,
            scale,
            Role::Scoring,
            &cache,
        )?);
        let plan = TrainPlan::from_config(
            &self.config.full_trainer,
            &self.config.full_dataset.train,
            train.len(),
        );
        let shared = Arc::new(Shared {
            run_dir: self.run_dir.clone(),
            bicubic: {
                let score = crate::metrics::Score::bicubic(&val, scale)?;
                (score.psnr, score.ssim)
            },
            train,
            val,
            plan,
            seed: self.config.seed,
            scale,
            outbox: self.inbox_tx.clone(),
            paused: Arc::clone(&self.paused),
            stop: Arc::clone(&self.stop),
        });
        self.log(
            "info",
            format!(
                "fully training the best {} for {} steps each",
                crate::format::plural(finalists.len(), "architecture"),
                shared.plan.steps
            ),
        );
        let mut complete = true;
        let mut error = None;
        let stop = Arc::clone(&self.stop);
        let devices = self.devices.clone();
        crate::device::share_out(
            finalists.clone(),
            &devices,
            &stop,
            |f, device| {
                train_finalist(&f, &shared, device)
                    .with_context(|| format!("fully training #{}", f.rank))
            },
            |end| match end {
                WorkEnd::Done(Ok(done)) => complete &= done,
                WorkEnd::Done(Err(e)) => {
                    // The others stop at their next step and checkpoint.
                    stop.store(true, Ordering::SeqCst);
                    error.get_or_insert(e);
                }
                WorkEnd::Panicked(why) => {
                    stop.store(true, Ordering::SeqCst);
                    error.get_or_insert(anyhow!("a fully-training thread panicked: {why}"));
                }
            },
            || {
                // The trainings' events and the user's commands, while they run.
                while let Ok(msg) = self.inbox.try_recv() {
                    self.handle(msg);
                }
                if self.router.stop_seen.load(Ordering::SeqCst) {
                    self.stop.store(true, Ordering::SeqCst);
                }
            },
        );
        self.drain();
        if let Some(e) = error {
            return Err(e);
        }
        Ok(complete && !self.stopping())
    }
}

fn send(shared: &Shared, event: Event) {
    let _ = shared.outbox.send(Inbox::Emit(event));
}

fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    let pointer: Option<Pointer> = results::read_json(&dir.join("checkpoint.json"))?;
    Ok(pointer.map(|p| dir.join(p.dir)))
}

/// Saves a whole checkpoint in a new folder, then points at it and removes the older one.
fn checkpoint(trainer: &Trainer, dir: &Path, extra: &Extra) -> Result<()> {
    let old = latest_checkpoint(dir)?;
    let name = format!("ckpt-{}", trainer.step());
    let target = dir.join(&name);
    if Some(&target) == old.as_ref() {
        return Ok(());
    }
    trainer.save_checkpoint(&target)?;
    results::write_json(&target.join("extra.json"), extra)?;
    crate::fsutil::sync_dir(&target);
    results::write_json(&dir.join("checkpoint.json"), &Pointer { dir: name })?;
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

/// Trains one finalist to the end (or resumes it); `Ok(false)` when stopped.
fn train_finalist(f: &Finalist, shared: &Shared, device: &str) -> Result<bool> {
    let dir = results::final_dir(&shared.run_dir, f.rank);
    let result_path = dir.join(files::RESULT);
    if let Some(done) = results::read_json::<FinalResult>(&result_path)? {
        send(shared, final_done(&done, &dir));
        return Ok(true);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dev = crate::device::open(device)?;
    let (mut trainer, mut extra) = match latest_checkpoint(&dir)? {
        Some(ckpt) => {
            let t = Trainer::resume(&ckpt, Arc::clone(&shared.train), &dev)?;
            let extra = results::read_json::<Extra>(&ckpt.join("extra.json"))?.unwrap_or_default();
            (t, extra)
        }
        None => {
            let seed = member_seed(shared.seed, f.member.id);
            let t = Trainer::new(
                &f.arch,
                shared.plan.clone(),
                Arc::clone(&shared.train),
                seed,
                &dev,
            )?;
            (t, Extra::default())
        }
    };
    let steps = trainer.plan().steps;
    let every = (steps / 10).max(1);
    let report_every = (steps / 300).max(1);
    send(
        shared,
        Event::FinalStarted {
            rank: f.rank,
            member_id: f.member.id,
            genes: f.arch.genes.iter().map(|g| g.to_string()).collect(),
            params: f.arch.cost().params,
            step: trainer.step(),
            steps,
            device: device.to_string(),
            bicubic_psnr: shared.bicubic.0,
        },
    );
    let started = Instant::now();
    let first_step = trainer.step();
    let seconds = |extra: &Extra| extra.seconds + started.elapsed().as_secs_f64();
    let mut last_score = None;
    let stopped = |trainer: &Trainer, extra: &Extra| -> Result<bool> {
        while shared.paused.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !shared.stop.load(Ordering::SeqCst) || trainer.step() >= steps {
            return Ok(false);
        }
        let extra = Extra {
            seconds: seconds(extra),
            ..extra.clone()
        };
        checkpoint(trainer, &dir, &extra)?;
        Ok(true)
    };
    if stopped(&trainer, &extra)? {
        return Ok(false);
    }
    let finished = trainer.train_to(steps, |trainer, r| -> Result<bool> {
        let step = r.step;
        if step % report_every == 0 || step == steps {
            let rate = started.elapsed().as_secs_f64() / (step - first_step).max(1) as f64;
            send(
                shared,
                Event::FinalProgress {
                    rank: f.rank,
                    step,
                    steps,
                    loss: r.loss,
                    eta_seconds: rate * (steps - step) as f64,
                },
            );
        }
        if step % every == 0 || step == steps {
            let score = trainer.validate(&shared.val)?;
            extra.val.push((step, score.psnr));
            send(
                shared,
                Event::FinalValidated {
                    rank: f.rank,
                    step,
                    psnr: score.psnr,
                },
            );
            let saved = Extra {
                seconds: seconds(&extra),
                ..extra.clone()
            };
            checkpoint(trainer, &dir, &saved)?;
            last_score = Some(score);
        }
        Ok(!stopped(trainer, &extra)?)
    })?;
    if !finished {
        return Ok(false);
    }
    let score = match last_score {
        Some(s) => s,
        None => trainer.validate(&shared.val)?,
    };
    trainer.save_weights(&dir.join(files::MODEL))?;
    let result = FinalResult {
        rank: f.rank,
        member_id: f.member.id,
        genes: f.arch.genes.iter().map(|g| g.to_string()).collect(),
        params: f.arch.cost().params,
        multi_adds: f.arch.cost().multi_adds,
        fitness_psnr: f.member.fitness().unwrap_or(f64::NAN),
        steps,
        train_seconds: seconds(&extra),
        device: device.to_string(),
        val_psnr: score.psnr,
        val_ssim: score.ssim,
        bicubic_val_psnr: shared.bicubic.0,
        bicubic_val_ssim: shared.bicubic.1,
        curve: curve(&trainer.losses, &extra.val),
    };
    results::write_json(&result_path, &result)?;
    let _ = shared.scale;
    send(shared, final_done(&result, &dir));
    Ok(true)
}

fn final_done(r: &FinalResult, dir: &Path) -> Event {
    Event::FinalDone {
        rank: r.rank,
        psnr: r.val_psnr,
        ssim: r.val_ssim,
        bicubic_psnr: r.bicubic_val_psnr,
        seconds: r.train_seconds,
        model: dir.join(files::MODEL).display().to_string(),
    }
}

/// The loss curve thinned to about [`CURVE_POINTS`] points, every validation kept.
fn curve(losses: &[f64], val: &[(usize, f64)]) -> Vec<CurvePoint> {
    let stride = losses.len().div_ceil(CURVE_POINTS).max(1);
    let mut points: Vec<CurvePoint> = losses
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % stride == 0 || i + 1 == losses.len())
        .map(|(i, loss)| CurvePoint {
            step: i + 1,
            loss: *loss,
            val_psnr: None,
        })
        .collect();
    for (step, psnr) in val {
        match points.iter_mut().find(|p| p.step == *step) {
            Some(p) => p.val_psnr = Some(*psnr),
            None => points.push(CurvePoint {
                step: *step,
                loss: losses
                    .get(step.saturating_sub(1))
                    .copied()
                    .unwrap_or(f64::NAN),
                val_psnr: Some(*psnr),
            }),
        }
    }
    points.sort_by_key(|p| p.step);
    points
}

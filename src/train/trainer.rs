//! The training loop: L1 loss, Adam, MultiStepLR, seeded patches, progress
//! callbacks, cancellation, validation and exact resume.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{Adam, AdamConfig, LrSchedule, ScheduleKind, StepReport};
use crate::data::dataset::Dataset;
use crate::data::patches::{Augment, Batch, PatchSampler, SamplerState};
use crate::fsutil::atomic_write;
use crate::model::checkpoint::{load_model, save_model};
use crate::model::infer::upscale_image;
use crate::model::Esrn;
use crate::space::Arch;

/// Why a training ended without a result.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite: the network diverged.
    #[error("training diverged: loss is {loss} at step {step} (try a lower learning rate)")]
    NonFinite {
        /// Step at which it happened.
        step: usize,
        /// The loss value.
        loss: f64,
    },
    /// The progress callback asked to stop.
    #[error("training was stopped at step {0}")]
    Stopped(usize),
    /// A tensor operation failed (e.g. out of memory).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Data could not be prepared.
    #[error("{0}")]
    Data(#[from] crate::data::DataError),
    /// Saving or loading a checkpoint failed.
    #[error("{0}")]
    Checkpoint(String),
    /// Super-resolving a validation image failed.
    #[error("{0}")]
    Infer(#[from] crate::model::infer::InferError),
}

/// What to train and how long, resolved to optimiser steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPlan {
    /// Optimiser steps in total.
    pub steps: usize,
    /// Adam's starting learning rate.
    pub lr: f64,
    /// Steps at which the rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// Decay factor.
    pub gamma: f64,
    /// The schedule's shape (plans saved before it existed are MultiStep).
    #[serde(default)]
    pub scheduler: ScheduleKind,
    /// Global gradient-norm limit before each Adam step, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Patches per step.
    pub batch_size: usize,
    /// LR patch side.
    pub crop: usize,
    /// Augmentations.
    pub augment: Augment,
}

impl TrainPlan {
    /// Resolves a trainer config and a training split to steps: `steps` when
    /// given, else `epochs` passes over the images, one patch per image and
    /// epoch, as the reference's loader does. Milestones counted in epochs are
    /// converted to steps.
    pub fn from_config(
        trainer: &crate::config::TrainerConfig,
        split: &crate::config::DataSplit,
        train_images: usize,
    ) -> TrainPlan {
        let batch_size = trainer.batch_size.unwrap_or(split.batch_size).max(1);
        let steps_per_epoch = trainer.steps_per_epoch(split, train_images);
        let steps = trainer.total_steps(split, train_images);
        let milestones = if trainer.milestones_in_steps {
            trainer.milestones.clone()
        } else {
            trainer
                .milestones
                .iter()
                .map(|m| m * steps_per_epoch)
                .collect()
        };
        TrainPlan {
            steps,
            lr: trainer.lr,
            milestones,
            gamma: trainer.gamma,
            scheduler: trainer.scheduler,
            clip_grad_norm: trainer.clip_grad_norm,
            batch_size,
            crop: split.crop,
            augment: Augment {
                hflip: split.hflip,
                vflip: split.vflip,
                rot90: split.rot90,
            },
        }
    }

    /// The learning rate after `step` steps (the plan's schedule over its
    /// `steps`, so a lengthened plan stretches a cosine decay to its new end).
    pub fn lr_at(&self, step: usize) -> f64 {
        LrSchedule {
            base_lr: self.lr,
            kind: self.scheduler,
            milestones: &self.milestones,
            gamma: self.gamma,
            total: self.steps,
        }
        .lr_at(step)
    }

    /// The same plan with a different length (milestones scaled along).
    pub fn with_steps(&self, steps: usize) -> TrainPlan {
        let scale = steps as f64 / self.steps.max(1) as f64;
        TrainPlan {
            steps,
            milestones: self
                .milestones
                .iter()
                .map(|m| (*m as f64 * scale).round() as usize)
                .collect(),
            ..self.clone()
        }
    }
}

pub use crate::metrics::Score;

/// Saved progress of a training, beside the weights and optimiser state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    plan: TrainPlan,
    sampler: SamplerState,
    losses: Vec<f64>,
}

/// A network being trained.
pub struct Trainer {
    /// The network.
    pub model: Esrn,
    varmap: VarMap,
    adam: Adam,
    sampler: PatchSampler,
    plan: TrainPlan,
    step: usize,
    device: Device,
    /// Loss of every step so far.
    pub losses: Vec<f64>,
}

fn batch_tensors(batch: &Batch, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let lr = Tensor::from_slice(&batch.lr, batch.lr_shape().as_slice(), device)?;
    let hr = Tensor::from_slice(&batch.hr, batch.hr_shape().as_slice(), device)?;
    Ok((lr, hr))
}

/// Scores a network on a fixed validation set, as the SR papers do:
/// uint8 output, Y of BT.601, `scale` pixels shaved, per image then mean.
pub fn validate(model: &Esrn, val: &Dataset, device: &Device) -> Result<Score, TrainError> {
    Ok(Score::of_set(val, model.arch().scale, |pair| {
        upscale_image(model, &pair.lr.to_rgb(), device)
    })?)
}

/// Mean Y-PSNR of plain bicubic upscaling on a validation set, scored as
/// [`validate`] scores a network: the reference every fitness is compared to.
pub fn bicubic_psnr(val: &Dataset, scale: usize) -> Result<f64, TrainError> {
    Ok(Score::bicubic(val, scale)?.psnr)
}

impl Trainer {
    /// A fresh network of `arch`, weights and patches seeded by `seed`.
    pub fn new(
        arch: &Arch,
        plan: TrainPlan,
        train: Arc<Dataset>,
        seed: u64,
        device: &Device,
    ) -> Result<Trainer, TrainError> {
        let (model, varmap) = Esrn::seeded(arch, seed, device)?;
        Trainer::with_model(model, varmap, plan, train, seed, device)
    }

    /// Continues training an existing network (e.g. `train --model FILE`).
    pub fn with_model(
        model: Esrn,
        varmap: VarMap,
        plan: TrainPlan,
        train: Arc<Dataset>,
        seed: u64,
        device: &Device,
    ) -> Result<Trainer, TrainError> {
        let sampler = PatchSampler::new(train, plan.crop, plan.batch_size, plan.augment, seed)?;
        let adam = Adam::new(
            &varmap.data().lock().unwrap(),
            AdamConfig {
                lr: plan.lr,
                max_grad_norm: plan.clip_grad_norm,
                ..AdamConfig::default()
            },
        )?;
        Ok(Trainer {
            model,
            varmap,
            adam,
            sampler,
            plan,
            step: 0,
            device: device.clone(),
            losses: Vec::new(),
        })
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Lengthens (or shortens) the training to `steps` in total, keeping the milestones.
    pub fn extend_to(&mut self, steps: usize) {
        self.plan.steps = steps;
    }

    /// The plan.
    pub fn plan(&self) -> &TrainPlan {
        &self.plan
    }

    /// One optimiser step on the next batch; returns its loss.
    pub fn train_step(&mut self) -> Result<f64, TrainError> {
        let lr_now = self.plan.lr_at(self.step);
        self.adam.set_lr(lr_now);
        let batch = self.sampler.next_batch();
        let (lr, hr) = batch_tensors(&batch, &self.device)?;
        let sr = self.model.forward_unpadded(&lr)?;
        let loss = (sr - hr)?.abs()?.mean_all()?;
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(TrainError::NonFinite {
                step: self.step + 1,
                loss: value,
            });
        }
        self.adam.backward_step(&loss)?;
        self.step += 1;
        self.losses.push(value);
        Ok(value)
    }

    /// Trains up to the plan's last step, reporting each step; the callback
    /// returns false to stop (the training then ends with `Stopped`).
    pub fn run(&mut self, mut on_step: impl FnMut(StepReport) -> bool) -> Result<(), TrainError> {
        let steps = self.plan.steps;
        match self.train_to(steps, |_, report| Ok::<_, TrainError>(on_step(report)))? {
            true => Ok(()),
            false => Err(TrainError::Stopped(self.step)),
        }
    }

    /// The crate's one training loop (the fitness, the full training, the
    /// study's reference and `train` all run it): trains up to step `steps`,
    /// handing each step's report to `after_step` together with the trainer,
    /// to validate, checkpoint or report at that step. `Ok(true)` when
    /// `steps` was reached; `after_step`'s `false` ends the training after
    /// that step with `Ok(false)`.
    pub fn train_to<E: From<TrainError>>(
        &mut self,
        steps: usize,
        mut after_step: impl FnMut(&mut Trainer, StepReport) -> Result<bool, E>,
    ) -> Result<bool, E> {
        while self.step < steps {
            let lr = self.plan.lr_at(self.step);
            let loss = self.train_step()?;
            let report = StepReport {
                step: self.step,
                steps,
                loss,
                lr,
            };
            if !after_step(self, report)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Validation scores of the current weights.
    pub fn validate(&self, val: &Dataset) -> Result<Score, TrainError> {
        validate(&self.model, val, &self.device)
    }

    /// Saves the weights alone (an esr-ea model file).
    pub fn save_weights(&self, path: &Path) -> Result<(), TrainError> {
        save_model(&self.model, path).map_err(|e| TrainError::Checkpoint(e.to_string()))
    }

    /// Saves everything needed to resume exactly into `dir`:
    /// `model.safetensors`, `optimizer.safetensors`, `trainer.json`.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            TrainError::Checkpoint(format!("cannot write {what} in {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("the folder", &e))?;
        self.save_weights(&dir.join("model.safetensors"))?;
        let state: Vec<(String, Tensor)> = self
            .adam
            .state_tensors()?
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?.contiguous()?)))
            .collect::<candle_core::Result<_>>()?;
        let bytes = safetensors::serialize(state.iter().map(|(k, t)| (k.as_str(), t)), None)
            .map_err(|e| fail("optimizer.safetensors", &e))?;
        atomic_write(&dir.join("optimizer.safetensors"), &bytes)
            .map_err(|e| fail("optimizer.safetensors", &e))?;
        let json = serde_json::to_vec_pretty(&TrainerState {
            step: self.step,
            plan: self.plan.clone(),
            sampler: self.sampler.state().clone(),
            losses: self.losses.clone(),
        })
        .map_err(|e| fail("trainer.json", &e))?;
        atomic_write(&dir.join("trainer.json"), &json).map_err(|e| fail("trainer.json", &e))
    }

    /// Restores a training saved by [`Trainer::save_checkpoint`]; continuing
    /// it gives the same losses as never stopping (on CPU).
    pub fn resume(dir: &Path, train: Arc<Dataset>, device: &Device) -> Result<Trainer, TrainError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            TrainError::Checkpoint(format!("cannot resume from {}: {what}: {e}", dir.display()))
        };
        let text = std::fs::read_to_string(dir.join("trainer.json"))
            .map_err(|e| fail("trainer.json", &e))?;
        let state: TrainerState =
            serde_json::from_str(&text).map_err(|e| fail("trainer.json", &e))?;
        let (model, varmap) = load_model(dir.join("model.safetensors"), device)
            .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        let mut trainer =
            Trainer::with_model(model, varmap, state.plan.clone(), train.clone(), 0, device)?;
        trainer.sampler = PatchSampler::resume(train, state.sampler)?;
        let opt = candle_core::safetensors::load(dir.join("optimizer.safetensors"), device)
            .map_err(|e| fail("optimizer.safetensors", &e))?;
        trainer.adam.load_state(&opt)?;
        trainer.step = state.step;
        trainer.losses = state.losses;
        Ok(trainer)
    }

    /// The variables (for parameter counts and tests).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }
}

/// Times a closure.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

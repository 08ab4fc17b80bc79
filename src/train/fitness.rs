//! Real fitness for the search engine: quick-train a member with candle,
//! validate it on the fixed validation set, save its weights.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::trainer::{TrainError, TrainPlan, Trainer};
use super::StepReport;
use crate::data::dataset::Dataset;
use crate::engine::{Failure, Fitness, Job};
use crate::search::Evaluation;

/// Quick training as the search's fitness.
pub struct QuickTrain {
    /// Training images.
    pub train: Arc<Dataset>,
    /// Fixed validation images.
    pub val: Arc<Dataset>,
    /// How each member is trained.
    pub plan: TrainPlan,
}

/// Parses a device name: `cpu`, or `cuda:N` when built with the `cuda` feature.
pub fn device(name: &str) -> Result<candle_core::Device, String> {
    match name.trim() {
        "cpu" => Ok(candle_core::Device::Cpu),
        other => {
            let Some(index) = other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
            else {
                return Err(format!(
                    "device '{other}' is not supported (allowed: cpu, cuda:N)"
                ));
            };
            if !cfg!(feature = "cuda") {
                return Err(format!(
                    "device '{other}': this esr-ea was built without CUDA; rebuild with `cargo build --release --features cuda`"
                ));
            }
            // candle appends a backtrace to the message when RUST_BACKTRACE is
            // set: keep the first line, the driver's own error.
            candle_core::Device::new_cuda(index).map_err(|e| {
                let e = e.to_string();
                let first = e.lines().next().unwrap_or("unknown error");
                format!("device '{other}' cannot be opened ({first}); check the GPU index (nvidia-smi -L) and that the NVIDIA driver and CUDA 13 libraries are found")
            })
        }
    }
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
        let device = device(&job.device).map_err(Failure::Error)?;
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

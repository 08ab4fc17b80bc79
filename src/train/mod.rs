//! Training: optimiser, learning-rate schedule, the training loop and validation.

pub mod datasets;
pub mod fitness;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use optim::{Adam, AdamConfig};
pub use schedule::{LrSchedule, ScheduleKind};

/// Progress of one training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Steps done.
    pub step: usize,
    /// Steps planned.
    pub steps: usize,
    /// Loss of the step.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
}

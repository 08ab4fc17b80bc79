//! Training: optimiser, learning-rate schedule, the training loop and validation.

pub mod init;
pub mod optim;
pub mod schedule;

pub use optim::{Adam, AdamConfig};
pub use schedule::MultiStepLr;

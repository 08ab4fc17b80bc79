//! How long the search trains each member and when it may stop a training
//! early: decided on the search side and handed to each job as a plain
//! request ([`MedianStop::checks`], the halving leg), so a trainer never
//! holds the search's policy and the engine never asks a trainer for it.

use super::{Halving, MedianStop};

/// The search's training rules (`nas.trainer`: `steps`/`epochs`,
/// `median_stop`, `successive_halving`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingRules {
    /// Optimiser steps of one whole quick training.
    pub steps: usize,
    /// The median stopping rule, when on.
    pub median_stop: Option<MedianStop>,
    /// Successive halving, when on.
    pub halving: Option<Halving>,
}

impl TrainingRules {
    /// Whole trainings of `steps` steps, no early stopping.
    pub fn whole(steps: usize) -> TrainingRules {
        TrainingRules {
            steps,
            ..TrainingRules::default()
        }
    }

    /// The early-stopping rule in force, in words (`None`: every member trains to the end).
    pub fn stopping_rule_name(&self) -> Option<&'static str> {
        if self.halving.is_some() {
            Some("successive halving")
        } else if self.median_stop.is_some() {
            Some("median stopping rule")
        } else {
            None
        }
    }

    /// The steps that end each halving leg and the loss windows ranked
    /// there; empty without halving.
    pub fn halving_schedule(&self) -> Vec<(usize, usize)> {
        self.halving
            .as_ref()
            .map(|h| h.schedule(self.steps))
            .unwrap_or_default()
    }

    /// The checkpoints of the early-stopping rule in force, `(step, loss
    /// window)`: the halving rungs, else the median rule's checks; empty
    /// when every member trains to the end.
    pub fn checkpoints(&self) -> Vec<(usize, usize)> {
        match (&self.halving, &self.median_stop) {
            (Some(h), _) => h.schedule(self.steps),
            (None, Some(m)) => m.schedule(self.steps),
            (None, None) => Vec::new(),
        }
    }
}

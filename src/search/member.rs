//! A member of the search: one evaluated (or pending) network, how it came
//! to be and how its evaluation ended.

use serde::{Deserialize, Serialize};

use super::halving::Rung;
use super::individual::Individual;
use super::median_stop::Stop;
use crate::space::GeneList;

/// What a finished quick-training of one network measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Validation PSNR (Y, dB): the fitness.
    pub psnr: f64,
    /// Validation SSIM (Y).
    pub ssim: f64,
    /// Training loss at the end, when known.
    pub final_loss: Option<f64>,
    /// Wall time of training plus validation, in seconds.
    pub seconds: f64,
    /// Measured median ms per frame, when the run has a latency constraint
    /// (`range.max_latency_ms`); absent in older state files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Mean training loss at each checkpoint of the median stopping rule
    /// (`nas.trainer.median_stop`), its curve for the medians of later
    /// generations; empty (and not written) when the rule is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_losses: Vec<f64>,
}

/// How a member came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Drawn at random for the first generation.
    Initial,
    /// Mutated copy of an elite.
    Mutation {
        /// The elite it was copied from.
        parent: u64,
    },
    /// Child of a crossover.
    Crossover {
        /// Both parents.
        parents: [u64; 2],
    },
    /// Added by hand (inject).
    Injected,
    /// Changed by hand before training (mutate).
    HandMutated {
        /// What it was before.
        was: Box<Origin>,
    },
}

impl Origin {
    /// True for members a person made or changed.
    pub fn is_hand_made(&self) -> bool {
        matches!(self, Origin::Injected | Origin::HandMutated { .. })
    }
}

/// Where a member stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Waiting to be trained.
    Pending,
    /// Trained and validated.
    Evaluated(Evaluation),
    /// The same architecture was evaluated before: its result is reused.
    Cached(Evaluation),
    /// Training failed (non-finite loss, out of memory, …).
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped by hand: no fitness.
    Killed,
    /// Stopped by the median stopping rule or by successive halving: no
    /// fitness, so it ranks below every member that finished its training.
    Stopped(Stop),
    /// Successive halving: trained to a checkpoint (saved in the run's
    /// `models/`), waiting for the rest of its generation to get there.
    Waiting(Rung),
    /// Successive halving: among the better part of its generation at a
    /// checkpoint, queued to continue from it.
    Promoted(Rung),
}

impl Status {
    /// The fitness, when the member has one.
    pub fn fitness(&self) -> Option<f64> {
        match self {
            Status::Evaluated(e) | Status::Cached(e) => Some(e.psnr),
            _ => None,
        }
    }

    /// True when nothing more will happen to this member.
    pub fn is_done(&self) -> bool {
        !matches!(
            self,
            Status::Pending | Status::Waiting(_) | Status::Promoted(_)
        )
    }

    /// Short lower-case name for tables and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "queued",
            Status::Evaluated(_) => "done",
            Status::Cached(_) => "cached",
            Status::Failed { .. } => "failed",
            Status::Killed => "killed",
            Status::Stopped(_) => "stopped",
            Status::Waiting(_) => "waiting",
            Status::Promoted(_) => "promoted",
        }
    }
}

/// One individual of a generation with its network and result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Unique within the run.
    pub id: u64,
    /// Generation it was evaluated in.
    pub generation: usize,
    /// Its genotype.
    pub individual: Individual,
    /// The network's blocks.
    pub genes: GeneList,
    /// Exact trainable values.
    pub params: u64,
    /// Multi-Adds at 720p output.
    pub multi_adds: u64,
    /// How it was made.
    pub origin: Origin,
    /// Where it stands.
    pub status: Status,
}

impl Member {
    /// The cache key: the active architecture.
    pub fn key(&self) -> String {
        self.genes.to_string()
    }

    /// The fitness, when the member has one.
    pub fn fitness(&self) -> Option<f64> {
        self.status.fitness()
    }
}

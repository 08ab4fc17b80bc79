//! The evolutionary search of ESR_EA (spec §2–§3): individuals, repair,
//! mutation, crossover, selection, elitism and the serialisable search state.

pub mod check;
mod evolve;
pub mod halving;
pub mod individual;
pub mod median_stop;
pub mod member;
pub mod memory_plan;
pub mod plan;
pub mod problem;
pub mod rules;
pub mod state;
mod steer;

use serde::{Deserialize, Serialize};

pub use halving::{Halving, Rung};
pub use individual::{Individual, Slot};
pub use median_stop::{MedianStop, Stop, StopCheck, StopRule, StopTally};
pub use member::{Evaluation, Member, Origin, Status};
pub use problem::{Problem, Reach, RepairCost, RepairRounds};
pub use rules::TrainingRules;
pub use state::{GenerationSummary, Search, SearchState};
pub use steer::HandGenesError;

/// Why a search cannot start or continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The constraints can never be met.
    #[error("infeasible search constraints: {0}")]
    Infeasible(String),
    /// The constraints can be met in principle, but repair did not get there.
    #[error("search constraints practically unreachable: {0}")]
    Unreachable(String),
    /// A saved state does not fit the config it is resumed with.
    #[error("saved search state does not match the config: {0}")]
    StateMismatch(String),
}

/// How each generation after the first is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Elites, mutation and crossover (spec §3).
    #[default]
    Evolution,
    /// Every generation drawn fresh from the space, as the first one is, and
    /// repaired into the same budget: the baseline evolution must beat. The
    /// fitness, cache, elites and pipeline are the same.
    Random,
}

impl Strategy {
    /// Its name as the config and `--strategy` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Evolution => "evolution",
            Strategy::Random => "random",
        }
    }
}

/// How crossover parents are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Fitness-proportional, without replacement (the reference's default).
    #[default]
    Roulette,
    /// Best of two random candidates.
    Tournament,
}

/// `nas.search_algorithm.policy`: the shape of the evolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Generations to run.
    pub num_generation: usize,
    /// Individuals per generation (N).
    pub num_individual: usize,
    /// Elites kept across generations (E).
    pub num_elitism: usize,
    /// Per-gene mutation probability.
    pub mutation_rate: f64,
    /// How crossover parents are chosen.
    #[serde(default)]
    pub selection: Selection,
    /// Evolution, or random search at the same budget.
    #[serde(default)]
    pub strategy: Strategy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            num_generation: 20,
            num_individual: 8,
            num_elitism: 4,
            mutation_rate: 0.05,
            selection: Selection::Roulette,
            strategy: Strategy::Evolution,
        }
    }
}

/// `nas.search_algorithm.range`: the constraints every individual must meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Slots per individual.
    pub node_num: usize,
    /// Minimum number of used slots (network depth).
    pub min_active: usize,
    /// Largest allowed exact parameter count.
    pub max_params: u64,
    /// Smallest allowed exact parameter count.
    pub min_params: u64,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            node_num: 20,
            min_active: 16,
            max_params: 325_000,
            min_params: 315_000,
        }
    }
}

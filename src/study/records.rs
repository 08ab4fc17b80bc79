//! What a study writes down: its settings and plan (`plan.json`), one
//! record per finished training (`trainings/<key>.json`), and the table
//! made of them (`study.json`), all serde types.

use serde::{Deserialize, Serialize};

use crate::search::{Individual, Member, Origin, Status};
use crate::space::GeneList;
use crate::train::trainer::TrainPlan;

/// What a study measures, beside the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySettings {
    /// Architectures drawn (K).
    pub archs: usize,
    /// Extra fitness evaluations with other run seeds, per repeated arch (R).
    pub repeats: usize,
    /// How many of the architectures (the first ones drawn) are repeated.
    pub repeat_archs: usize,
    /// Reference training length; `None`: the config's `fully_train`.
    pub reference_steps: Option<usize>,
    /// Extra reference trainings with other seeds on each repeated arch:
    /// the reference's own noise, which caps any correlation with it.
    #[serde(default)]
    pub reference_repeats: usize,
    /// Seed of the draw and run seed of the first fitness evaluation
    /// (repeat r runs with seed + r).
    pub seed: u64,
}

/// One drawn architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedArch {
    /// Its blocks.
    pub genes: GeneList,
    /// Exact parameters.
    pub params: u64,
}

impl PlannedArch {
    /// This network as a member with `id` for the trainers: a study's
    /// networks are drawn, not bred (generation 0, no slots).
    pub fn member(&self, id: u64) -> Member {
        Member {
            id,
            generation: 0,
            individual: Individual { slots: Vec::new() },
            genes: self.genes.clone(),
            params: self.params,
            multi_adds: 0,
            origin: Origin::Initial,
            status: Status::Pending,
        }
    }
}

/// Everything fixed when a study starts (`plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyPlan {
    /// What was asked.
    pub settings: StudySettings,
    /// The K architectures, in drawing order.
    pub archs: Vec<PlannedArch>,
    /// Bicubic's mean Y-PSNR on the validation images.
    pub bicubic_psnr: f64,
    /// The fitness training (the search's `nas.trainer`).
    pub fitness: TrainPlan,
    /// The reference training.
    pub reference: TrainPlan,
    /// Where the config came from.
    pub config_source: String,
    /// The steps of the config's stopping-rule checkpoints in a fitness
    /// training, where the fitness trainings record their loss.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_steps: Vec<usize>,
}

/// Which training of which architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// The search's fitness, run seed `settings.seed + repeat`.
    Fitness {
        /// Index of the architecture.
        arch: usize,
        /// 0 for the main evaluation, 1..=R for the seed repeats.
        repeat: usize,
    },
    /// The reference training.
    Reference {
        /// Index of the architecture.
        arch: usize,
        /// 0 for the main reference, 1.. for its seed repeats.
        #[serde(default)]
        repeat: usize,
    },
}

impl Task {
    /// The file stem of its record (`fitness-03-r0`, `reference-03`).
    pub fn key(&self) -> String {
        match self {
            Task::Fitness { arch, repeat } => format!("fitness-{arch:02}-r{repeat}"),
            Task::Reference { arch, repeat: 0 } => format!("reference-{arch:02}"),
            Task::Reference { arch, repeat } => format!("reference-{arch:02}-r{repeat}"),
        }
    }

    /// The architecture's index.
    pub fn arch(&self) -> usize {
        match self {
            Task::Fitness { arch, .. } | Task::Reference { arch, .. } => *arch,
        }
    }
}

/// A finished training (`trainings/<key>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// What was trained.
    pub task: Task,
    /// Validation Y-PSNR; `None` when the training failed.
    pub psnr: Option<f64>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The device it ran on.
    pub device: String,
    /// Validation PSNR during a reference training (every tenth of it):
    /// how early the final ranking shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
    /// A fitness training's mean training loss at each checkpoint of the
    /// config's stopping rule (successive halving or the median rule),
    /// recorded without stopping: how well the rule's early ranking agrees
    /// with the whole fitness and with the reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_losses: Vec<f64>,
}

/// Validation PSNR after `step` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Steps trained.
    pub step: usize,
    /// Validation Y-PSNR then.
    pub psnr: f64,
}

/// How the reference ranked the architectures part way through its
/// training (main reference runs only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurveRank {
    /// Steps trained.
    pub step: usize,
    /// Spearman between the reference at `step` and the reference's final.
    pub vs_final: Option<f64>,
    /// Spearman between the fitness and the reference at `step`.
    pub vs_fitness: Option<f64>,
}

/// How the fitness's training loss at one checkpoint of the config's
/// stopping rule ranks the architectures (lower loss ranking higher), one
/// value per run seed, main seed first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRank {
    /// The checkpoint's step.
    pub step: usize,
    /// Spearman against the same seed's whole fitness.
    pub vs_fitness: Vec<f64>,
    /// Spearman against the reference.
    pub vs_reference: Vec<f64>,
    /// Of the reference's top 3, how many a cut of all the architectures to
    /// the better half (by this loss) keeps.
    pub reference_top3_kept: Vec<usize>,
}

/// One row of the table: an architecture and all it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    /// Index in drawing order.
    pub index: usize,
    /// Its blocks.
    pub genes: String,
    /// Exact parameters.
    pub params: u64,
    /// The fitness (run seed `settings.seed`).
    pub fitness: Option<f64>,
    /// Fitness minus bicubic (dB).
    pub fitness_over_bicubic: Option<f64>,
    /// The fitness with the repeat seeds (without the main one).
    pub repeats: Vec<f64>,
    /// Standard deviation over the main and repeat fitness values.
    pub fitness_sd: Option<f64>,
    /// The reference training's PSNR (the mean over its seed repeats
    /// where it has them).
    pub reference: Option<f64>,
    /// Each reference run's PSNR, main first, where repeated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_runs: Vec<f64>,
    /// Reference minus bicubic (dB).
    pub reference_over_bicubic: Option<f64>,
    /// Failures, when any training of this arch failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// What a study found (`study.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyReport {
    /// The plan it ran.
    pub plan: StudyPlan,
    /// Trainings finished of those planned.
    pub done: usize,
    /// Trainings planned.
    pub total: usize,
    /// Spearman rank correlation of fitness and reference (rows with both).
    pub spearman: Option<f64>,
    /// Kendall's tau-b of the same.
    pub kendall_tau_b: Option<f64>,
    /// How many of the fitness's top 3 are in the reference's top 3.
    pub top3_overlap: usize,
    /// Rows with both a fitness and a reference.
    pub compared: usize,
    /// Pooled standard deviation of the fitness over run seeds (same arch).
    pub seed_noise_sd: Option<f64>,
    /// Standard deviation of the fitness between architectures.
    pub spread_sd: Option<f64>,
    /// Standard deviation of the reference between architectures.
    pub reference_spread_sd: Option<f64>,
    /// Pooled standard deviation of the reference over seeds (same arch).
    #[serde(default)]
    pub reference_noise_sd: Option<f64>,
    /// The highest correlation the two measurements' noise allows
    /// (Spearman's correction for attenuation: the square root of the
    /// product of their reliabilities, 1 - noise²/spread² each); needs both
    /// seed noises.
    #[serde(default)]
    pub correlation_ceiling: Option<f64>,
    /// The reference's ranking part way through its training.
    #[serde(default)]
    pub curve_ranks: Vec<CurveRank>,
    /// The fitness's ranking at its stopping rule's checkpoints (empty when
    /// the config has no rule, or in studies made before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_ranks: Vec<CheckpointRank>,
    /// Minutes of fitness training (sum of wall times).
    pub fitness_minutes: f64,
    /// Minutes of reference training.
    pub reference_minutes: f64,
    /// Every architecture.
    pub rows: Vec<StudyRow>,
}

impl StudyReport {
    /// Seed noise over spread; the fitness tells architectures apart when
    /// this is well below 1 (the target is under 1/3).
    pub fn noise_ratio(&self) -> Option<f64> {
        match (self.seed_noise_sd, self.spread_sd) {
            (Some(n), Some(s)) if s > 0.0 => Some(n / s),
            _ => None,
        }
    }
}

/// A training that just finished, for progress lines.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its record (already saved).
    pub record: TrainingRecord,
    /// The architecture's genes.
    pub genes: String,
    /// Trainings finished so far (this one included).
    pub done: usize,
    /// Trainings planned.
    pub total: usize,
    /// Rough seconds left: the wall time per training step so far (all
    /// workers together) times the steps left.
    pub eta_seconds: f64,
}

//! The configuration: a YAML file in the shape of the reference's Vega
//! `esr_ea.yml` (spec §9), read into typed settings.
//!
//! * [`Config::load`] reads a file, [`Config::embedded`] one of the built-in
//!   `configs/quick.yaml` / `configs/esr_ea.yaml`, [`Config::from_yaml_str`] text.
//! * A Vega user's file loads as it is: `ref:` links are resolved, both
//!   spellings of scheduler and optimizer settings are accepted, and keys
//!   esr-ea does not use (`general`, `pipe_step`, `cuda`, benchmarks, …) are
//!   listed in one warning instead of failing. A `type:` that esr-ea cannot
//!   honour (`optimizer.type: SGD`) is an error that says what is supported.
//! * Every error is one line: `file: key.path: value found, what is allowed`.
//! * Dataset folders are resolved against the file's folder but checked only
//!   by [`Config::validate_paths`].
//! * [`Config::to_yaml`] writes the resolved settings back in the same shape,
//!   for run records; that text loads again with no warnings.
//!
//! Checks that need the cost model (is the parameter budget reachable?) are
//! made by [`crate::search::Problem::new`], not here.

mod emit;
mod error;
mod executor;
mod halving;
pub mod latency;
mod median_stop;
mod parse;
mod paths;
mod pipeline;
mod reader;
mod split;
mod vega;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::ConfigError;
pub use executor::{ExecutorConfig, SlurmSettings};
pub use pipeline::BenchmarkConfig;

use crate::data::CachePlace;
use crate::search::{Policy, Range};
use crate::space::SearchSpace;
use latency::LatencyLimit;

/// Everything a run needs to know, resolved and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Master seed: top-level `seed`, else `nas.trainer.seed`, else 0.
    pub seed: u64,
    /// `nas.search_space.esrbody`: blocks that may be drawn, G0, scale, bias.
    pub search_space: SearchSpace,
    /// `nas.search_algorithm.policy`: generations, population, elites, mutation.
    pub policy: Policy,
    /// `nas.search_algorithm.range`: slots, depth and parameter budget.
    pub range: Range,
    /// `nas.search_algorithm.range.max_latency_ms` with `range.latency`: the
    /// optional latency constraint; `None` (the default) constrains nothing.
    #[serde(default)]
    pub latency_limit: Option<LatencyLimit>,
    /// `nas.dataset`: data for quick training (`train`) and fitness (`test`).
    pub dataset: DatasetConfig,
    /// `nas.trainer`: quick training of each individual.
    pub search_trainer: TrainerConfig,
    /// `fully_train.trainer`: training of the final model(s); keys missing
    /// there take the full-training defaults, not the search trainer's values.
    pub full_trainer: TrainerConfig,
    /// `fully_train.dataset` (usually `{ref: nas.dataset}`; `nas.dataset` when absent).
    pub full_dataset: DatasetConfig,
    /// `pipeline`: the stages in order; `[nas, fully_train]` when absent.
    #[serde(default = "default_pipeline")]
    pub pipeline: Vec<PipelineStep>,
    /// `fully_train.top_n`: how many of the search's best distinct
    /// architectures are fully trained (default 1).
    #[serde(default = "one")]
    pub top_n: usize,
    /// The `benchmark_<Name>` sections the pipeline names, in its order.
    #[serde(default)]
    pub benchmarks: Vec<BenchmarkConfig>,
    /// `executor` (esr-ea only): where the trainings run; local when absent.
    #[serde(default)]
    pub executor: ExecutorConfig,
    /// `data_cache` (esr-ea only): where decoded images are kept, a folder
    /// (e.g. a cluster's shared storage), `memory`, or `beside_data` (the
    /// default); the environment's `ESR_EA_DATA_CACHE` overrides it
    /// ([`Config::data_cache`]).
    #[serde(default)]
    pub data_cache: CachePlace,
    /// Where the settings came from: the path as given, or `embedded configs/quick.yaml`.
    pub source: String,
}

/// One stage of `pipeline:` (the report always follows the last one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStep {
    /// `nas`: the search.
    Nas,
    /// `fully_train`: the best architectures trained to the end.
    FullyTrain,
    /// `benchmark_<Name>`: the fully trained models scored on one set.
    Benchmark(String),
}

impl PipelineStep {
    /// The name as the file writes it: `nas`, `fully_train`, `benchmark_Set5`.
    pub fn name(&self) -> String {
        match self {
            PipelineStep::Nas => "nas".into(),
            PipelineStep::FullyTrain => "fully_train".into(),
            PipelineStep::Benchmark(name) => format!("benchmark_{name}"),
        }
    }
}

fn default_pipeline() -> Vec<PipelineStep> {
    vec![PipelineStep::Nas, PipelineStep::FullyTrain]
}

fn one() -> usize {
    1
}

/// A dataset: a training split and a validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Training images (random patches).
    pub train: DataSplit,
    /// Validation images (fitness).
    pub test: DataSplit,
}

/// One split of a dataset (`train:` or `test:` in the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSplit {
    /// `root_HR`: folder of high-resolution images, resolved against the
    /// configuration file's folder.
    pub root_hr: PathBuf,
    /// `root_LR`: folder of low-resolution images paired by name (DIV2K's
    /// `0001x2.png` for `0001.png`); `None`: made by bicubic downscaling.
    pub root_lr: Option<PathBuf>,
    /// `upscale`: the scale factor; always equal to `esrbody.scale`.
    pub upscale: usize,
    /// `crop`: LR patch size in pixels (HR patches are `upscale ×` this).
    pub crop: usize,
    /// `hflip`: random horizontal flips.
    pub hflip: bool,
    /// `vflip`: random vertical flips.
    pub vflip: bool,
    /// `rot90`: random 90° rotations.
    pub rot90: bool,
    /// `shuffle`: shuffle the images every epoch.
    pub shuffle: bool,
    /// `batch_size`: patches per step.
    pub batch_size: usize,
    /// `val_crop` (validation splits): score each image on its centred
    /// `val_crop` x `val_crop` LR window (and the HR window over it) instead
    /// of whole: a fixed, deterministic and cheaper validation of large
    /// images; 0 (the default) scores whole images.
    #[serde(default)]
    pub val_crop: usize,
}

impl DataSplit {
    /// Training defaults of the reference: 64 px crops, flips and rotations, batch 16.
    pub fn train_defaults(root_hr: PathBuf, scale: usize) -> DataSplit {
        DataSplit {
            root_hr,
            root_lr: None,
            upscale: scale,
            crop: 64,
            hflip: true,
            vflip: true,
            rot90: true,
            shuffle: true,
            batch_size: 16,
            val_crop: 0,
        }
    }

    /// Validation defaults: no augmentation, no shuffling, one image at a time.
    pub fn test_defaults(root_hr: PathBuf, scale: usize) -> DataSplit {
        DataSplit {
            hflip: false,
            vflip: false,
            rot90: false,
            shuffle: false,
            batch_size: 1,
            ..DataSplit::train_defaults(root_hr, scale)
        }
    }
}

/// How one network is trained (`nas.trainer` or `fully_train.trainer`):
/// L1 loss, Adam, MultiStepLR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// `epochs`: passes over the training images.
    pub epochs: usize,
    /// `steps` (esr-ea only): when set, train exactly this many optimiser
    /// steps instead of `epochs` epochs (small CPU runs).
    pub steps: Option<usize>,
    /// `optimizer.params.lr` (or `optimizer.lr`): Adam's learning rate.
    pub lr: f64,
    /// `lr_scheduler.milestones` (or `lr_scheduler.params.milestones`):
    /// where the learning rate is multiplied by `gamma`, strictly increasing.
    pub milestones: Vec<usize>,
    /// `lr_scheduler.gamma` (or `.params.gamma`): the factor at each milestone.
    pub gamma: f64,
    /// `lr_scheduler.type`: `MultiStepLR` (milestones and gamma) or
    /// `CosineAnnealingLR` (with `eta_min`; milestones are then unused).
    #[serde(default)]
    pub scheduler: ScheduleKind,
    /// `clip_grad_norm` (esr-ea only): gradients whose global L2 norm is
    /// above this are scaled down to it before each Adam step (PyTorch's
    /// `clip_grad_norm_`), so one unlucky batch cannot throw a network back;
    /// `None` (absent) is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// `batch_size` (esr-ea only): overrides the dataset's train `batch_size`
    /// for this training when set.
    pub batch_size: Option<usize>,
    /// `seed`: the trainer's seed, when the file gives one.
    pub seed: Option<u64>,
    /// `lr_scheduler.milestones_unit` (esr-ea only): `epochs` (false, the
    /// reference's convention: MultiStepLR stepped once per epoch) or `steps`
    /// (true: milestones count optimiser steps, for `steps`-based training).
    pub milestones_in_steps: bool,
    /// `common_random_numbers` (esr-ea only): every member of a run trains
    /// on the same patch stream and starts from the same weight stream
    /// (seeded by the run, not the member), so fitness differences come
    /// from the architecture rather than from luck.
    #[serde(default)]
    pub common_random_numbers: bool,
    /// `median_stop` (esr-ea only, `nas.trainer`): the median stopping rule
    /// ([`crate::search::MedianStop`]); `None` (absent) is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_stop: Option<crate::search::MedianStop>,
    /// `successive_halving` (esr-ea only, `nas.trainer`): successive halving
    /// inside each generation ([`crate::search::Halving`]); `None` (absent) is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successive_halving: Option<crate::search::Halving>,
}

/// Which learning-rate schedule a training follows (`lr_scheduler.type`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ScheduleKind {
    /// The rate is multiplied by `gamma` at each milestone.
    #[default]
    MultiStep,
    /// The rate follows half a cosine from the base rate down to `eta_min`
    /// at the last step.
    Cosine {
        /// The rate at the end.
        eta_min: f64,
    },
}

impl TrainerConfig {
    /// Optimiser steps in one epoch over `train_images` images with
    /// `split`'s batch (or this trainer's own `batch_size`).
    pub fn steps_per_epoch(&self, split: &DataSplit, train_images: usize) -> usize {
        let batch_size = self.batch_size.unwrap_or(split.batch_size).max(1);
        train_images.div_ceil(batch_size).max(1)
    }

    /// Optimiser steps of one whole training: `steps`, else `epochs` epochs.
    pub fn total_steps(&self, split: &DataSplit, train_images: usize) -> usize {
        self.steps
            .unwrap_or(self.epochs * self.steps_per_epoch(split, train_images))
    }

    /// The reference's quick training for fitness: 500 epochs, Adam 1e-4,
    /// halved at epochs 100 and 200.
    pub fn search_defaults() -> TrainerConfig {
        TrainerConfig {
            epochs: 500,
            steps: None,
            lr: 1e-4,
            milestones: vec![100, 200],
            gamma: 0.5,
            scheduler: ScheduleKind::MultiStep,
            clip_grad_norm: None,
            batch_size: None,
            seed: None,
            milestones_in_steps: false,
            common_random_numbers: false,
            median_stop: None,
            successive_halving: None,
        }
    }

    /// The learning rate, its schedule and any clipping, in a few words.
    pub fn describe_optimiser(&self) -> String {
        let schedule = match self.scheduler {
            ScheduleKind::MultiStep => {
                format!("milestones {:?}, gamma {}", self.milestones, self.gamma)
            }
            ScheduleKind::Cosine { eta_min } => format!("cosine decay to {eta_min}"),
        };
        let clip = self
            .clip_grad_norm
            .map(|c| format!(", gradient norm clipped at {c}"))
            .unwrap_or_default();
        format!("lr {}, {schedule}{clip}", self.lr)
    }

    /// The reference's full training: 15,000 epochs, halved at 8000, 12000,
    /// 13500 and 14500.
    pub fn full_defaults() -> TrainerConfig {
        TrainerConfig {
            epochs: 15_000,
            milestones: vec![8000, 12_000, 13_500, 14_500],
            ..TrainerConfig::search_defaults()
        }
    }
}

/// A loaded configuration and what the reader had to say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// Non-fatal remarks; at most one today: the keys that were ignored.
    pub warnings: Vec<String>,
}

/// The built-in configurations: (name, file text).
const EMBEDDED: &[(&str, &str)] = &[
    ("quick", include_str!("../../configs/quick.yaml")),
    ("esr_ea", include_str!("../../configs/esr_ea.yaml")),
];

/// Top-level sections esr-ea reads; `ref:` links are resolved only inside them.
const READ_SECTIONS: &[&str] = &["nas", "fully_train", "executor"];

impl Config {
    /// Where decoded images are kept: `ESR_EA_DATA_CACHE` when set (a
    /// folder, `memory` or `beside_data`), else the `data_cache` key.
    pub fn data_cache(&self) -> CachePlace {
        self.data_cache.clone().unless_environment_says()
    }

    /// The search problem the config describes (space, policy and range,
    /// checked together); an error names the config it came from.
    pub fn problem(&self) -> anyhow::Result<crate::search::Problem> {
        use anyhow::Context;
        crate::search::Problem::new(
            self.search_space.clone(),
            self.policy.clone(),
            self.range.clone(),
        )
        .with_context(|| self.source.clone())
    }

    /// The search's training rules (`nas.trainer`): the length of one quick
    /// training over `train_images` training images and the early-stopping
    /// rules the engine plans each job with.
    pub fn search_rules(&self, train_images: usize) -> crate::search::TrainingRules {
        let t = &self.search_trainer;
        crate::search::TrainingRules {
            steps: t.total_steps(&self.dataset.train, train_images),
            median_stop: t.median_stop.clone(),
            halving: t.successive_halving.clone(),
        }
    }

    /// Reads and checks a configuration file. Relative dataset paths are
    /// taken relative to the file's folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        Config::from_yaml_str(&text, &paths::base_dir_of(path), file)
    }

    /// Names of the built-in configurations, for `Config::embedded` and help texts.
    pub fn embedded_names() -> Vec<&'static str> {
        EMBEDDED.iter().map(|(name, _)| *name).collect()
    }

    /// A built-in configuration: `quick` or `esr_ea` (also accepted as
    /// `quick.yaml` or `configs/quick.yaml`). Its dataset paths are relative
    /// to this crate's `configs/` folder.
    pub fn embedded(name: &str) -> Result<Loaded, ConfigError> {
        let short = name.trim();
        let short = short.strip_prefix("configs/").unwrap_or(short);
        let short = short
            .strip_suffix(".yaml")
            .or_else(|| short.strip_suffix(".yml"))
            .unwrap_or(short);
        let (name, text) = EMBEDDED.iter().find(|(n, _)| *n == short).ok_or_else(|| {
            ConfigError::UnknownEmbedded {
                name: name.to_string(),
                available: Config::embedded_names().join(", "),
            }
        })?;
        let base = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
        Config::from_yaml_str(text, base, format!("embedded configs/{name}.yaml"))
    }

    /// Reads configuration text. `base_dir` is the folder relative dataset
    /// paths start from; `source` names the text in messages and in
    /// [`Config::source`].
    pub fn from_yaml_str(
        text: &str,
        base_dir: &Path,
        source: impl Into<String>,
    ) -> Result<Loaded, ConfigError> {
        let file = source.into();
        let mut raw: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| syntax_error(&file, &e))?;
        raw.apply_merge().map_err(|e| syntax_error(&file, &e))?;
        let benchmarks = pipeline::named_benchmarks(&raw);
        let mut read = READ_SECTIONS.to_vec();
        read.extend(benchmarks.iter().map(String::as_str));
        let resolved = vega::resolve_refs(&raw, &file, &read)?;
        let mut reader = reader::Reader::new(file.clone());
        let config = parse::config(&resolved.tree, &mut reader, &paths::normalize(base_dir))?;
        let mut warnings: Vec<String> = vega::ignored_keys_warning(&resolved, reader.used())
            .into_iter()
            .collect();
        let has_dataset = resolved
            .tree
            .get("nas")
            .is_some_and(|nas| nas.get("dataset").is_some());
        if !has_dataset && resolved.tree.get("nas").is_some() {
            warnings.push(format!(
                "{file}: no nas.dataset: training and validating on the embedded photographs (assets/train, assets/val)"
            ));
        }
        Ok(Loaded { config, warnings })
    }

    /// Checks that every dataset folder exists and is a folder; the error
    /// names the key and the resolved path.
    pub fn validate_paths(&self) -> Result<(), ConfigError> {
        match self.path_problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every dataset folder that is missing or not a folder (what
    /// [`Config::validate_paths`] reports the first of).
    pub fn path_problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        let sets = [
            ("nas.dataset", &self.dataset),
            ("fully_train.dataset", &self.full_dataset),
        ];
        for (prefix, set) in sets {
            for (split_name, split) in [("train", &set.train), ("test", &set.test)] {
                let roots = [
                    ("root_HR", Some(&split.root_hr)),
                    ("root_LR", split.root_lr.as_ref()),
                ];
                for (key, path) in roots {
                    let Some(path) = path else { continue };
                    let reason = match std::fs::metadata(path) {
                        Ok(m) if m.is_dir() => continue,
                        Ok(_) => "is not a folder".to_string(),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            "does not exist".to_string()
                        }
                        Err(e) => format!("cannot be read: {e}"),
                    };
                    problems.push(ConfigError::Path {
                        file: self.source.clone(),
                        key: format!("{prefix}.{split_name}.{key}"),
                        path: path.clone(),
                        reason,
                    });
                }
            }
        }
        problems
    }

    /// Every benchmark folder (`benchmark_<Name>.dataset.test.root_HR` /
    /// `root_LR`) that is missing or not a folder: checked before a new run
    /// starts, so a typo fails at once rather than after the training.
    pub fn benchmark_path_problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        for b in &self.benchmarks {
            let roots = [
                ("root_HR", Some(&b.root_hr)),
                ("root_LR", b.root_lr.as_ref()),
            ];
            for (key, path) in roots {
                let Some(path) = path else { continue };
                if !path.is_dir() {
                    problems.push(ConfigError::Path {
                        file: self.source.clone(),
                        key: format!("benchmark_{}.dataset.test.{key}", b.name),
                        path: path.clone(),
                        reason: if path.exists() {
                            "is not a folder".into()
                        } else {
                            "does not exist".into()
                        },
                    });
                }
            }
        }
        problems
    }

    /// The resolved settings as YAML in the file's own shape, with every
    /// default spelt out and absolute paths; [`Config::from_yaml_str`] reads
    /// it back to an equal `Config` with no warnings.
    pub fn to_yaml(&self) -> String {
        emit::to_yaml(self)
    }
}

/// The embedded default's data (configs/quick.yaml's `nas.dataset`): the
/// photographs of `assets/`, which the binary also carries for when it runs
/// away from its checkout.
fn embedded_photographs(scale: usize) -> DatasetConfig {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    DatasetConfig {
        train: DataSplit {
            crop: 24,
            batch_size: 8,
            ..DataSplit::train_defaults(assets.join("train"), scale)
        },
        test: DataSplit::test_defaults(assets.join("val"), scale),
    }
}

fn syntax_error(file: &str, e: &serde_yaml::Error) -> ConfigError {
    let location = e.location();
    let mut message = e.to_string();
    if let Some(l) = &location {
        // The parser repeats the position in its message; it is shown once, up front.
        message = message.replacen(
            &format!(" at line {} column {}", l.line(), l.column()),
            "",
            1,
        );
    }
    ConfigError::Syntax {
        file: file.to_string(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message,
    }
}

//! Bad configurations: every error is one line naming the file, the key
//! path, the value found and what is allowed; unused keys give one warning.

use crate::support;

use std::path::{Path, PathBuf};

use esr_ea::config::{Config, ConfigError, Loaded};
use serde_yaml::Value;

const BASE: &str = "
nas:
  search_space:
    esrbody: {type: ESRN, block_type: [S, G, C], conv_num: [4, 6, 8], growth_rate: [8, 16, 24, 32],
              type_prob: [1, 1, 1], conv_prob: [1, 1, 1], growth_prob: [1, 1, 1, 1], G0: 32, scale: 2}
  search_algorithm:
    policy: {num_generation: 20, num_individual: 8, num_elitism: 4, mutation_rate: 0.05}
    range: {node_num: 20, min_active: 16, max_params: 325000, min_params: 315000}
  dataset:
    train: {root_HR: data/train, upscale: 2}
    test: {root_HR: data/val}
  trainer:
    epochs: 5
    optimizer: {type: Adam, params: {lr: 0.0001}}
    lr_scheduler: {type: MultiStepLR, params: {milestones: [1, 2], gamma: 0.5}}
    loss: {type: L1Loss}
fully_train:
  dataset: {ref: nas.dataset}
";

/// Lays `patch` over `over` key by key.
fn merge(over: &mut Value, patch: Value) {
    match (over, patch) {
        (Value::Mapping(base), Value::Mapping(patch)) => {
            for (k, v) in patch {
                match base.get_mut(&k) {
                    Some(old) => merge(old, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (slot, patch) => *slot = patch,
    }
}

/// The base document with `patch` (YAML) laid over it.
fn doc(patch: &str) -> String {
    let mut base: Value = serde_yaml::from_str(BASE).unwrap();
    merge(&mut base, serde_yaml::from_str(patch).unwrap());
    serde_yaml::to_string(&base).unwrap()
}

fn load(text: &str) -> Result<Loaded, ConfigError> {
    Config::from_yaml_str(text, Path::new("/base"), "configs/x.yaml")
}

fn err(patch: &str) -> String {
    let message = load(&doc(patch)).unwrap_err().to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.starts_with("configs/x.yaml: "), "{message}");
    message
}

fn assert_has(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn base_document_is_valid() {
    let loaded = load(&doc("{}")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.dataset.train.root_hr, PathBuf::from("/base/data/train"));
    assert_eq!(c.full_dataset, c.dataset);
    assert_eq!(c.source, "configs/x.yaml");
}

#[test]
fn wrong_number_types_name_key_and_value() {
    assert_eq!(
        err("nas: {search_algorithm: {policy: {num_individual: eight}}}"),
        r#"configs/x.yaml: nas.search_algorithm.policy.num_individual: expected a whole number >= 1, found "eight""#
    );
    assert_has(
        &err("nas: {search_algorithm: {policy: {num_generation: 0}}}"),
        &["nas.search_algorithm.policy.num_generation", "found 0"],
    );
    assert_has(
        &err("nas: {trainer: {epochs: 2.5}}"),
        &["nas.trainer.epochs", "found 2.5"],
    );
    assert_has(
        &err("nas: {trainer: {optimizer: {params: {lr: -1}}}}"),
        &[
            "nas.trainer.optimizer.params.lr",
            "expected a number > 0, found -1",
        ],
    );
    assert_has(
        &err("nas: {dataset: {train: {hflip: maybe}}}"),
        &[
            "nas.dataset.train.hflip",
            "expected true or false",
            "\"maybe\"",
        ],
    );
}

#[test]
fn search_space_errors() {
    assert_eq!(
        err("nas: {search_space: {esrbody: {scale: 5}}}"),
        "configs/x.yaml: nas.search_space.esrbody.scale: 5 is not supported (allowed: 2, 3, 4)"
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {G0: 30}}}"),
        &["nas.search_space.esrbody.G0: 30 must be a multiple of 4"],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {block_type: [S, X]}}}"),
        &[
            "nas.search_space.esrbody.block_type[1]",
            "unknown block kind \"X\"",
            "S shrink",
        ],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {growth_rate: [8, 16, 30]}}}"),
        &[
            "nas.search_space.esrbody.growth_rate[2]",
            "30 is not a multiple of 4",
            "pixel-shuffle",
        ],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {conv_num: [4, 6, 4], conv_prob: [1, 1, 1]}}}"),
        &[
            "nas.search_space.esrbody.conv_num",
            "4 appears twice in [4, 6, 4]",
        ],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {type_prob: [1, 1]}}}"),
        &[
            "nas.search_space.esrbody.type_prob",
            "[1, 1] has 2 weights but block_type has 3 values",
        ],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {growth_prob: [0, 0, 0, 0]}}}"),
        &[
            "nas.search_space.esrbody.growth_prob",
            "[0, 0, 0, 0]",
            "all weights are 0",
        ],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {conv_prob: [1, -2, 1]}}}"),
        &["nas.search_space.esrbody.conv_prob[1]", "-2 is negative"],
    );
    assert_has(
        &err("nas: {search_space: {esrbody: {growth_rate: []}}}"),
        &["nas.search_space.esrbody.growth_rate", "empty"],
    );
}

#[test]
fn policy_and_range_errors() {
    assert_has(
        &err("nas: {search_algorithm: {policy: {mutation_rate: 1.5}}}"),
        &[
            "nas.search_algorithm.policy.mutation_rate",
            "1.5 is outside 0..1",
        ],
    );
    assert_has(
        &err("nas: {search_algorithm: {policy: {num_elitism: 9}}}"),
        &[
            "nas.search_algorithm.policy.num_elitism",
            "9 is larger than num_individual = 8",
        ],
    );
    assert_has(
        &err("nas: {search_algorithm: {policy: {selection: best}}}"),
        &[
            "nas.search_algorithm.policy.selection",
            "\"best\"",
            "roulette, tournament",
        ],
    );
    assert_has(
        &err("nas: {search_algorithm: {range: {min_params: 330000}}}"),
        &[
            "nas.search_algorithm.range.min_params",
            "330000 is larger than max_params = 325000",
        ],
    );
    assert_has(
        &err("nas: {search_algorithm: {range: {min_active: 21}}}"),
        &[
            "nas.search_algorithm.range.min_active",
            "21 is larger than node_num = 20",
        ],
    );
    assert_has(
        &err("nas: {search_algorithm: {range: {node_num: 8, min_active: 4}}}"),
        &["nas.search_algorithm.range.node_num", "8 is below 10"],
    );
}

#[test]
fn unsupported_types_say_what_is_supported() {
    let cases = [
        (
            "nas: {trainer: {optimizer: {type: SGD}}}",
            "nas.trainer.optimizer.type",
            "\"SGD\"",
            "Adam",
        ),
        (
            "nas: {trainer: {loss: {type: MSELoss}}}",
            "nas.trainer.loss.type",
            "\"MSELoss\"",
            "L1Loss",
        ),
        (
            "nas: {trainer: {lr_scheduler: {type: CosineAnnealing}}}",
            "nas.trainer.lr_scheduler.type",
            "\"CosineAnnealing\"",
            "MultiStepLR",
        ),
        (
            "nas: {search_space: {esrbody: {type: Foo}}}",
            "nas.search_space.esrbody.type",
            "\"Foo\"",
            "ESRN",
        ),
        (
            "fully_train: {trainer: {metric: {type: SSIM}}}",
            "fully_train.trainer.metric.type",
            "\"SSIM\"",
            "PSNR",
        ),
    ];
    for (patch, key, value, supported) in cases {
        let message = err(patch);
        assert_has(&message, &[key, value, "is not supported", supported]);
    }
}

#[test]
fn trainer_and_dataset_errors() {
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {params: {milestones: [200, 100]}}}}"),
        &[
            "nas.trainer.lr_scheduler.params.milestones",
            "[200, 100] must increase",
        ],
    );
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {milestones: [5]}}}"),
        &["nas.trainer.lr_scheduler.milestones", "set twice"],
    );
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {params: {gamma: 2}}}}"),
        &["nas.trainer.lr_scheduler.params.gamma", "2 is above 1"],
    );
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {milestones_unit: hours}}}"),
        &[
            "nas.trainer.lr_scheduler.milestones_unit",
            "\"hours\"",
            "epochs, steps",
        ],
    );
    assert_has(
        &err("nas: {dataset: {test: {upscale: 3}}}"),
        &[
            "nas.dataset.test.upscale",
            "3 does not match nas.search_space.esrbody.scale = 2",
        ],
    );
    assert_has(
        &err("nas: {trainer: {metric: {params: {scale: 4}}}}"),
        &["nas.trainer.metric.params.scale", "4 does not match"],
    );
    assert_has(
        &err("nas: {dataset: {train: {crop: 0}}}"),
        &["nas.dataset.train.crop", "found 0"],
    );
    assert_has(
        &err("nas: {dataset: {train: {root_HR: null}}}"),
        &["nas.dataset.train.root_HR", "missing"],
    );
    assert_has(
        &err("nas: {dataset: {test: 3}}"),
        &["nas.dataset.test", "expected a mapping", "found 3"],
    );
}

#[test]
fn structural_errors() {
    let e = load("nas: {search_space: [1, 2]\nfully_train: {}\n").unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(
            e,
            ConfigError::Syntax {
                line: Some(_),
                column: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_has(
        &message,
        &["configs/x.yaml: YAML syntax error at line ", ", column "],
    );
    assert!(!message.contains('\n'));
    assert_has(
        &message,
        &["at line 2, column 1: did not find expected ',' or '}', while parsing"],
    );

    assert_has(
        &err("fully_train: {dataset: {ref: nas.datasets}}"),
        &[
            "fully_train.dataset.ref",
            "\"nas.datasets\" does not name a section",
        ],
    );
    assert_has(
        &load("fully_train: {}").unwrap_err().to_string(),
        &["configs/x.yaml: nas: missing"],
    );
    assert_has(
        &load("").unwrap_err().to_string(),
        &[
            "configs/x.yaml: (document): expected a mapping",
            "found an empty value",
        ],
    );
    let missing = Config::load("/nonexistent/x.yaml").unwrap_err().to_string();
    assert_has(
        &missing,
        &["/nonexistent/x.yaml: cannot read the configuration"],
    );
}

#[test]
fn unknown_keys_give_one_warning() {
    let loaded = load(&doc(
        "general: {backend: pytorch}\n\
         nas: {search_algorithm: {policy: {num_individuals: 3}}, trainer: {cuda: true}}",
    ))
    .unwrap();
    assert_eq!(
        loaded.warnings,
        [
            "ignored keys: nas.trainer.cuda, general.backend; not recognised, check the spelling: \
          nas.search_algorithm.policy.num_individuals"
        ]
    );
    // The misspelt key did not change anything.
    assert_eq!(loaded.config.policy.num_individual, 8);
}

#[test]
fn validate_paths_names_the_key_and_the_folder() {
    let dir = support::temp_run("config");
    std::fs::create_dir_all(dir.join("data/train")).unwrap();
    std::fs::create_dir_all(dir.join("data/val")).unwrap();
    let path = dir.join("run.yaml");
    std::fs::write(&path, doc("{}")).unwrap();
    let config = Config::load(&path).unwrap().config;
    assert_eq!(config.dataset.test.root_hr, dir.join("data/val"));
    config.validate_paths().unwrap();

    std::fs::write(&path, doc("nas: {dataset: {test: {root_LR: data/val_lr}}}")).unwrap();
    let config = Config::load(&path).unwrap().config;
    let message = config.validate_paths().unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}: nas.dataset.test.root_LR: {}: does not exist",
            path.display(),
            dir.join("data/val_lr").display()
        )
    );
    std::fs::write(dir.join("data/val_lr"), "not a folder").unwrap();
    let message = config.validate_paths().unwrap_err().to_string();
    assert!(message.ends_with("is not a folder"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn schedule_and_clipping_errors() {
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {type: CosineAnnealingLR, params: {milestones: [1, 2]}}}}"),
        &[
            "nas.trainer.lr_scheduler.params.milestones",
            "belongs to type: MultiStepLR",
            "eta_min",
        ],
    );
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {params: {eta_min: 0.00001}}}}"),
        &[
            "nas.trainer.lr_scheduler.params.eta_min",
            "eta_min belongs to type: CosineAnnealingLR",
        ],
    );
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {type: CosineAnnealingLR, params: {eta_min: 0.001}}}}"),
        &[
            "nas.trainer.lr_scheduler.params.eta_min",
            "0 <= eta_min < the optimizer's lr (0.0001)",
        ],
    );
    assert_has(
        &err("nas: {trainer: {lr_scheduler: {type: Cosine}}}"),
        &["nas.trainer.lr_scheduler.type", "CosineAnnealingLR"],
    );
    assert_has(
        &err("nas: {trainer: {clip_grad_norm: 0}}"),
        &[
            "nas.trainer.clip_grad_norm",
            "expected a number > 0, found 0",
        ],
    );
}

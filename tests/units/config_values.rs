//! Accepted spellings and values beyond the shipped files.

use std::path::{Path, PathBuf};

use esr_ea::config::Config;
use esr_ea::search::Selection;
use esr_ea::space::BlockKind;

const DATA: &str =
    "  dataset: {train: {root_HR: /d/train, root_LR: lr}, test: {root_HR: /d/val}}\n";

fn load(nas: &str, rest: &str) -> Config {
    let text = format!("nas:\n{DATA}{nas}{rest}");
    let loaded = Config::from_yaml_str(&text, Path::new("/cfg"), "t.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.config
}

#[test]
fn defaults_fill_everything_but_the_data() {
    let c = load("", "");
    assert_eq!(c.seed, 0);
    assert_eq!(c.search_trainer.epochs, 500);
    assert_eq!(c.search_trainer.steps, None);
    assert_eq!(c.full_trainer.epochs, 15000);
    assert_eq!(c.full_trainer.milestones, [8000, 12000, 13500, 14500]);
    assert_eq!(c.dataset.train.root_lr, Some(PathBuf::from("/cfg/lr")));
    assert_eq!(c.dataset.train.batch_size, 16);
    assert_eq!(c.dataset.test.batch_size, 1);
    assert_eq!(c.full_dataset, c.dataset);
}

#[test]
fn number_spellings() {
    for lr in ["1e-4", "1.0e-04", "0.0001"] {
        let c = load(
            &format!("  trainer: {{optimizer: {{params: {{lr: {lr}}}}}}}\n"),
            "",
        );
        assert_eq!(c.search_trainer.lr, 1e-4, "{lr}");
    }
    // Flat optimizer spelling and integer weights.
    let c = load(
        "  trainer: {optimizer: {lr: 0.002}}\n  search_space: {esrbody: {type_prob: [2, 0.5, 0]}}\n",
        "",
    );
    assert_eq!(c.search_trainer.lr, 0.002);
    assert_eq!(c.search_space.type_prob, [2.0, 0.5, 0.0]);
}

#[test]
fn our_extra_keys() {
    let c = load(
        "  search_space: {esrbody: {bias: false, block_type: [c, S], scale: 3}}\n  \
         search_algorithm: {policy: {selection: Tournament}}\n  \
         trainer: {steps: 7, batch_size: 4, seed: 3, lr_scheduler: {milestones: [], milestones_unit: steps}}\n",
        "seed: 99\nfully_train: {trainer: {epochs: 9}}\n",
    );
    assert!(!c.search_space.bias);
    assert_eq!(c.search_space.block_type, [BlockKind::C, BlockKind::S]);
    assert_eq!(c.search_space.type_prob, [1.0, 1.0]);
    assert_eq!(c.dataset.train.upscale, 3);
    assert_eq!(c.policy.selection, Selection::Tournament);
    assert_eq!(c.search_trainer.steps, Some(7));
    assert_eq!(c.search_trainer.batch_size, Some(4));
    assert_eq!(c.search_trainer.seed, Some(3));
    assert!(c.search_trainer.milestones.is_empty());
    assert!(c.search_trainer.milestones_in_steps);
    // Top-level seed wins over the trainer's.
    assert_eq!(c.seed, 99);
    // fully_train keys missing fall back to the full-training defaults.
    assert_eq!(c.full_trainer.epochs, 9);
    assert_eq!(c.full_trainer.milestones, [8000, 12000, 13500, 14500]);
    assert!(!c.full_trainer.milestones_in_steps);
    // And the whole thing round-trips.
    let again = Config::from_yaml_str(&c.to_yaml(), Path::new("/x"), "t.yaml").unwrap();
    assert!(again.warnings.is_empty());
    assert_eq!(again.config, c);
}

#[test]
fn pyyaml_booleans_anchors_and_ref_overlays() {
    let c = load(
        "  trainer: &t {epochs: 3, seed: 5}\n",
        "fully_train:\n  trainer: {<<: *t, epochs: 4}\n  \
         dataset: {ref: nas.dataset, train: {crop: 32, hflip: no, root_HR: other}}\n",
    );
    assert_eq!(c.seed, 5);
    assert_eq!(c.full_trainer.epochs, 4);
    assert_eq!(c.full_trainer.seed, Some(5));
    let ft = &c.full_dataset.train;
    assert_eq!((ft.crop, ft.hflip), (32, false));
    assert_eq!(ft.root_hr, PathBuf::from("/cfg/other"));
    // Untouched keys come from the link's target.
    assert_eq!(ft.root_lr, Some(PathBuf::from("/cfg/lr")));
    assert_eq!(c.full_dataset.test, c.dataset.test);
}

#[test]
fn cosine_schedule_and_gradient_clipping() {
    use esr_ea::config::ScheduleKind;
    let c = load(
        "  trainer: {clip_grad_norm: 0.5, optimizer: {lr: 0.002}, lr_scheduler: {type: CosineAnnealingLR, eta_min: 1.0e-5}}\n",
        "fully_train: {trainer: {lr_scheduler: {type: CosineAnnealingLR}}}\n",
    );
    assert_eq!(
        c.search_trainer.scheduler,
        ScheduleKind::Cosine { eta_min: 1e-5 }
    );
    assert_eq!(c.search_trainer.clip_grad_norm, Some(0.5));
    // eta_min defaults to PyTorch's 0; clipping stays off unless asked.
    assert_eq!(
        c.full_trainer.scheduler,
        ScheduleKind::Cosine { eta_min: 0.0 }
    );
    assert_eq!(c.full_trainer.clip_grad_norm, None);
    assert_eq!(
        c.search_trainer.describe_optimiser(),
        "lr 0.002, cosine decay to 0.00001, gradient norm clipped at 0.5"
    );
    let again = Config::from_yaml_str(&c.to_yaml(), Path::new("/x"), "t.yaml").unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.config, c);
}

/// `nas.search_algorithm.type`: evolution (also Vega's `ESRSearch`) or
/// random; written back into the run's config; anything else named.
#[test]
fn the_strategy_is_read_written_back_and_checked() {
    use esr_ea::search::Strategy;
    let c = load("", "");
    assert_eq!(c.policy.strategy, Strategy::Evolution);
    for (word, strategy) in [
        ("random", Strategy::Random),
        ("Random", Strategy::Random),
        ("ESRSearch", Strategy::Evolution),
        ("evolution", Strategy::Evolution),
    ] {
        let c = load(&format!("  search_algorithm: {{type: {word}}}\n"), "");
        assert_eq!(c.policy.strategy, strategy, "{word}");
        let yaml = c.to_yaml();
        assert!(
            yaml.contains(&format!("type: {}", strategy.name())),
            "{yaml}"
        );
        let again = Config::from_yaml_str(&yaml, Path::new("/x"), "t.yaml").unwrap();
        assert_eq!(again.config.policy.strategy, strategy);
    }
    let text = format!("nas:\n{DATA}  search_algorithm: {{type: genetic}}\n");
    let err = Config::from_yaml_str(&text, Path::new("/cfg"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("nas.search_algorithm.type"), "{err}");
    assert!(err.contains("random"), "{err}");
}

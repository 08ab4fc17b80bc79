//! `nas.trainer.common_random_numbers`: members of a run train on the run's
//! patch and weight streams (not their own), the config reads and writes
//! the switch, and a search with it stays deterministic.

use crate::support;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use esr_ea::config::Config;
use esr_ea::engine::{Fitness, Job};
use esr_ea::search::{Individual, Member, Origin, Status};
use esr_ea::space::GeneList;
use esr_ea::train::fitness::QuickTrain;
use support::cli::{headless_search, one_line_error};
use support::state::elites_and_history;
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

fn crn_config(dir: &Path, seed: u64, crn: &str) -> std::path::PathBuf {
    tiny_dataset(dir, &["train/astronaut.png", "train/chelsea.png"]);
    let yaml = TinySearch {
        seed,
        generations: 2,
        batch_size: 2,
        steps: 3,
        milestone: 2,
    }
    .yaml()
    .replace(
        "  trainer:\n",
        &format!("  trainer:\n    common_random_numbers: {crn}\n"),
    );
    let path = dir.join("crn.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn job(id: u64, seed: u64, config: &Config, dir: &Path) -> Job {
    let genes = GeneList::parse_args(&["G_4_8_16", "S_4_8_16"]).unwrap();
    let arch = config.search_space.arch(genes.clone());
    Job {
        member: Member {
            id,
            generation: 0,
            individual: Individual { slots: Vec::new() },
            params: arch.cost().params,
            genes,
            multi_adds: 0,
            origin: Origin::Initial,
            status: Status::Pending,
        },
        arch,
        seed,
        device: "cpu".into(),
        weights: dir.join(format!("{id}.safetensors")),
        cancel: Arc::new(AtomicBool::new(false)),
        adopt: None,
        latency_ms: None,
        checks: Vec::new(),
        leg: Default::default(),
    }
}

fn fitness_of(config: &Config) -> QuickTrain {
    QuickTrain::load(config, &esr_ea::data::DataCache::in_memory()).unwrap()
}

#[test]
fn members_share_the_run_streams_only_when_switched_on() {
    let dir = temp_dir("crn-streams");
    let on = Config::load(crn_config(&dir, 5, "true")).unwrap().config;
    assert!(on.search_trainer.common_random_numbers);
    let off = Config {
        search_trainer: esr_ea::config::TrainerConfig {
            common_random_numbers: false,
            ..on.search_trainer.clone()
        },
        ..on.clone()
    };
    // Two members of one architecture with different member seeds.
    let psnr = |config: &Config, id: u64, seed: u64| {
        fitness_of(config)
            .evaluate(&job(id, seed, config, &dir), &mut |_| {})
            .into_evaluation()
            .unwrap()
            .psnr
    };
    assert_eq!(psnr(&on, 1, 11), psnr(&on, 2, 22));
    assert_ne!(psnr(&off, 1, 11), psnr(&off, 2, 22));
    // Another run seed is another common stream.
    let other_run = Config {
        seed: 6,
        ..on.clone()
    };
    assert_ne!(psnr(&on, 1, 11), psnr(&other_run, 1, 11));
    // The switch survives the resolved config a run saves.
    let again = Config::from_yaml_str(&on.to_yaml(), &dir, "saved")
        .unwrap()
        .config;
    assert!(again.search_trainer.common_random_numbers);
}

#[test]
fn same_seed_same_history_with_common_random_numbers() {
    let dir = temp_dir("crn-search");
    let config = crn_config(&dir, 7, "true");
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let run = dir.join(name);
            let o = headless_search(&[
                "--config",
                config.to_str().unwrap(),
                "--run-dir",
                run.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            elites_and_history(&run)
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn a_bad_switch_is_one_line_naming_the_key() {
    let dir = temp_dir("crn-bad");
    let config = crn_config(&dir, 1, "maybe");
    let o = headless_search(&["--config", config.to_str().unwrap(), "--check"]);
    one_line_error(&o, "common_random_numbers");
}

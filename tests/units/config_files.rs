//! The shipped configuration files: they load, round-trip, and say what the
//! reference says.

use std::path::Path;

use esr_ea::config::{Config, TrainerConfig};
use esr_ea::search::{Policy, Problem, Range, Selection};
use esr_ea::space::SearchSpace;
use rand::SeedableRng;

fn configs_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"))
}

#[test]
fn embedded_configs_load_without_warnings_and_round_trip() {
    for name in Config::embedded_names() {
        let loaded = Config::embedded(name).unwrap();
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        let config = loaded.config;
        assert_eq!(config.source, format!("embedded configs/{name}.yaml"));
        let text = config.to_yaml();
        let again = Config::from_yaml_str(&text, Path::new("/elsewhere"), config.source.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert!(again.warnings.is_empty(), "{name}: {:?}", again.warnings);
        assert_eq!(again.config, config, "{name}:\n{text}");
        // Also through serde, as a run directory might store it.
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
    }
}

#[test]
fn embedded_and_file_loads_agree() {
    let from_file = Config::load(configs_dir().join("esr_ea.yaml"))
        .unwrap()
        .config;
    let embedded = Config::embedded("configs/esr_ea.yaml").unwrap().config;
    assert_eq!(
        Config {
            source: embedded.source.clone(),
            ..from_file
        },
        embedded
    );
    assert!(Config::embedded("quick.yaml").is_ok());
    let err = Config::embedded("slow").unwrap_err().to_string();
    assert_eq!(
        err,
        r#"no built-in configuration named "slow" (available: quick, esr_ea)"#
    );
}

#[test]
fn full_default_has_the_reference_values() {
    let c = Config::embedded("esr_ea").unwrap().config;
    assert_eq!(c.search_space, SearchSpace::default());
    assert_eq!(c.policy, Policy::default());
    assert_eq!(c.range, Range::default());
    assert_eq!(c.seed, 0);
    let search = TrainerConfig {
        seed: Some(10),
        ..TrainerConfig::search_defaults()
    };
    assert_eq!(c.search_trainer, search);
    let full = TrainerConfig {
        seed: Some(10),
        ..TrainerConfig::full_defaults()
    };
    assert_eq!(c.full_trainer, full);
    assert_eq!(c.full_dataset, c.dataset);
    let train = &c.dataset.train;
    assert_eq!(
        train.root_hr,
        configs_dir().parent().unwrap().join("assets/train")
    );
    assert_eq!(train.root_lr, None);
    assert_eq!((train.crop, train.batch_size, train.upscale), (64, 16, 2));
    assert!(train.hflip && train.vflip && train.rot90 && train.shuffle);
    assert_eq!(
        c.dataset.test.root_hr,
        configs_dir().parent().unwrap().join("assets/val")
    );
    assert!(Problem::new(c.search_space, c.policy, c.range).is_ok());
}

#[test]
fn quick_config_is_small_and_its_budget_is_easy_to_hit() {
    let c = Config::embedded("quick").unwrap().config;
    assert_eq!(
        (
            c.policy.num_generation,
            c.policy.num_individual,
            c.policy.num_elitism
        ),
        (3, 4, 2)
    );
    assert_eq!((c.range.node_num, c.range.min_active), (10, 4));
    assert_eq!(c.search_space.g0, 16);
    assert_eq!(c.dataset.train.crop, 24);
    assert_eq!(c.dataset.train.batch_size, 8);
    assert_eq!(c.search_trainer.steps, Some(1000));
    assert!(c.search_trainer.common_random_numbers);
    assert_eq!((c.range.min_params, c.range.max_params), (25_000, 150_000));
    assert!(c.search_trainer.milestones_in_steps);
    assert_eq!(c.search_trainer.lr, 2e-3);
    assert_eq!(c.policy.selection, Selection::Roulette);

    let problem = Problem::new(c.search_space, c.policy, c.range.clone()).unwrap();
    // Networks drawn the reference's way (coin per slot, repaired only for
    // depth) land in the budget often, so budget repair ends quickly.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let loose = Problem::new(
        problem.space.clone(),
        problem.policy.clone(),
        Range {
            min_params: 0,
            max_params: u64::MAX,
            ..c.range.clone()
        },
    )
    .unwrap();
    let draws = 2000;
    let hits = (0..draws)
        .map(|_| loose.random_individual(&mut rng).unwrap())
        .filter(|ind| problem.is_valid(ind))
        .count();
    let rate = hits as f64 / draws as f64;
    // The wide window (25k..150k, median draw 99k) holds most draws, but
    // not all: it still constrains.
    eprintln!("hit rate {rate}");
    assert!((0.3..0.95).contains(&rate), "hit rate {rate}");
    for _ in 0..50 {
        let ind = problem.random_individual(&mut rng).unwrap();
        assert!(problem.is_valid(&ind));
    }
}

#[test]
fn vega_file_loads_with_one_warning_listing_ignored_keys() {
    let loaded = Config::load(configs_dir().join("vega_esr_ea.yml")).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    assert!(warning.starts_with("ignored keys: "), "{warning}");
    for key in [
        "general.backend",
        "nas.pipe_step.type",
        "nas.dataset.type",
        "nas.dataset.train.fixed_size",
        "nas.search_space.modules",
        "nas.search_algorithm.codec",
        "nas.trainer.callbacks",
        "nas.trainer.cuda",
        "nas.trainer.metric.params.max_rgb",
        "fully_train.pipe_step.models_folder",
        "fully_train.evaluator.host_evaluator.metric.type",
        "benchmark_Set5.pipe_step.type",
        "benchmark_DIV2K.evaluator.*",
        "benchmark_DIV2K.dataset.type",
    ] {
        assert!(warning.contains(key), "{key} missing from {warning}");
    }
    // Nothing misspelt; keys copied by `ref:` are not listed again.
    assert!(!warning.contains("check the spelling"), "{warning}");
    assert!(!warning.contains("fully_train.dataset"), "{warning}");
    // Keys that are read are not listed.
    for key in [
        "esrbody.type",
        "optimizer.type",
        "lr_scheduler",
        "nas.trainer.scale",
    ] {
        assert!(!warning.contains(key), "{key} in {warning}");
    }

    let c = loaded.config;
    // The pipeline and its benchmark sets are read (refs resolved, paths kept).
    let stages: Vec<String> = c.pipeline.iter().map(|s| s.name()).collect();
    assert_eq!(
        stages,
        [
            "nas",
            "fully_train",
            "benchmark_DIV2K",
            "benchmark_Set5",
            "benchmark_Set14",
            "benchmark_BSDS100"
        ]
    );
    assert_eq!(c.top_n, 1);
    let set5 = &c.benchmarks[1];
    assert_eq!(set5.name, "Set5");
    assert_eq!(set5.root_hr, Path::new("/cache/datasets/DIV2K/Set5/hr"));
    assert_eq!(
        set5.root_lr.as_deref(),
        Some(Path::new("/cache/datasets/DIV2K/Set5/lr"))
    );
    assert_eq!(c.full_dataset, c.dataset);
    assert_eq!(c.seed, 10);
    assert_eq!(c.search_space, SearchSpace::default());
    assert_eq!(c.policy, Policy::default());
    assert_eq!(c.range, Range::default());
    assert_eq!(c.search_trainer.milestones, [100, 200]);
    assert_eq!(c.full_trainer.milestones, [8000, 12000, 13500, 14500]);
    assert_eq!(c.full_trainer.gamma, 0.5);
    assert_eq!(c.full_trainer.epochs, 15000);
    assert_eq!(c.dataset.test.crop, 64);
    assert!(!c.dataset.test.hflip);
    // The same settings as our own default file, apart from where they came from.
    let ours = Config::load(configs_dir().join("esr_ea.yaml"))
        .unwrap()
        .config;
    assert_eq!(
        Config {
            source: ours.source.clone(),
            seed: ours.seed,
            pipeline: ours.pipeline.clone(),
            benchmarks: ours.benchmarks.clone(),
            ..c
        },
        ours
    );
}

#[test]
fn vega_scheduler_spellings_agree() {
    let text = |sched: &str| {
        format!(
            "nas:\n  dataset: {{train: {{root_HR: a}}, test: {{root_HR: b}}}}\n  trainer:\n    lr_scheduler: {sched}\n"
        )
    };
    let nested = text("{type: MultiStepLR, params: {milestones: [3, 9], gamma: 0.25}}");
    let flat = text("{type: MultiStepLR, milestones: [3, 9], gamma: 0.25}");
    let a = Config::from_yaml_str(&nested, Path::new("/d"), "nested").unwrap();
    let b = Config::from_yaml_str(&flat, Path::new("/d"), "flat").unwrap();
    assert!(a.warnings.is_empty() && b.warnings.is_empty());
    assert_eq!(a.config.search_trainer.milestones, [3, 9]);
    assert_eq!(a.config.search_trainer.gamma, 0.25);
    assert_eq!(a.config.search_trainer, b.config.search_trainer);
}

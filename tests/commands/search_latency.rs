//! The optional latency constraint (`range.max_latency_ms`): its settings,
//! whole searches through the binary with an absurdly low and a high limit,
//! and the per-architecture cache in the search state.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::sync::Arc;

use esr_ea::config::Config;
use esr_ea::data::dataset::Dataset;
use esr_ea::engine::{self, EngineSetup, Event, RunDir, TrainingRules};
use esr_ea::latency::{LatencyLimit, Runtime};
use esr_ea::search::{Search, Status};
use esr_ea::train::fitness::QuickTrain;
use esr_ea::train::trainer::TrainPlan;
use support::{temp_dir, temp_run, wait_for};

/// Crops of the embedded photographs (as `search_e2e`).
fn tiny_dataset(dir: &Path) {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for (split, sources, side) in [
        (
            "train",
            vec!["train/astronaut.png", "train/brick.png"],
            32u32,
        ),
        ("val", vec!["val/coffee.png"], 16u32),
    ] {
        let out = dir.join(split);
        std::fs::create_dir_all(&out).unwrap();
        for (i, src) in sources.iter().enumerate() {
            let img = image::open(assets.join(src)).unwrap().to_rgb8();
            let crop = image::imageops::crop_imm(&img, 40, 40, side, side).to_image();
            crop.save(out.join(format!("{i}.png"))).unwrap();
        }
    }
}

/// A tiny search whose range has `range_extra` (e.g. `max_latency_ms: 5`).
fn tiny_config(dir: &Path, range_extra: &str) -> PathBuf {
    tiny_dataset(dir);
    let text = format!(
        r#"
seed: 4
nas:
  search_space:
    esrbody: {{block_type: [S, G, C], conv_num: [4], growth_rate: [8, 16], type_prob: [1, 1, 1],
              conv_prob: [1], growth_prob: [1, 1], G0: 8, scale: 2}}
  search_algorithm:
    policy: {{num_generation: 2, num_individual: 4, num_elitism: 2, mutation_rate: 0.1}}
    range: {{node_num: 10, min_active: 4, max_params: 60000, min_params: 20000, {range_extra}}}
  dataset:
    train: {{root_HR: train, upscale: 2, crop: 8, batch_size: 2}}
    test: {{root_HR: val, upscale: 2}}
  trainer:
    steps: 2
    optimizer: {{type: Adam, params: {{lr: 0.001}}}}
    lr_scheduler: {{type: MultiStepLR, milestones: [1], gamma: 0.5, milestones_unit: steps}}
    loss: {{type: L1Loss}}
"#
    );
    let path = dir.join("tiny.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A search to its end (its export included); the later stages are the
/// pipeline's tests' business.
fn search(config: &Path, run: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["search", "--headless", "--stop-after", "search", "--config"])
        .arg(config)
        .arg("--run-dir")
        .arg(run)
        .output()
        .unwrap()
}

/// Every row of `history.csv` fills its `latency_ms` column.
fn every_row_has_a_latency(csv: &str) -> bool {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|c| *c == "latency_ms").unwrap();
    lines.all(|l| !l.split(',').nth(column).unwrap_or_default().is_empty())
}

fn state(run: &Path) -> esr_ea::search::SearchState {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

const MEASURE: &str = "latency: {runtime: candle, threads: 1, size: 16x16, frames: 1}";

#[test]
fn an_absurdly_low_limit_rejects_every_member_and_the_search_ends_clearly() {
    let dir = temp_dir("latency-low");
    let cfg = tiny_config(&dir, &format!("max_latency_ms: 0.0001, {MEASURE}"));
    let run = dir.join("run");
    let o = search(&cfg, &run);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(!o.status.success(), "{out}\n{err}");
    let last = err.trim().lines().last().unwrap_or("");
    assert!(
        last.contains(
            "no member got a fitness: 8 failed (8 over max_latency_ms); the first failure: "
        ),
        "{err}"
    );
    // The reasons are where the message says they are.
    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|c| *c == "reason")
        .expect("a reason column");
    assert!(history.lines().skip(1).count() >= 8, "{history}");
    for line in history.lines().skip(1) {
        assert!(
            line.contains("> max_latency_ms"),
            "no reason in: {line} ({col})"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.contains("ms > max_latency_ms 0.0001 (candle, 1 thread, 16x16)"),
        "{out}"
    );
    let s = state(&run);
    assert!(s.finished);
    assert_eq!(s.history.len(), 8);
    assert!(s.elites.is_empty() && s.cache.is_empty());
    for m in &s.history {
        let Status::Failed { reason } = &m.status else {
            panic!("member {} is {:?}", m.id, m.status)
        };
        let ms = s.latency[&m.key()];
        assert!(ms > 0.0001);
        assert_eq!(
            reason,
            &format!("latency {ms:.1} ms > max_latency_ms 0.0001 (candle, 1 thread, 16x16)")
        );
    }
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",latency_ms,reason,psnr_over_bicubic"),
        "{csv}"
    );
    assert!(every_row_has_a_latency(&csv), "{csv}");
    let written = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(written.contains("max_latency_ms: 0.0001"), "{written}");
    assert!(!run.join("export").exists());
}

#[test]
fn a_high_limit_trains_every_member_and_records_its_latency() {
    let dir = temp_dir("latency-high");
    let cfg = tiny_config(&dir, &format!("max_latency_ms: 100000, {MEASURE}"));
    let run = dir.join("run");
    let o = search(&cfg, &run);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("exported the best 2 architectures"), "{out}");
    assert!(out.contains(" ms  ("), "headless shows the latency: {out}");
    let s = state(&run);
    let mut trained = 0;
    for m in &s.history {
        match &m.status {
            Status::Evaluated(e) | Status::Cached(e) => {
                let ms = e.latency_ms.expect("latency recorded");
                assert!(ms > 0.0 && ms < 100_000.0);
                assert_eq!(s.latency[&m.key()], ms);
                trained += 1;
            }
            other => panic!("member {} is {other:?}", m.id),
        }
    }
    assert_eq!(trained, 8);
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert!(every_row_has_a_latency(&csv), "{csv}");
    assert!(
        csv.lines().skip(1).all(|l| !l.ends_with(',')),
        "trained rows have a psnr_over_bicubic: {csv}"
    );
}

#[test]
fn a_cached_latency_is_not_measured_again() {
    // As a resumed run: the state already holds a latency for every member's
    // architecture. 9999 ms is far above what a 16x16 frame of any member
    // takes here, so a reason quoting it shows the cache was used.
    let dir = temp_dir("latency-cache");
    tiny_dataset(&dir);
    let loaded = Config::load(tiny_config(&dir, "max_latency_ms: 500")).unwrap();
    let config = loaded.config;
    let problem = esr_ea::search::Problem::new(
        config.search_space.clone(),
        esr_ea::search::Policy {
            num_generation: 1,
            ..config.policy.clone()
        },
        config.range.clone(),
    )
    .unwrap();
    let mut search = Search::new(problem, 9).unwrap();
    let keys: Vec<String> = search.state.population.iter().map(|m| m.key()).collect();
    for key in &keys {
        search.state.latency.insert(key.clone(), 9999.0);
    }
    let data = |side| {
        let img = esr_ea::data::RgbImage::filled(side, side, 120.0);
        Arc::new(Dataset::from_hr_images(vec![("a".into(), img)], 2, "test").unwrap())
    };
    let train = data(16);
    let plan = TrainPlan::from_config(&config.search_trainer, &config.dataset.train, train.len());
    let limit = LatencyLimit {
        width: 16,
        height: 16,
        frames: 1,
        ..LatencyLimit::with_max(500.0)
    };
    assert_eq!(limit.runtime, Runtime::Candle);
    let fitness = QuickTrain {
        train,
        val: data(8),
        plan,
        latency: Some(limit),
        common_seed: None,
    };
    let rules = TrainingRules::whole(fitness.plan.steps);
    let run_dir = temp_run("latency-cache-run");
    let (tx, rx) = mpsc::channel();
    let handle = engine::spawn(
        EngineSetup {
            search,
            run: RunDir::create(&run_dir).unwrap(),
            seed: 1,
            devices: vec!["cpu".into()],
            resumed: false,
            rules,
            notes: Vec::new(),
        },
        Arc::new(fitness),
        tx,
    );
    wait_for(&rx, |e| matches!(e, Event::Finished { .. }));
    let search = handle.join().unwrap();
    assert_eq!(search.state.history.len(), keys.len());
    for m in &search.state.history {
        let Status::Failed { reason } = &m.status else {
            panic!("member {} is {:?}", m.id, m.status)
        };
        assert_eq!(
            reason,
            "latency 9999.0 ms > max_latency_ms 500 (candle, 1 thread, 16x16)"
        );
    }
    assert!(search.state.latency.values().all(|&ms| ms == 9999.0));
}

fn config_error(range_extra: &str) -> String {
    let dir = temp_dir("latency-config");
    let text = std::fs::read_to_string(tiny_config(&dir, range_extra)).unwrap();
    Config::from_yaml_str(&text, &dir, "bad.yaml")
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_latency_settings_are_one_clear_line() {
    let range = "bad.yaml: nas.search_algorithm.range";
    for (extra, key, says) in [
        (
            "max_latency_ms: -5",
            "max_latency_ms",
            "number > 0, found -5",
        ),
        ("max_latency_ms: 0", "max_latency_ms", "number > 0, found 0"),
        ("max_latency_ms: fast", "max_latency_ms", "fast"),
        (
            "max_latency_ms: 5, latency: {runtime: tensorrt}",
            "latency.runtime",
            "candle, onnxruntime",
        ),
        (
            "max_latency_ms: 5, latency: {threads: 0}",
            "latency.threads",
            "0",
        ),
        (
            "max_latency_ms: 5, latency: {frames: 0}",
            "latency.frames",
            "0",
        ),
        (
            "max_latency_ms: 5, latency: {size: 640}",
            "latency.size",
            "640x360",
        ),
        (
            "max_latency_ms: 5, latency: {size: 16x0}",
            "latency.size",
            "16x0",
        ),
        ("latency: {frames: 2}", "latency", "without max_latency_ms"),
    ] {
        let e = config_error(extra);
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with(&format!("{range}.{key}")), "{extra}: {e}");
        assert!(e.contains(says), "{extra}: {e}");
    }
}

#[test]
fn the_limit_is_absent_by_default_and_written_back_when_set() {
    let dir = temp_dir("latency-emit");
    let plain = Config::load(tiny_config(&dir, "")).unwrap().config;
    assert_eq!(plain.latency_limit, None);
    assert!(!plain.to_yaml().contains("max_latency_ms"));
    assert!(!plain.to_yaml().contains("latency:"));

    let cfg = tiny_config(
        &dir,
        "max_latency_ms: 250.5, latency: {runtime: onnxruntime, threads: 2, size: 32x16}",
    );
    let set = Config::load(cfg).unwrap();
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    let limit = set.config.latency_limit.clone().unwrap();
    assert_eq!(
        limit,
        LatencyLimit {
            max_ms: 250.5,
            runtime: Runtime::Onnxruntime,
            threads: 2,
            width: 32,
            height: 16,
            frames: 3,
        }
    );
    let again = Config::from_yaml_str(&set.config.to_yaml(), &dir, "again").unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.config.latency_limit, Some(limit));
    assert_eq!(limit_text(&set.config), "onnxruntime, 2 threads, 32x16");
}

fn limit_text(c: &Config) -> String {
    c.latency_limit.as_ref().unwrap().setting()
}

/// Without a latency limit the count of latency failures is not mentioned;
/// with some, it is; and the reasons are where the sentence says.
#[test]
fn the_failure_summary_names_only_what_happened() {
    let search = Search::new(support::problem(1), 4).unwrap();
    let mut state = search.state.clone();
    let failed = |reason: &str| {
        let mut m = state.population[0].clone();
        m.status = Status::Failed {
            reason: reason.into(),
        };
        m
    };
    let members = vec![failed("out of memory"), failed("nan loss")];
    state.history = members;
    let text = engine::pipeline::failure_counts(&state);
    assert_eq!(text, "2 failed; the first failure: out of memory");
    assert!(!text.contains("max_latency_ms"));
    let mut slow = state.history[0].clone();
    slow.status = Status::Failed {
        reason: "latency 9.0 ms > max_latency_ms 1 (candle, 1 thread, 16x16)".into(),
    };
    let mut killed = slow.clone();
    killed.status = Status::Killed;
    state.history.extend([slow, killed]);
    let text = engine::pipeline::failure_counts(&state);
    assert!(
        text.starts_with(
            "3 failed (1 over max_latency_ms), 1 killed; the first failure: out of memory"
        ),
        "{text}"
    );
    let csv = engine::rundir::history_csv(&state);
    assert!(csv.lines().next().unwrap().contains(",reason,"), "{csv}");
    assert!(csv.contains("nan loss"), "{csv}");
}

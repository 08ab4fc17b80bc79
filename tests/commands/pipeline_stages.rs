//! The whole pipeline through the binary on a tiny config: search, full
//! training, benchmarks, pipeline.json; resume after SIGKILL during the full
//! training; `--stop-after`; finished stages are never redone.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use esr_ea::engine::results::{
    files, final_dir, read_json, BenchResults, FinalResult, PipelineState, StageStatus,
};
use support::cli::{headless_search, stdout};
use support::temp_dir;
use support::tiny::{photo_crops, tiny_dataset, TinySearch};

/// A tiny search (2 generations, 3-step members) with a `pipeline:`, a full
/// training of `steps` steps for the best `top_n`, and two benchmark sets.
fn pipeline_config(dir: &Path, steps: usize, top_n: usize) -> PathBuf {
    tiny_dataset(dir, &["train/astronaut.png", "train/brick.png"]);
    // A second benchmark set: other crops of the photographs, HR only.
    let other = dir.join("other");
    photo_crops(&other, &["train/chelsea.png"], 60, 32, 32);
    let search = TinySearch {
        seed: 5,
        generations: 2,
        batch_size: 2,
        steps: 3,
        milestone: 2,
    }
    .yaml();
    let (nas, _) = search
        .split_once("fully_train:")
        .expect("tiny yaml has fully_train");
    let text = format!(
        r#"pipeline: [nas, fully_train, benchmark_Val, benchmark_Other]
{nas}fully_train:
  top_n: {top_n}
  trainer:
    steps: {steps}
    optimizer: {{type: Adam, params: {{lr: 0.001}}}}
    lr_scheduler: {{type: MultiStepLR, milestones: [{half}], gamma: 0.5, milestones_unit: steps}}
benchmark_Val:
  pipe_step: {{type: BenchmarkPipeStep}}
  dataset:
    type: Set5
    test: {{root_HR: val}}
benchmark_Other:
  dataset: {{ref: benchmark_Val.dataset, test: {{root_HR: other/val}}}}
"#,
        half = steps / 2
    );
    let path = dir.join("pipe.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stages(run: &Path) -> PipelineState {
    read_json(&run.join(files::PIPELINE))
        .unwrap()
        .expect("pipeline.json")
}

fn status(run: &Path, name: &str) -> StageStatus {
    stages(run)
        .stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
        .status
}

/// Runs the whole pipeline of `cfg` into `run` headless; asserts it
/// succeeded and returns its output.
fn run_pipeline(cfg: &Path, run: &Path) -> String {
    let out = headless_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", support::cli::stderr(&out));
    text
}

/// Asserts the run's stages are exactly `names`, in order, all done.
fn assert_all_done(run: &Path, names: &[&str]) {
    let state = stages(run);
    let got: Vec<&str> = state.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(got, names);
    assert!(state.stages.iter().all(|s| s.status == StageStatus::Done));
}

fn final_result(run: &Path, rank: usize) -> FinalResult {
    read_json(&final_dir(run, rank).join(files::RESULT))
        .unwrap()
        .expect("result.json")
}

#[test]
fn a_tiny_pipeline_searches_trains_and_benchmarks_both_sets() {
    let dir = temp_dir("pipe-e2e");
    let cfg = pipeline_config(&dir, 12, 2);
    let run = dir.join("run");
    let text = run_pipeline(&cfg, &run);
    assert_all_done(
        &run,
        &[
            "search",
            "fully_train",
            "benchmark_Val",
            "benchmark_Other",
            "report",
        ],
    );
    for rank in [1, 2] {
        let r = final_result(&run, rank);
        assert_eq!(r.rank, rank);
        assert_eq!(r.steps, 12);
        assert!(r.val_psnr.is_finite() && r.bicubic_val_psnr.is_finite());
        assert_eq!(r.curve.last().unwrap().step, 12);
        assert!(r.curve.iter().any(|p| p.val_psnr.is_some()));
        assert!(final_dir(&run, rank).join(files::MODEL).is_file());
    }
    // Two distinct architectures, best first by search fitness.
    let (one, two) = (final_result(&run, 1), final_result(&run, 2));
    assert_ne!(one.genes, two.genes);
    assert!(one.fitness_psnr >= two.fitness_psnr);
    let bench: BenchResults = read_json(&run.join(files::BENCH)).unwrap().unwrap();
    let sets: Vec<&str> = bench.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sets, ["Val", "Other"]);
    for set in &bench.sets {
        assert_eq!(set.images, 1);
        let ranks: Vec<usize> = set.models.iter().map(|m| m.rank).collect();
        assert_eq!(ranks, [1, 2]);
        assert!(set.bicubic.psnr > 10.0 && set.bicubic.ssim <= 1.0);
    }
    // The Val set is the validation image: its score is the finalist's validation score.
    let val = &bench.sets[0];
    assert!((val.models[0].score.psnr - one.val_psnr).abs() < 1e-9);
    assert!((val.bicubic.psnr - one.bicubic_val_psnr).abs() < 1e-9);
    assert!(text.contains("stage 2/5: fully_train"), "{text}");
    assert!(text.contains("benchmark Other (1 images): #2"), "{text}");
    assert!(text.contains(&format!(
        "esr-ea upscale --model {} IN.png OUT.png",
        final_dir(&run, 1).join(files::MODEL).display()
    )));
    // The search's export stays as it was.
    assert!(run.join("export/1.safetensors").is_file());

    // Everything is done: a resume redoes nothing.
    let before = std::fs::read(final_dir(&run, 1).join(files::MODEL)).unwrap();
    let again = headless_search(&["--resume", run.to_str().unwrap()]);
    assert!(again.status.success(), "{}", support::cli::stderr(&again));
    assert!(stdout(&again).contains("every stage"), "{}", stdout(&again));
    assert_eq!(
        std::fs::read(final_dir(&run, 1).join(files::MODEL)).unwrap(),
        before
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stop_after_search_then_train_then_resume_runs_each_stage_once() {
    let dir = temp_dir("pipe-stop-after");
    let cfg = pipeline_config(&dir, 8, 1);
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let out = headless_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run_s,
        "--stop-after",
        "search",
    ]);
    assert!(out.status.success(), "{}", support::cli::stderr(&out));
    assert_eq!(status(&run, "search"), StageStatus::Done);
    assert_eq!(status(&run, "fully_train"), StageStatus::Pending);
    assert!(!run.join(files::FINAL).exists());
    let state_before = std::fs::read(run.join("state.json")).unwrap();

    // The search is not redone: its state stays byte for byte.
    let out = headless_search(&["--resume", run_s, "--stop-after", "train"]);
    assert!(out.status.success(), "{}", support::cli::stderr(&out));
    assert_eq!(std::fs::read(run.join("state.json")).unwrap(), state_before);
    assert!(!stdout(&out).contains("generation 1/2"), "{}", stdout(&out));
    assert_eq!(status(&run, "fully_train"), StageStatus::Done);
    assert_eq!(status(&run, "benchmark_Val"), StageStatus::Pending);
    assert!(!run.join(files::BENCH).exists());
    let model = std::fs::read(final_dir(&run, 1).join(files::MODEL)).unwrap();

    let out = headless_search(&["--resume", run_s]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", support::cli::stderr(&out));
    assert!(!text.contains("[final #1] "), "fully trained again: {text}");
    assert_eq!(
        std::fs::read(final_dir(&run, 1).join(files::MODEL)).unwrap(),
        model
    );
    assert!(stages(&run)
        .stages
        .iter()
        .all(|s| s.status == StageStatus::Done));
    let bench: BenchResults = read_json(&run.join(files::BENCH)).unwrap().unwrap();
    assert_eq!(bench.sets.len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the pipeline in the background and SIGKILLs it once the full
/// training has saved a checkpoint and before it ends.
fn kill_during_full_training(cfg: &Path, run: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["search", "--headless", "--config"])
        .arg(cfg)
        .arg("--run-dir")
        .arg(run)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pointer = final_dir(run, 1).join("checkpoint.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pointer.exists() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint of the full training"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !final_dir(run, 1).join(files::RESULT).exists(),
        "the full training finished before the kill: make it longer"
    );
}

#[test]
fn sigkill_during_full_training_resumes_to_the_same_weights() {
    let dir = temp_dir("pipe-kill");
    let cfg = pipeline_config(&dir, 400, 1);
    let straight = dir.join("straight");
    let out = headless_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        straight.to_str().unwrap(),
        "--stop-after",
        "train",
    ]);
    assert!(out.status.success(), "{}", support::cli::stderr(&out));

    let killed = dir.join("killed");
    kill_during_full_training(&cfg, &killed);
    assert_eq!(status(&killed, "fully_train"), StageStatus::Running);
    let out = headless_search(&[
        "--resume",
        killed.to_str().unwrap(),
        "--stop-after",
        "train",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", support::cli::stderr(&out));
    assert!(text.contains("resuming at step"), "{text}");
    let (a, b) = (final_result(&straight, 1), final_result(&killed, 1));
    assert_eq!(a.genes, b.genes);
    let losses = |r: &FinalResult| r.curve.iter().map(|p| (p.step, p.loss)).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.val_psnr, b.val_psnr);
    // Tensor by tensor: the file's metadata header is a map written in any order.
    let weights = |run: &Path| {
        let path = final_dir(run, 1).join(files::MODEL);
        let mut all: Vec<(String, Vec<f32>)> =
            candle_core::safetensors::load(path, &candle_core::Device::Cpu)
                .unwrap()
                .into_iter()
                .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
                .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let (w1, w2) = (weights(&straight), weights(&killed));
    assert!(!w1.is_empty());
    assert!(w1 == w2, "final weights differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipeline_keys_are_read_and_bad_ones_named() {
    use esr_ea::config::{Config, PipelineStep};
    let base = "nas: {search_space: {esrbody: {scale: 2}}}\n";
    let load =
        |extra: &str| Config::from_yaml_str(&format!("{base}{extra}"), Path::new("/d"), "p.yaml");
    // No pipeline: search, then fully train the best one.
    let c = load("").unwrap().config;
    assert_eq!(c.pipeline, [PipelineStep::Nas, PipelineStep::FullyTrain]);
    assert_eq!(c.top_n, 1);
    let loaded = load(
        "pipeline: [nas, fully_train, benchmark_Set5]\nfully_train: {top_n: 3}\n\
         benchmark_Set5: {dataset: {test: {root_HR: set5}}}\n",
    )
    .unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| !w.contains("benchmark_Set5")),
        "{:?}",
        loaded.warnings
    );
    let c = loaded.config;
    assert_eq!(c.top_n, 3);
    assert_eq!(c.benchmarks[0].root_hr, Path::new("/d/set5"));
    // Written back, it reads the same.
    let again = Config::from_yaml_str(&c.to_yaml(), Path::new("/"), "again").unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.config.pipeline, c.pipeline);
    assert_eq!(again.config.benchmarks, c.benchmarks);
    for (extra, needle) in [
        (
            "pipeline: [nas, evaluate]\n",
            "pipeline[1]: \"evaluate\" is not a stage",
        ),
        (
            "pipeline: [fully_train, nas]\n",
            "must come right after nas",
        ),
        (
            "pipeline: [nas, benchmark_X]\nbenchmark_X: {dataset: {test: {root_HR: x}}}\n",
            "needs fully_train before it",
        ),
        (
            "pipeline: [nas, fully_train, benchmark_Y]\n",
            "benchmark_Y: missing",
        ),
        (
            "pipeline: [nas, fully_train, benchmark_Y]\nbenchmark_Y: {dataset: {test: {}}}\n",
            "benchmark_Y.dataset.test.root_HR: missing",
        ),
        ("fully_train: {top_n: 0}\n", "fully_train.top_n"),
    ] {
        let err = load(extra).unwrap_err().to_string();
        assert!(err.contains(needle), "{extra}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// Paper size: `configs/esr_ea.yaml` as shipped (16-20 blocks, 315k-325k
/// params, batch 16 x 64x64, the embedded images) but for one generation of
/// two members and one training step, through the whole pipeline (search,
/// fully_train, a benchmark stage, report), then export with ONNX and an
/// upscale of a held photo with the final model. Every member gets a fitness.
#[test]
fn the_papers_config_runs_the_whole_pipeline() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = temp_dir("paper-pipe");
    let shipped = std::fs::read_to_string(format!("{root}/configs/esr_ea.yaml")).unwrap();
    let mut text = String::new();
    let mut trainer_seen = 0;
    for line in shipped.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        let line = if t.starts_with("num_generation:") {
            format!("{indent}num_generation: 1")
        } else if t.starts_with("num_individual:") {
            format!("{indent}num_individual: 2")
        } else if t.starts_with("num_elitism:") {
            format!("{indent}num_elitism: 1")
        } else if t.starts_with("epochs:") {
            trainer_seen += 1;
            format!("{indent}steps: 1")
        } else if t.starts_with("milestones:") {
            format!("{indent}milestones: [1]")
        } else if t.starts_with("milestones_unit:") {
            format!("{indent}milestones_unit: steps")
        } else {
            line.replace("../assets", &format!("{root}/assets"))
        };
        text.push_str(&line);
        text.push('\n');
    }
    assert_eq!(
        trainer_seen, 2,
        "esr_ea.yaml has a search and a full training"
    );
    text = text.replacen(
        "fully_train:",
        &format!(
            "pipeline: [nas, fully_train, benchmark_Val]\nbenchmark_Val:\n  dataset: {{test: {{root_HR: {root}/assets/val}}}}\nfully_train:"
        ),
        1,
    );
    let cfg = dir.join("paper.yaml");
    std::fs::write(&cfg, &text).unwrap();
    let run = dir.join("run");
    run_pipeline(&cfg, &run);
    assert_all_done(&run, &["search", "fully_train", "benchmark_Val", "report"]);
    // Every member got a fitness: a PSNR in history.csv, none failed.
    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{history}");
    for row in &rows {
        assert!(row.contains(",done,"), "{history}");
    }
    let best = final_result(&run, 1);
    assert!(best.val_psnr.is_finite());
    assert!(
        (315_000..=325_000).contains(&best.params),
        "{}",
        best.params
    );
    assert!(run.join("report.md").is_file());

    let o = support::cli::esr_ea(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--onnx",
        "--top",
        "1",
    ]);
    assert!(o.status.success(), "{}", support::cli::stderr(&o));
    assert!(run.join("export/1.onnx").is_file());
    let model = final_dir(&run, 1).join(files::MODEL);
    let up = dir.join("x2.png");
    let o = support::cli::esr_ea(&[
        "upscale",
        "--model",
        model.to_str().unwrap(),
        &format!("{root}/assets/train/astronaut.png"),
        up.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", support::cli::stderr(&o));
    assert_eq!(image::open(&up).unwrap().width(), 480);
    std::fs::remove_dir_all(&dir).unwrap();
}

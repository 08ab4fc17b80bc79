//! `esr-ea evaluate JOB.json`, the command a Slurm job runs: it trains one
//! member exactly as a local worker does (same losses, same fitness on CPU),
//! streams progress lines and writes its result.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::support;

use esr_ea::config::Config;
use esr_ea::engine::executor::jobfile::{self, JobPaths, JobSpec, ProgressTail};
use esr_ea::engine::{member_seed, Fitness, Job, Leg, LegEnd, LegStart, Outcome};
use esr_ea::search::{Member, Problem, Search, StopCheck};
use esr_ea::train::fitness::QuickTrain;
use support::cli::esr_ea;

const STEPS: usize = 3;

fn tiny_run(name: &str) -> (PathBuf, Config) {
    let dir = support::temp_dir(&format!("evaluate-{name}"));
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::create_dir_all(dir.join(jobfile::JOBS_DIR)).unwrap();
    let mut config = Config::embedded("quick").unwrap().config;
    config.search_trainer.steps = Some(STEPS);
    std::fs::write(dir.join("config.yaml"), config.to_yaml()).unwrap();
    (dir, config)
}

/// The search problem `config` describes.
fn problem_of(config: &Config) -> Problem {
    Problem::new(
        config.search_space.clone(),
        config.policy.clone(),
        config.range.clone(),
    )
    .unwrap()
}

/// A member of the tiny run as a local worker would train it: the fitness,
/// the job (whole training, no checks) and the member's seed.
struct Local {
    member: Member,
    seed: u64,
    fitness: QuickTrain,
    job: Job,
}

fn local_worker(dir: &Path, config: &Config, index: usize) -> Local {
    let problem = problem_of(config);
    let member = Search::new(problem.clone(), config.seed)
        .unwrap()
        .state
        .population[index]
        .clone();
    let seed = member_seed(config.seed, member.id);
    let fitness = QuickTrain::load(config, &esr_ea::data::DataCache::in_memory()).unwrap();
    let job = Job {
        arch: problem.space.arch(member.genes.clone()),
        member: member.clone(),
        seed,
        device: "cpu".into(),
        weights: dir.join("models/local.safetensors"),
        cancel: Arc::new(AtomicBool::new(false)),
        adopt: None,
        latency_ms: None,
        checks: Vec::new(),
        leg: Default::default(),
    };
    Local {
        member,
        seed,
        fitness,
        job,
    }
}

/// The job file the Slurm executor would write for `member` (whole
/// training, no checks).
fn spec_for(dir: &Path, member: &Member, seed: u64, paths: &JobPaths) -> JobSpec {
    JobSpec {
        kind: Default::default(),
        run_dir: dir.to_path_buf(),
        config: dir.join("config.yaml"),
        member: member.clone(),
        seed,
        device: "cpu".into(),
        weights: dir.join(format!("models/{}.safetensors", member.id)),
        progress: paths.progress.clone(),
        result: paths.result.clone(),
        checks: Vec::new(),
        leg: Default::default(),
    }
}

#[test]
fn a_job_trains_like_the_local_worker() {
    let (dir, config) = tiny_run("same");
    // The local worker's way.
    let Local {
        member,
        seed,
        fitness: local,
        job,
    } = local_worker(&dir, &config, 0);
    let mut local_losses = Vec::new();
    let expected = local
        .evaluate(&job, &mut |r| local_losses.push(r.loss))
        .into_evaluation()
        .unwrap();

    // The job's way, through the binary.
    let paths = JobPaths::new(&dir, member.id);
    let spec = spec_for(&dir, &member, seed, &paths);
    jobfile::write_spec(&paths.spec, &spec).unwrap();
    let out = esr_ea(&["evaluate", paths.spec.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(Outcome::Evaluated { evaluation }) = jobfile::read_result(&paths.result).unwrap()
    else {
        panic!("no evaluated result");
    };
    assert_eq!(evaluation.psnr, expected.psnr, "same seed, same fitness");
    assert_eq!(evaluation.ssim, expected.ssim);
    assert_eq!(evaluation.final_loss, expected.final_loss);
    let lines = ProgressTail::new(paths.progress.clone()).poll();
    assert_eq!(lines.len(), STEPS, "one progress line per step");
    let losses: Vec<f64> = lines.iter().map(|l| l.loss).collect();
    assert_eq!(losses, local_losses, "the same losses, step by step");
    assert!(spec.weights.is_file(), "weights saved");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_job_that_cannot_train_writes_the_reason_and_exits_non_zero() {
    let (dir, config) = tiny_run("fail");
    let problem = problem_of(&config);
    let member = Search::new(problem, config.seed).unwrap().state.population[0].clone();
    let paths = JobPaths::new(&dir, member.id);
    let spec = JobSpec {
        device: "tpu:0".into(),
        ..spec_for(&dir, &member, 1, &paths)
    };
    jobfile::write_spec(&paths.spec, &spec).unwrap();
    let out = esr_ea(&["evaluate", paths.spec.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tpu:0"), "{stderr}");
    match jobfile::read_result(&paths.result).unwrap() {
        Some(Outcome::Failed { reason }) => assert!(reason.contains("tpu:0"), "{reason}"),
        other => panic!("expected a failed result, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_job_stops_at_the_median_checks_it_carries_as_a_local_worker_does() {
    let (dir, config) = tiny_run("median");
    let Local {
        member,
        seed,
        fitness: local,
        job,
    } = local_worker(&dir, &config, 1);
    // Recorded at step 1; at step 2 no loss is below a limit of 0.
    let checks = vec![
        StopCheck {
            step: 1,
            window: 1,
            limit: None,
        },
        StopCheck {
            step: 2,
            window: 2,
            limit: Some(0.0),
        },
    ];
    let job = Job {
        checks: checks.clone(),
        ..job
    };
    let mut local_losses = Vec::new();
    let Outcome::Stopped { stop: expected } =
        local.evaluate(&job, &mut |r| local_losses.push(r.loss))
    else {
        panic!("the local worker should stop at step 2");
    };
    assert_eq!((expected.step, expected.steps), (2, STEPS));
    assert_eq!(expected.median, 0.0);
    assert_eq!(
        expected.checkpoint_losses,
        vec![local_losses[0], (local_losses[0] + local_losses[1]) / 2.0]
    );
    assert!(!job.weights.exists(), "a stopped member saves no weights");

    let paths = JobPaths::new(&dir, member.id);
    let spec = JobSpec {
        checks,
        ..spec_for(&dir, &member, seed, &paths)
    };
    jobfile::write_spec(&paths.spec, &spec).unwrap();
    let out = esr_ea(&["evaluate", paths.spec.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "a stop is a result, not a failure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped by the median rule after 2 of"));
    let Some(Outcome::Stopped { stop }) = jobfile::read_result(&paths.result).unwrap() else {
        panic!("no stopped result");
    };
    assert_eq!(
        (stop.step, stop.loss, stop.median, &stop.checkpoint_losses),
        (
            expected.step,
            expected.loss,
            expected.median,
            &expected.checkpoint_losses
        ),
        "the job decides exactly as the local worker"
    );
    assert_eq!(ProgressTail::new(paths.progress.clone()).poll().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_halving_legs_as_jobs_end_where_one_local_training_ends() {
    let (dir, config) = tiny_run("legs");
    let Local {
        member,
        seed,
        fitness: local,
        job: whole,
    } = local_worker(&dir, &config, 0);
    let mut local_losses = Vec::new();
    let expected = local
        .evaluate(&whole, &mut |r| local_losses.push(r.loss))
        .into_evaluation()
        .unwrap();

    // Leg 1 through the binary: to step 1, saved there.
    let checkpoint = dir.join(format!("models/{}.halving0", member.id));
    let paths = JobPaths::new(&dir, member.id);
    let spec = |leg: Leg| JobSpec {
        leg,
        ..spec_for(&dir, &member, seed, &paths)
    };
    let first = Leg {
        from: None,
        until: Some(LegEnd {
            rung: 0,
            step: 1,
            window: 1,
            checkpoint: checkpoint.clone(),
        }),
    };
    jobfile::write_spec(&paths.spec, &spec(first)).unwrap();
    let out = esr_ea(&["evaluate", paths.spec.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(Outcome::Waiting { rung }) = jobfile::read_result(&paths.result).unwrap() else {
        panic!("leg 1 ends waiting at its checkpoint");
    };
    assert_eq!((rung.rung, rung.step), (0, 1));
    assert_eq!(
        rung.loss, local_losses[0],
        "its loss is the local training's first"
    );
    assert!(checkpoint.join("trainer.json").is_file());
    assert!(
        !spec(Leg::default()).weights.exists(),
        "no weights before the end"
    );

    // Leg 2: from the checkpoint to the end.
    let second = Leg {
        from: Some(LegStart {
            checkpoint,
            rung: rung.clone(),
        }),
        until: None,
    };
    std::fs::remove_file(&paths.result).unwrap();
    jobfile::write_spec(&paths.spec, &spec(second)).unwrap();
    let out = esr_ea(&["evaluate", paths.spec.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(Outcome::Evaluated { evaluation }) = jobfile::read_result(&paths.result).unwrap()
    else {
        panic!("leg 2 ends evaluated");
    };
    assert_eq!(
        evaluation.psnr, expected.psnr,
        "same fitness as one training"
    );
    assert_eq!(evaluation.final_loss, expected.final_loss);
    assert_eq!(evaluation.checkpoint_losses, vec![rung.loss]);
    assert!(evaluation.seconds >= rung.seconds, "leg 1's time counted");
    let progress: Vec<f64> = ProgressTail::new(paths.progress.clone())
        .poll()
        .iter()
        .map(|p| p.loss)
        .collect();
    assert_eq!(
        progress,
        local_losses[1..],
        "leg 2 trains the remaining steps"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

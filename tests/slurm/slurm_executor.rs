//! The Slurm executor against a real Slurm: `scripts/slurm-local.sh start`
//! (which `.ci/run` runs) sets up a one-node cluster on this machine. Without
//! `sbatch` or a reachable controller every test here prints why it is
//! skipped and passes.
//!
//! Tiny searches (a few steps per member) keep each test to seconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

use esr_ea::engine::Event;
use esr_ea::search::{SearchState, Status};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_esr-ea")
}

/// Why the Slurm tests cannot run here, if they cannot (asked once per run).
fn slurm_missing() -> Option<String> {
    static WHY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    WHY.get_or_init(|| {
        match Command::new("sbatch").arg("--version").output() {
            Err(_) => return Some("sbatch not found (start a one-node Slurm with `sudo scripts/slurm-local.sh start`)".into()),
            Ok(o) if !o.status.success() => return Some("sbatch --version failed".into()),
            Ok(_) => {}
        }
        // A controller that is down makes sinfo retry for a long while: give it 5 s.
        let mut sinfo = Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let start = Instant::now();
        loop {
            match sinfo.try_wait() {
                Ok(Some(status)) if status.success() => {
                    let out = sinfo.wait_with_output().ok()?;
                    if out.stdout.is_empty() {
                        return Some("sinfo lists no node".into());
                    }
                    return None;
                }
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > Duration::from_secs(5) => {
                    let _ = sinfo.kill();
                    let _ = sinfo.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Some("no Slurm controller answers sinfo (run `sudo scripts/slurm-local.sh start`)".into())
    })
    .clone()
}

/// Returns from the test when no Slurm answers, saying so on the terminal
/// (past the test harness's capture, so a run without Slurm does not look
/// like one that tested it); fails instead where `ESR_EA_REQUIRE_SLURM=1`
/// (set by `.ci/run` once it started Slurm).
macro_rules! require_slurm {
    () => {
        if let Some(why) = slurm_missing() {
            assert!(
                std::env::var("ESR_EA_REQUIRE_SLURM").as_deref() != Ok("1"),
                "ESR_EA_REQUIRE_SLURM=1 but {why}"
            );
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\nskipped (no Slurm): {why}\n").as_bytes(),
            );
            return;
        }
    };
}

/// A folder for one test: config and run directory.
struct Case {
    dir: PathBuf,
}

impl Case {
    fn new(name: &str) -> Case {
        Case {
            dir: support::temp_dir(&format!("slurm-{name}")),
        }
    }

    fn run_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `configs/quick.yaml` at `generations` × 4 members, `steps` steps each,
    /// without a stopping rule (the tests add the one they check), plus
    /// `executor` lines.
    fn config(&self, generations: usize, steps: usize, executor: &str) -> PathBuf {
        let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
        let text = include_str!("../../configs/quick.yaml")
            .lines()
            .filter(|l| {
                let key = l.trim_start();
                !key.starts_with("successive_halving:") && !key.starts_with("median_stop:")
            })
            .collect::<Vec<_>>()
            .join("\n")
            // Validation on centred crops: what is compared is where a
            // member trains, not how long whole photographs take to score.
            .replace(
                "      root_HR: ../assets/val",
                "      root_HR: ../assets/val\n      val_crop: 48",
            )
            .replace("../assets", assets)
            .replace(
                "num_generation: 3 ",
                &format!("num_generation: {generations} "),
            );
        // The first `steps:` and `milestones:` lines are nas.trainer's.
        let text = first_line_replaced(&text, "    steps: ", &format!("    steps: {steps}"));
        let text = first_line_replaced(&text, "      milestones: [", "      milestones: [1000000]");
        // Named by its executor lines too: a local run and its Slurm twin
        // start side by side, each reading its own file.
        let kind = if executor.is_empty() {
            "local"
        } else {
            "executor"
        };
        let path = self
            .dir
            .join(format!("g{generations}-s{steps}-{kind}.yaml"));
        std::fs::write(&path, format!("{text}\n{executor}")).unwrap();
        path
    }
}

/// `text` with its first line that starts with `prefix` replaced by `line`.
fn first_line_replaced(text: &str, prefix: &str, line: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.starts_with(prefix) {
                done = true;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Case {
    fn drop(&mut self) {
        // Whatever a failed test left queued or running goes too.
        for run in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if let Ok(state) = read_state(&run.path()) {
                for job in state.jobs.values() {
                    let _ = Command::new("scancel").arg(job).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SLURM: &str = "executor:\n  type: slurm\n  poll_seconds: 0.3\n";

fn search(config: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("search")
        .arg("--headless")
        .arg("--config")
        .arg(config)
        .arg("--run-dir")
        .arg(run)
        // The executor is what is under test: the later stages (a 3000-step
        // local full training) are the pipeline's tests' business.
        .args(["--stop-after", "search"])
        .args(extra)
        // One thread unless a test says otherwise (the machine has few cores
        // and some tests run searches side by side).
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(mut cmd: Command) -> String {
    collect(cmd.spawn().unwrap())
}

/// Runs two commands side by side (a local run and its Slurm twin: the
/// Slurm one mostly waits on the scheduler) and returns both outputs.
/// Both are waited for before either is checked: a failing one leaves no
/// process behind.
fn finish_both(mut a: Command, mut b: Command) -> (String, String) {
    let first = a.spawn().unwrap();
    let second = b.spawn().unwrap();
    let (first, second) = (outcome(first), outcome(second));
    (succeeded(first), succeeded(second))
}

/// Waits for `child`, asserts it succeeded and returns its stdout + stderr.
fn collect(child: Child) -> String {
    succeeded(outcome(child))
}

/// Waits for `child`: whether it succeeded, and its stdout + stderr.
fn outcome(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The output of a command that must have succeeded.
fn succeeded((ok, text): (bool, String)) -> String {
    assert!(ok, "search failed:\n{text}");
    text
}

fn read_state(run: &Path) -> anyhow::Result<SearchState> {
    let text = std::fs::read_to_string(run.join("state.json"))?;
    Ok(serde_json::from_str(&text)?)
}

fn events(run: &Path) -> Vec<Event> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (at most 60 s) until `pred` holds for the run's events.
fn wait_events(run: &Path, what: &str, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let start = Instant::now();
    loop {
        let e = events(run);
        if pred(&e) {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; events: {e:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running_jobs(events: &[Event]) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for e in events {
        if let Event::JobState { id, job, state, .. } = e {
            out.retain(|(i, _)| i != id);
            if state == "RUNNING" {
                out.push((*id, job.clone()));
            }
        }
    }
    out
}

/// Slurm's active jobs (squeue without --states=all lists no ended ones).
fn active(job: &str) -> bool {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i", "-j", job])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == job)
}

fn submissions(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Log { message, .. } => {
                let (member, rest) = message.strip_prefix('#')?.split_once(": ")?;
                let job = rest
                    .strip_prefix("submitted as Slurm job ")
                    .or_else(|| rest.split(" submitted again as job ").nth(1))?;
                Some((member.parse().ok()?, job.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn stop_and_wait(run: &Path, mut child: Child) {
    let _ = Command::new(bin())
        .arg("control")
        .arg(run)
        .arg("stop")
        .output();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "search did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_search_on_slurm_ends_with_the_local_elites() {
    slurm_ends_like_local("same", &[]);
}

/// The random-search baseline runs on Slurm as the evolution does.
#[test]
fn a_random_search_on_slurm_ends_with_the_local_elites() {
    slurm_ends_like_local("random", &["--strategy", "random"]);
}

fn slurm_ends_like_local(name: &str, extra: &[&str]) {
    require_slurm!();
    let case = Case::new(name);
    let local_run = case.run_dir("local");
    let slurm_run = case.run_dir("slurm");
    let mut local_args = vec!["--executor", "local"];
    local_args.extend_from_slice(extra);
    // Two threads locally, the default one CPU a job on Slurm: CPU results
    // do not depend on the number of threads.
    let mut local = search(&case.config(2, 4, ""), &local_run, &local_args);
    local.env("RAYON_NUM_THREADS", "2");
    let mut on_slurm = search(&case.config(2, 4, SLURM), &slurm_run, extra);
    on_slurm.env_remove("RAYON_NUM_THREADS");
    let (_, out) = finish_both(local, on_slurm);
    assert!(
        out.contains("Slurm job"),
        "headless lines name the jobs:\n{out}"
    );
    let local = read_state(&local_run).unwrap();
    let slurm = read_state(&slurm_run).unwrap();
    assert!(local.finished && slurm.finished);
    let key = |s: &SearchState| {
        s.elites
            .iter()
            .map(|m| (m.id, m.genes.to_string(), m.fitness()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&slurm), key(&local), "same seed, same elites");
    assert!(slurm.jobs.is_empty(), "no job left in the state once done");
    let e = events(&slurm_run);
    assert!(
        e.iter().any(|e| matches!(e, Event::Progress { .. })),
        "progress streamed from the jobs"
    );
    assert!(e
        .iter()
        .any(|e| matches!(e, Event::JobState { state, node, .. } if state == "RUNNING" && !node.is_empty())));
}

#[test]
fn kill_cancels_the_slurm_job() {
    require_slurm!();
    let case = Case::new("kill");
    let run = case.run_dir("run");
    let config = case.config(1, 100_000, &format!("{SLURM}  max_in_flight: 1\n"));
    let child = search(&config, &run, &[]).spawn().unwrap();
    let e = wait_events(&run, "a running job", |e| !running_jobs(e).is_empty());
    let (id, job) = running_jobs(&e)[0].clone();
    assert!(active(&job));
    let ok = Command::new(bin())
        .arg("control")
        .arg(&run)
        .args(["kill", &id.to_string()])
        .output()
        .unwrap();
    assert!(ok.status.success());
    wait_events(&run, "the member killed", |e| {
        e.iter()
            .any(|e| matches!(e, Event::Killed { id: k } if *k == id))
    });
    assert!(!active(&job), "scancel: job {job} is gone from squeue");
    // The next member's job is submitted; stop leaves it to be adopted on resume.
    wait_events(&run, "the next submission", |e| submissions(e).len() >= 2);
    stop_and_wait(&run, child);
    let state = read_state(&run).unwrap();
    let m = state
        .history
        .iter()
        .find(|m| m.id == id)
        .expect("in history");
    assert_eq!(m.status, Status::Killed);
    let (next, next_job) = state.jobs.iter().next().expect("a job left for resume");
    assert_ne!(*next, id);
    assert!(
        active(next_job),
        "stop left job {next_job} queued or running"
    );
}

#[test]
fn a_job_that_exits_non_zero_is_a_failed_member_with_the_reason() {
    require_slurm!();
    let case = Case::new("fail");
    let run = case.run_dir("run");
    // The job of member #1 dies before esr-ea starts, the others run as usual.
    let wrapper = case.dir.join("esr-ea-or-crash.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$2\" in */1.json) echo 'simulated crash on the node' >&2; exit 3;; esac\nexec '{}' \"$@\"\n",
            bin()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = case.config(1, 3, &format!("{SLURM}  program: {}\n", wrapper.display()));
    finish(search(&config, &run, &[]));
    let state = read_state(&run).unwrap();
    let m = state
        .history
        .iter()
        .find(|m| m.id == 1)
        .expect("member 1 in history");
    let Status::Failed { reason } = &m.status else {
        panic!("member 1 should have failed, is {:?}", m.status);
    };
    for want in [
        "FAILED",
        "NonZeroExitCode",
        "exit code 3:0",
        "simulated crash on the node",
    ] {
        assert!(reason.contains(want), "'{want}' missing from: {reason}");
    }
    assert!(
        state
            .history
            .iter()
            .filter(|m| m.id != 1)
            .all(|m| matches!(m.status, Status::Evaluated(_) | Status::Cached(_))),
        "the other members are trained"
    );
}

#[test]
fn a_killed_coordinator_resumes_by_adopting_its_jobs() {
    require_slurm!();
    let case = Case::new("adopt");
    let run = case.run_dir("run");
    let config = case.config(1, 60, &format!("{SLURM}  max_in_flight: 2\n"));
    let mut child = search(&config, &run, &[]).spawn().unwrap();
    let e = wait_events(&run, "a running job", |e| !running_jobs(e).is_empty());
    let running = running_jobs(&e);
    child.kill().unwrap(); // SIGKILL: no checkpoint, no goodbye
    child.wait().unwrap();
    let before = submissions(&events(&run));
    let saved = read_state(&run).unwrap();
    for (id, job) in &running {
        assert_eq!(
            saved.jobs.get(id),
            Some(job),
            "state.json names the running job"
        );
        assert!(active(job), "job {job} runs on without its coordinator");
    }
    let mut resume = Command::new(bin());
    resume
        .args(["search", "--headless", "--stop-after", "search", "--resume"])
        .arg(&run)
        .env("RAYON_NUM_THREADS", "1");
    let out = finish(resume);
    let all = events(&run);
    for (id, job) in &running {
        let adopted = format!("#{id}: adopted Slurm job {job} from before the restart");
        assert!(
            all.iter()
                .any(|e| matches!(e, Event::Log { message, .. } if *message == adopted)),
            "'{adopted}' not logged:\n{out}"
        );
    }
    // Every member was submitted once: none of the adopted ones again.
    let subs = submissions(&all);
    let mut members: Vec<u64> = subs.iter().map(|(m, _)| *m).collect();
    members.sort_unstable();
    let n = members.len();
    members.dedup();
    assert_eq!(members.len(), n, "a member was submitted twice: {subs:?}");
    assert!(before.iter().all(|b| subs.contains(b)));
    let state = read_state(&run).unwrap();
    assert!(state.finished);
    assert!(state.jobs.is_empty());
    for (id, _) in &running {
        let m = state.history.iter().find(|m| m.id == *id).unwrap();
        assert!(
            matches!(m.status, Status::Evaluated(_)),
            "#{id}: {:?}",
            m.status
        );
    }
}

#[test]
fn pause_submits_nothing_new() {
    require_slurm!();
    let case = Case::new("pause");
    let run = case.run_dir("run");
    let config = case.config(1, 100_000, &format!("{SLURM}  max_in_flight: 1\n"));
    let child = search(&config, &run, &[]).spawn().unwrap();
    let e = wait_events(&run, "a running job", |e| !running_jobs(e).is_empty());
    let (id, _) = running_jobs(&e)[0].clone();
    let control = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("control")
            .arg(&run)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    control(&["pause"]);
    wait_events(&run, "paused", |e| {
        e.iter().any(|e| matches!(e, Event::Paused))
    });
    control(&["kill", &id.to_string()]);
    wait_events(&run, "the member killed", |e| {
        e.iter()
            .any(|e| matches!(e, Event::Killed { id: k } if *k == id))
    });
    // Its slot is free, but a paused search submits nothing.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        submissions(&events(&run)).len(),
        1,
        "submitted while paused"
    );
    control(&["resume"]);
    wait_events(&run, "a submission after resume", |e| {
        submissions(e).len() == 2
    });
    stop_and_wait(&run, child);
}

#[test]
fn the_median_rule_decides_on_slurm_as_it_does_locally() {
    require_slurm!();
    let specs = a_stopping_rule_decides_on_slurm_as_locally(
        "median",
        "    median_stop: {checkpoints: [0.25, 0.5], min_history: 2}\n",
    );
    // The limits travelled with the second generation's jobs.
    assert!(specs.iter().any(|s| s.contains("\"limit\"")), "{specs:?}");
}

#[test]
fn successive_halving_cuts_on_slurm_as_it_does_locally() {
    require_slurm!();
    let specs = a_stopping_rule_decides_on_slurm_as_locally(
        "halving",
        "    successive_halving: {checkpoints: [0.5], keep: 0.5}\n",
    );
    // A promoted member's job continued from its checkpoint on shared storage.
    assert!(specs.iter().any(|s| s.contains("\"from\"")), "{specs:?}");
}

/// Runs the same search with `rule` under `nas.trainer` locally and on
/// Slurm, asserts every member ends the same way, and returns the Slurm
/// job specs written last for each member.
fn a_stopping_rule_decides_on_slurm_as_locally(name: &str, rule: &str) -> Vec<String> {
    let case = Case::new(name);
    let with_rule = |executor: &str| {
        let path = case.config(2, 8, executor);
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "  trainer:\n",
            &format!("  trainer:\n{rule}"),
            1,
        );
        let path = path.with_extension("rule.yaml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let local_run = case.run_dir("local");
    let slurm_run = case.run_dir("slurm");
    finish_both(
        search(&with_rule(""), &local_run, &["--executor", "local"]),
        search(&with_rule(SLURM), &slurm_run, &[]),
    );
    // Each member's outcome, by id: jobs finish in any order on Slurm.
    let outcomes = |run: &Path| {
        let mut v: Vec<(u64, String, Option<f64>, Option<usize>)> = read_state(run)
            .unwrap()
            .history
            .iter()
            .map(|m| {
                let stopped_at = match &m.status {
                    Status::Stopped(s) => Some(s.step),
                    _ => None,
                };
                (m.id, m.status.name().to_string(), m.fitness(), stopped_at)
            })
            .collect();
        v.sort_by_key(|o| o.0);
        v
    };
    let local = outcomes(&local_run);
    assert_eq!(outcomes(&slurm_run), local);
    if name == "halving" {
        assert!(
            local.iter().any(|o| o.1 == "stopped"),
            "halving stops half of every generation: {local:?}"
        );
    }
    std::fs::read_dir(slurm_run.join("jobs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json") && !p.to_string_lossy().contains(".result")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// `esr-ea study` on Slurm: every training is a batch job that writes its
/// own record, and the table is the one a local study makes.
#[test]
fn a_study_on_slurm_gives_the_local_table() {
    require_slurm!();
    let case = Case::new("study");
    support::tiny::tiny_dataset(&case.dir, &["train/astronaut.png", "train/chelsea.png"]);
    let tiny = support::tiny::TinySearch {
        seed: 3,
        generations: 1,
        batch_size: 2,
        steps: 3,
        milestone: 2,
    };
    let config = case.dir.join("tiny-slurm.yaml");
    std::fs::write(&config, format!("{}\n{SLURM}", tiny.yaml())).unwrap();
    let study = |out: &Path, executor: &str| -> Command {
        let mut c = Command::new(bin());
        c.arg("study")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(out)
            .args(["--archs", "2", "--repeats", "1", "--repeat-archs", "1"])
            .args(["--reference-steps", "6", "--executor", executor])
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let (local, slurm) = (case.run_dir("local"), case.run_dir("slurm"));
    let (text_local, text) = finish_both(study(&local, "local"), study(&slurm, "slurm"));
    assert!(!text_local.contains("Slurm job"), "{text_local}");
    // 2 fitness + 1 repeat + 2 references, each its own job.
    assert_eq!(text.matches("submitted as Slurm job").count(), 5, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        5,
        "{text}"
    );
    let specs: Vec<String> = (0..5)
        .map(|i| std::fs::read_to_string(slurm.join(format!("jobs/{i}.json"))).unwrap())
        .collect();
    assert!(
        specs.iter().all(|s| s.contains("\"kind\": \"study_task\"")),
        "{}",
        specs[0]
    );
    let (a, b) = (
        support::state::study_table(&local),
        support::state::study_table(&slurm),
    );
    assert_eq!(a["compared"], 2, "{a}");
    assert_eq!(a, b);
}

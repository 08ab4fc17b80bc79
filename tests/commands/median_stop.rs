//! The two stopping rules of `nas.trainer`.
//!
//! `median_stop`: the median stopping rule stops members whose training
//! loss at a checkpoint is above the median of earlier generations, exactly
//! as the recorded curves say; its decisions replay identically with the
//! same seed, with two workers and after a SIGKILL and `--resume`; off, a
//! search writes what it wrote before; bad settings are one line naming the
//! key.
//!
//! `successive_halving`: each generation is cut at its checkpoints exactly
//! as the members' losses there say; a member that goes on ends with the
//! fitness of an uninterrupted training; the cuts replay identically with
//! the same seed, with two workers and after a SIGKILL and `--resume`.

use crate::support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use esr_ea::search::{SearchState, Status};
use support::cli::{esr_ea, one_line_error};
use support::state::elites_and_history;
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

/// The rule's settings in the tests' tiny search: two checkpoints, two
/// earlier curves enough for a median.
const RULE: &str = "    median_stop: {checkpoints: [0.25, 0.5], min_history: 2, window: 3}\n";
const STEPS: usize = 24;

/// A tiny search (3 generations x 4, `STEPS` steps, common random numbers)
/// with `extra` lines under `nas.trainer`.
fn config(dir: &Path, extra: &str) -> PathBuf {
    tiny_dataset(dir, &["train/astronaut.png", "train/chelsea.png"]);
    let yaml = TinySearch {
        seed: 11,
        generations: 3,
        batch_size: 2,
        steps: STEPS,
        milestone: 18,
    }
    .yaml()
    .replace(
        "  trainer:\n    steps",
        &format!("  trainer:\n    common_random_numbers: true\n{extra}    steps"),
    );
    let path = dir.join("median.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn run_search(config: &Path, run: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "search",
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_esr_ea(&args)
}

/// `search --resume RUN` to its end.
fn resume(run: &Path) -> String {
    run_esr_ea(&["search", "--resume", run.to_str().unwrap()])
}

fn run_esr_ea(args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.extend(["--headless", "--stop-after", "search"]);
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(&args)
        // Same threads in every run, so two workers train bit for bit as one.
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Starts a search of `config` into `run` and kills it with SIGKILL (no
/// chance to checkpoint) as soon as its `events.jsonl` satisfies `ready`.
fn kill_search_when(config: &Path, run: &Path, ready: impl Fn(&str) -> bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["search", "--config", config.to_str().unwrap(), "--run-dir"])
        .arg(run)
        .args(["--headless", "--stop-after", "search"])
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready(&std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "search too slow"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("search ended before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn state(run: &Path) -> SearchState {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

/// history.csv without its wall-clock column.
fn history_csv_without_seconds(run: &Path) -> String {
    let text = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let column = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "seconds")
        .unwrap();
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(column);
            cells.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each member's outcome by id, without wall-clock fields: what two runs
/// with different numbers of workers must agree on (their histories list
/// members in the order they finished, which may differ).
fn outcomes(run: &Path) -> Vec<(u64, String)> {
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    support::state::without_times(&mut state);
    let mut out: Vec<(u64, String)> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m.to_string()))
        .collect();
    out.sort();
    out
}

/// Recomputes every decision from the recorded curves, independently of
/// the engine: a member of generation g trained past checkpoint i unless
/// its mean loss there is above the median of the distinct architectures
/// of generations < g that reached i (at least two of them).
fn check_decisions(state: &SearchState) -> (usize, usize) {
    let curve = |s: &Status| match s {
        Status::Evaluated(e) => Some(e.checkpoint_losses.clone()),
        Status::Stopped(s) => Some(s.checkpoint_losses.clone()),
        _ => None,
    };
    let (mut stopped, mut survived) = (0, 0);
    let mut trained = HashSet::new();
    for m in &state.history {
        let Some(own) = curve(&m.status) else {
            continue;
        };
        // Copies of an architecture reuse its first outcome.
        if !trained.insert(m.genes.to_string()) {
            continue;
        }
        let mut seen = HashSet::new();
        let earlier: Vec<Vec<f64>> = state
            .history
            .iter()
            .filter(|e| e.generation < m.generation)
            .filter_map(|e| curve(&e.status).filter(|_| seen.insert(e.genes.to_string())))
            .collect();
        let mut stop_at = None;
        for (i, value) in own.iter().enumerate() {
            let mut at: Vec<f64> = earlier.iter().filter_map(|c| c.get(i).copied()).collect();
            if at.len() < 2 {
                continue;
            }
            at.sort_by(f64::total_cmp);
            let n = at.len();
            let median = if n % 2 == 1 {
                at[n / 2]
            } else {
                (at[n / 2 - 1] + at[n / 2]) / 2.0
            };
            if *value > median {
                stop_at = Some((i, median));
                break;
            }
        }
        match (&m.status, stop_at) {
            (Status::Stopped(s), Some((i, median))) => {
                assert_eq!(i + 1, own.len(), "#{} stopped where it first lost", m.id);
                assert_eq!(s.median, median, "#{}", m.id);
                assert_eq!(s.step, [STEPS / 4, STEPS / 2][i], "#{}", m.id);
                assert_eq!(s.steps, STEPS);
                stopped += 1;
            }
            (Status::Evaluated(e), None) => {
                assert_eq!(
                    e.checkpoint_losses.len(),
                    2,
                    "#{} has its whole curve",
                    m.id
                );
                if m.generation > 0 {
                    survived += 1;
                }
            }
            (status, expected) => panic!(
                "#{} (generation {}) is {} but the curves say {expected:?}",
                m.id,
                m.generation,
                status.name()
            ),
        }
    }
    (stopped, survived)
}

#[test]
fn the_rule_stops_exactly_the_members_the_curves_say_and_replays_with_two_workers() {
    let dir = temp_dir("median-stop");
    let cfg = config(&dir, RULE);
    let one = dir.join("one");
    let out = run_search(&cfg, &one, &[]);
    let s = state(&one);
    assert!(s.finished);
    let (stopped, survived) = check_decisions(&s);
    assert!(stopped >= 1, "the tiny search stops someone:\n{out}");
    assert!(
        survived >= 1,
        "and lets someone of a later generation finish"
    );
    assert!(
        s.history
            .iter()
            .filter(|m| m.generation == 0)
            .all(|m| !matches!(m.status, Status::Stopped(_))),
        "the first generation has no earlier curves: nobody is stopped"
    );
    // Stopped members have no fitness: never an elite.
    assert!(s
        .elites
        .iter()
        .all(|m| matches!(m.status, Status::Evaluated(_) | Status::Cached(_))));
    // Shown and counted.
    assert!(out.contains("stopped at step"), "{out}");
    assert!(
        out.contains(&format!("median stopping rule: stopped {stopped} of ")),
        "{out}"
    );
    let csv = std::fs::read_to_string(one.join("history.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",stopped_at,psnr_over_bicubic"),
        "{csv}"
    );
    assert!(csv.contains(",stopped,,,"), "{csv}");
    assert!(
        csv.contains(&format!(",{}/{STEPS}", STEPS / 4))
            || csv.contains(&format!(",{}/{STEPS}", STEPS / 2))
    );
    let config_yaml = std::fs::read_to_string(one.join("config.yaml")).unwrap();
    assert!(config_yaml.contains("median_stop:"), "{config_yaml}");

    // Same seed, same decisions; two workers finish in another order but
    // decide the same, since limits come from earlier generations only.
    let again = dir.join("again");
    run_search(&cfg, &again, &[]);
    assert_eq!(elites_and_history(&again), elites_and_history(&one));
    let two = dir.join("two");
    run_search(&cfg, &two, &["--devices", "cpu,cpu"]);
    assert_eq!(outcomes(&two), outcomes(&one));
    let steps = |s: &SearchState| {
        s.stopped
            .iter()
            .map(|(k, v)| (k.clone(), v.step, v.checkpoint_losses.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(&state(&two)), steps(&s));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_search_killed_with_sigkill_resumes_to_the_same_stops() {
    let dir = temp_dir("median-kill");
    let cfg = config(&dir, RULE);
    let straight = dir.join("straight");
    run_search(&cfg, &straight, &[]);
    let killed = dir.join("killed");
    // Kill in the middle of a later generation's training, after a stop.
    kill_search_when(&cfg, &killed, |events| {
        let last_is_progress = events
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"progress\""));
        events.contains("\"event\":\"stopped\"") && last_is_progress
    });
    let out = resume(&killed);
    assert!(out.contains("resuming run"), "{out}");
    assert_eq!(elites_and_history(&killed), elites_and_history(&straight));
    assert_eq!(
        history_csv_without_seconds(&killed),
        history_csv_without_seconds(&straight)
    );
    let (a, b) = (state(&killed), state(&straight));
    let key = |s: &SearchState| {
        let stops: Vec<_> = s
            .stopped
            .iter()
            .map(|(k, v)| (k.clone(), v.step, v.checkpoint_losses.clone()))
            .collect();
        let cache: Vec<_> = s.cache.iter().map(|(k, e)| (k.clone(), e.psnr)).collect();
        (stops, cache, s.cache_hits)
    };
    assert_eq!(key(&a), key(&b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn off_the_search_writes_what_it_wrote_before() {
    let dir = temp_dir("median-off");
    let cfg = config(&dir, "");
    let run = dir.join("off");
    let out = run_search(&cfg, &run, &[]);
    assert!(
        !out.contains("median stopping") && !out.contains("stopped at step"),
        "{out}"
    );
    let s = state(&run);
    assert!(s.stopped.is_empty());
    let state_text = std::fs::read_to_string(run.join("state.json")).unwrap();
    assert!(
        !state_text.contains("checkpoint_losses") && !state_text.contains("\"stopped\""),
        "no new field in the state"
    );
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "generation,id,genes,blocks,params,multi_adds,state,psnr,ssim,seconds,origin,hand_made,psnr_over_bicubic"
    );
    let config_yaml = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(!config_yaml.contains("median_stop"));
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(!events.contains("checkpoint_losses") && !events.contains("\"stopped\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_are_one_line_naming_the_key() {
    let dir = temp_dir("median-bad");
    for (setting, needle) in [
        (
            "    median_stop: {checkpoints: [0.5, 1.2]}\n",
            "nas.trainer.median_stop.checkpoints[1]: 1.2 is not allowed (allowed: fractions of the training strictly between 0 and 1",
        ),
        (
            "    median_stop: {checkpoints: [0.5, 0.25]}\n",
            "nas.trainer.median_stop.checkpoints: [0.5, 0.25] is not allowed",
        ),
        (
            "    median_stop: {checkpoints: []}\n",
            "nas.trainer.median_stop.checkpoints",
        ),
        (
            "    median_stop: {min_history: 0}\n",
            "nas.trainer.median_stop.min_history: expected a whole number >= 1",
        ),
        (
            "    median_stop: {window: half}\n",
            "nas.trainer.median_stop.window: expected a whole number >= 1",
        ),
        (
            "    median_stop: yes\n",
            "nas.trainer.median_stop: expected a mapping of settings",
        ),
    ] {
        let cfg = config(&dir, setting);
        let o = esr_ea(&["search", "--config", cfg.to_str().unwrap(), "--check"]);
        one_line_error(&o, needle);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Successive halving in the tiny search: cut at a quarter and at half-way,
/// half going on each time.
const HALVING: &str = "    successive_halving: {checkpoints: [0.25, 0.5], keep: 0.5, window: 3}\n";

/// Recomputes every cut from the recorded losses, independently of the
/// engine: in each generation, of the members trained (copies reuse a first
/// outcome), those at checkpoint i with the lowest losses (ties by id), half
/// rounded up, reach checkpoint i + 1; the others stop at i. Returns the
/// stops per generation.
fn check_cuts(state: &SearchState) -> Vec<usize> {
    let curve = |s: &Status| match s {
        Status::Evaluated(e) => Some(e.checkpoint_losses.clone()),
        Status::Stopped(s) => Some(s.checkpoint_losses.clone()),
        _ => None,
    };
    let mut trained = HashSet::new();
    let mut by_generation: Vec<Vec<(u64, Vec<f64>, &Status)>> = Vec::new();
    for m in &state.history {
        let Some(own) = curve(&m.status) else {
            continue;
        };
        if !trained.insert(m.genes.to_string()) {
            continue;
        }
        if by_generation.len() <= m.generation {
            by_generation.resize_with(m.generation + 1, Vec::new);
        }
        by_generation[m.generation].push((m.id, own, &m.status));
    }
    let mut stops = Vec::new();
    for (generation, members) in by_generation.iter().enumerate() {
        let mut alive: Vec<u64> = members.iter().map(|m| m.0).collect();
        let mut stopped_here = 0;
        for (i, step) in [STEPS / 4, STEPS / 2].into_iter().enumerate() {
            let mut at: Vec<(u64, f64)> = members
                .iter()
                .filter(|m| alive.contains(&m.0))
                .map(|m| (m.0, m.1[i]))
                .collect();
            at.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let kept = at.len().div_ceil(2);
            for (place, (id, loss)) in at.iter().enumerate() {
                let (_, own, status) = members.iter().find(|m| m.0 == *id).unwrap();
                if place < kept {
                    assert!(own.len() > i + 1 || matches!(status, Status::Evaluated(_)));
                    continue;
                }
                let Status::Stopped(s) = status else {
                    panic!("generation {generation}: #{id} ranks {place} of {} at step {step} but was not stopped", at.len());
                };
                assert_eq!((s.step, s.steps, s.loss), (step, STEPS, *loss), "#{id}");
                assert_eq!(s.median, at[kept - 1].1, "#{id}: cut at the last one kept");
                assert_eq!(own.len(), i + 1, "#{id}");
                stopped_here += 1;
            }
            alive = at[..kept].iter().map(|x| x.0).collect();
        }
        for id in alive {
            let (_, own, status) = members.iter().find(|m| m.0 == id).unwrap();
            assert!(
                matches!(status, Status::Evaluated(_)),
                "#{id} went on to the end"
            );
            assert_eq!(own.len(), 2, "#{id} has a loss at both checkpoints");
        }
        stops.push(stopped_here);
    }
    stops
}

#[test]
fn halving_cuts_each_generation_as_its_losses_say_and_replays_with_two_workers() {
    let dir = temp_dir("halving");
    let cfg = config(&dir, HALVING);
    let one = dir.join("one");
    let out = run_search(&cfg, &one, &[]);
    let s = state(&one);
    assert!(s.finished);
    let stops = check_cuts(&s);
    assert!(stops[0] >= 2, "4 members trained in generation 0: 2 stop at the first cut and 1 at the second, got {stops:?}\n{out}");
    assert!(s
        .elites
        .iter()
        .all(|m| matches!(m.status, Status::Evaluated(_) | Status::Cached(_))));
    assert!(out.contains("successive halving: stopped "), "{out}");
    assert!(out.contains("(successive halving)"), "{out}");
    let config_yaml = std::fs::read_to_string(one.join("config.yaml")).unwrap();
    assert!(config_yaml.contains("successive_halving:"), "{config_yaml}");
    let left: Vec<String> = std::fs::read_dir(one.join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("halving"))
        .collect();
    assert!(
        left.is_empty(),
        "checkpoints removed once a member ends: {left:?}"
    );

    // A member that went on ends exactly where an uninterrupted training
    // ends: generation 0 is the same with the rule off.
    let off = dir.join("off");
    let off_dir = dir.join("off-config");
    std::fs::create_dir_all(&off_dir).unwrap();
    run_search(&config(&off_dir, ""), &off, &[]);
    let off_state = state(&off);
    let fitness_of = |s: &SearchState, id: u64| {
        s.history
            .iter()
            .find(|m| m.id == id && m.generation == 0)
            .and_then(|m| m.fitness())
    };
    let mut compared = 0;
    for m in s.history.iter().filter(|m| m.generation == 0) {
        if let Status::Evaluated(_) = m.status {
            assert_eq!(
                fitness_of(&s, m.id),
                fitness_of(&off_state, m.id),
                "#{}",
                m.id
            );
            compared += 1;
        }
    }
    assert!(compared >= 1);

    let again = dir.join("again");
    run_search(&cfg, &again, &[]);
    assert_eq!(elites_and_history(&again), elites_and_history(&one));
    let two = dir.join("two");
    run_search(&cfg, &two, &["--devices", "cpu,cpu"]);
    assert_eq!(outcomes(&two), outcomes(&one));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_search_killed_with_sigkill_resumes_to_the_same_cuts() {
    let dir = temp_dir("halving-kill");
    let cfg = config(&dir, HALVING);
    let straight = dir.join("straight");
    run_search(&cfg, &straight, &[]);
    let killed = dir.join("killed");
    // Kill while a promoted member trains on from its checkpoint.
    kill_search_when(&cfg, &killed, |events| {
        let after_cut = events
            .rsplit_once("successive halving:")
            .is_some_and(|(_, rest)| rest.contains("\"progress\""));
        let last_is_progress = events
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"progress\""));
        after_cut && last_is_progress
    });
    let out = resume(&killed);
    assert!(out.contains("resuming run"), "{out}");
    assert_eq!(elites_and_history(&killed), elites_and_history(&straight));
    assert_eq!(
        history_csv_without_seconds(&killed),
        history_csv_without_seconds(&straight)
    );
    check_cuts(&state(&killed));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_halving_settings_are_one_line_naming_the_key() {
    let dir = temp_dir("halving-bad");
    for (setting, needle) in [
        (
            "    successive_halving: {keep: 1.0}\n",
            "nas.trainer.successive_halving.keep: 1.0 is not allowed (allowed: the share of the generation that continues",
        ),
        (
            "    successive_halving: {keep: none}\n",
            "nas.trainer.successive_halving.keep: \"none\" is not allowed",
        ),
        (
            "    successive_halving: {checkpoints: [0.5, 0.25]}\n",
            "nas.trainer.successive_halving.checkpoints: [0.5, 0.25] is not allowed",
        ),
        (
            "    successive_halving: {window: 0}\n",
            "nas.trainer.successive_halving.window: expected a whole number >= 1",
        ),
        (
            "    successive_halving: {}\n    median_stop: {}\n",
            "nas.trainer.successive_halving: cannot be on together with median_stop",
        ),
    ] {
        let cfg = config(&dir, setting);
        let o = esr_ea(&["search", "--config", cfg.to_str().unwrap(), "--check"]);
        one_line_error(&o, needle);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! The engine with a stand-in trainer: events, hand control, stop and resume.

use crate::support;

use std::time::{Duration, Instant};

use esr_ea::engine::{self, Command, Event, RunDir};
use esr_ea::search::{Search, Status, Strategy};
use support::*;

#[test]
fn a_full_search_runs_and_writes_its_files() {
    let dir = temp_run("full");
    let search = Search::new(problem(3), 1).unwrap();
    let (handle, rx) = start(
        search,
        RunDir::create(&dir).unwrap(),
        false,
        Stand::quick(0),
    );
    let done = handle.join().unwrap();
    assert!(done.state.finished);
    let events: Vec<Event> = rx.try_iter().collect();
    assert!(matches!(events[0], Event::RunStarted { .. }));
    assert!(matches!(
        events.last().unwrap(),
        Event::Finished { complete: true, .. }
    ));
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, Event::GenerationDone { .. })), 3);
    assert!(count(|e| matches!(e, Event::Progress { .. })) >= 4);
    let evaluated = count(|e| matches!(e, Event::Evaluated { .. }));
    let cached = count(|e| matches!(e, Event::Cached { .. }));
    assert_eq!(evaluated + cached, 24);
    for f in [
        "state.json",
        "events.jsonl",
        "history.csv",
        "arch.txt",
        "arch_child.txt",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 25, "header + one row per individual");
    // Generations count from 1 wherever a person reads them, as on screen.
    let gens: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        gens.into_iter().collect::<Vec<_>>(),
        ["1", "2", "3"],
        "{csv}"
    );
    let arch = std::fs::read_to_string(dir.join("arch.txt")).unwrap();
    assert_eq!(arch.matches("generation").count(), 3);
    assert!(arch.contains("generation 1\n") && arch.contains("generation 3\n"));
    assert!(!arch.contains("generation 0"), "{arch}");
    assert!(arch.contains("fitness: ") && arch.contains("arch: ['"));
    let jsonl = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), events.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pause_kill_mutate_inject_export() {
    let dir = temp_run("hand");
    let search = Search::new(problem(2), 2).unwrap();
    let ids: Vec<u64> = search.state.population.iter().map(|m| m.id).collect();
    let (handle, rx) = start(
        search,
        RunDir::create(&dir).unwrap(),
        false,
        Stand::quick(40),
    );
    handle.send(Command::Pause);
    wait_for(&rx, |e| matches!(e, Event::Paused));
    // The first member started before the pause lands; kill it while it trains.
    handle.send(Command::Kill { id: ids[0] });
    wait_for(&rx, |e| matches!(e, Event::Killed { id } if *id == ids[0]));
    // While paused nothing new starts.
    std::thread::sleep(Duration::from_millis(300));
    let started: Vec<Event> = rx
        .try_iter()
        .filter(|e| matches!(e, Event::Started { .. }))
        .collect();
    assert!(started.is_empty(), "{started:?}");
    // Kill a queued one, mutate another, inject a bad and a good gene list.
    handle.send(Command::Kill { id: ids[1] });
    wait_for(&rx, |e| matches!(e, Event::Killed { id } if *id == ids[1]));
    handle.send(Command::Mutate {
        id: ids[2],
        genes: None,
    });
    wait_for(
        &rx,
        |e| matches!(e, Event::Log { message, .. } if message.contains("mutated #")),
    );
    handle.send(Command::Inject {
        genes: vec!["S_4_16_99".into()],
    });
    wait_for(
        &rx,
        |e| matches!(e, Event::Log { level, message } if level == "warn" && message.contains("inject")),
    );
    handle.send(Command::Inject {
        genes: vec!["S_4_16_16 G_4_16_16 C_4_16_16 S_6_16_24 G_6_24_24".into()],
    });
    wait_for(
        &rx,
        |e| matches!(e, Event::Log { message, .. } if message.contains("injected #")),
    );
    handle.send(Command::Resume);
    wait_for(&rx, |e| matches!(e, Event::Resumed));
    wait_for(&rx, |e| {
        matches!(e, Event::GenerationDone { generation: 0, .. })
    });
    handle.send(Command::Export { top: 2, dir: None });
    wait_for(&rx, |e| matches!(e, Event::Exported { count: 2, .. }));
    let done = handle.join().unwrap();
    let first_gen: Vec<_> = done
        .state
        .history
        .iter()
        .filter(|m| m.generation == 0)
        .collect();
    assert_eq!(first_gen.len(), 9, "8 + one injected");
    let status = |id: u64| &first_gen.iter().find(|m| m.id == id).unwrap().status;
    assert_eq!(*status(ids[0]), Status::Killed);
    assert_eq!(*status(ids[1]), Status::Killed);
    assert!(first_gen
        .iter()
        .any(|m| m.origin.is_hand_made() && m.id == ids[2]));
    assert!(first_gen
        .iter()
        .any(|m| matches!(m.origin, esr_ea::search::Origin::Injected)));
    assert!(dir.join("export/1.yaml").is_file());
    assert!(dir.join("export/1.safetensors").is_file());
    let yaml = std::fs::read_to_string(dir.join("export/1.yaml")).unwrap();
    assert!(
        yaml.contains("genes_python: '['") || yaml.contains("genes_python: \"['"),
        "{yaml}"
    );
    // The export is made in the first generation, which a person calls 1.
    assert!(
        yaml.contains("generation: 1\n") && !yaml.contains("generation: 0"),
        "{yaml}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stop_then_resume_ends_like_an_uninterrupted_run() {
    stop_then_resume_matches(Strategy::Evolution);
}

/// The random-search baseline resumes exactly as the evolution does: its
/// draws come from the same saved generator.
#[test]
fn a_random_search_resumes_like_an_uninterrupted_one() {
    stop_then_resume_matches(Strategy::Random);
}

fn stop_then_resume_matches(strategy: Strategy) {
    let problem = |generations| {
        let mut p = problem(generations);
        p.policy.strategy = strategy;
        p
    };
    let straight_dir = temp_run(&format!("straight-{}", strategy.name()));
    let (h, _rx) = start(
        Search::new(problem(3), 3).unwrap(),
        RunDir::create(&straight_dir).unwrap(),
        false,
        Stand::quick(0),
    );
    let straight = h.join().unwrap();

    let dir = temp_run(&format!("stopped-{}", strategy.name()));
    let (h, rx) = start(
        Search::new(problem(3), 3).unwrap(),
        RunDir::create(&dir).unwrap(),
        false,
        Stand::quick(5),
    );
    wait_for(&rx, |e| {
        matches!(e, Event::GenerationDone { generation: 0, .. })
    });
    wait_for(&rx, |e| matches!(e, Event::Started { .. }));
    h.send(Command::Stop);
    let stopped = h.join().unwrap();
    assert!(!stopped.state.finished);
    assert!(matches!(
        rx.try_iter().last(),
        Some(Event::Finished {
            complete: false,
            ..
        })
    ));

    let run = RunDir::open(&dir).unwrap();
    let state = run.load_state().unwrap();
    let resumed = Search::resume(problem(3), state).unwrap();
    let (h, _rx) = start(resumed, run, true, Stand::quick(0));
    let resumed = h.join().unwrap();
    assert!(resumed.state.finished);
    assert_eq!(resumed.state.elites, straight.state.elites);
    assert_eq!(resumed.state.history, straight.state.history);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&straight_dir).unwrap();
}

#[test]
fn corrupt_state_is_reported_not_restarted() {
    let dir = temp_run("corrupt");
    let (h, _rx) = start(
        Search::new(problem(1), 4).unwrap(),
        RunDir::create(&dir).unwrap(),
        false,
        Stand::quick(0),
    );
    h.join().unwrap();
    let state = dir.join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, &text[..text.len() / 2]).unwrap();
    let err = RunDir::open(&dir)
        .unwrap()
        .load_state()
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt or truncated"), "{err}");
    std::fs::write(&state, "").unwrap();
    let err = RunDir::open(&dir)
        .unwrap()
        .load_state()
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    // A fresh create in the same folder is refused: results are never overwritten.
    let err = RunDir::create(&dir).unwrap_err().to_string();
    assert!(err.contains("already holds a search"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn commands_arrive_through_the_control_file() {
    let dir = temp_run("control");
    let search = Search::new(problem(2), 6).unwrap();
    let (handle, rx) = start(
        search,
        RunDir::create(&dir).unwrap(),
        false,
        Stand::quick(30),
    );
    wait_for(&rx, |e| matches!(e, Event::Started { .. }));
    let control = dir.join("control.jsonl");
    std::fs::write(&control, "not json\n").unwrap();
    wait_for(
        &rx,
        |e| matches!(e, Event::Log { level, message } if level == "warn" && message.contains("ignored line 'not json'")),
    );
    engine::control::send_command(&control, &Command::Pause).unwrap();
    wait_for(&rx, |e| matches!(e, Event::Paused));
    // Asked with a token, the search answers: refused with its reason, or done.
    let events = dir.join("events.jsonl");
    let wait = std::time::Duration::from_secs(20);
    let mut tail = esr_ea::tui::tail::Tail::new(&events);
    tail.poll();
    let mut ask = |command: &Command| {
        let ack = engine::control::ask_command(&control, command).unwrap();
        tail.wait_for(wait, |e| engine::control::answer_to(e, &ack))
            .expect("an answer")
    };
    let no = ask(&Command::Kill { id: 99 });
    assert!(!no.accepted);
    assert!(
        no.message
            .contains("kill 99: no queued or training member has that id"),
        "{no:?}"
    );
    let yes = ask(&Command::Pause);
    assert!(yes.accepted && yes.message == "already paused", "{yes:?}");
    engine::control::send_command(&control, &Command::Stop).unwrap();
    let done = handle.join().unwrap();
    assert!(!done.state.finished);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Paper length: 20 generations x 8 members of 25,000 steps each (the
/// paper's 500 epochs of DIV2K at batch 16) from a stand-in trainer. The
/// recorded progress is thinned, so `events.jsonl` stays small and a whole
/// replay (what `attach` reads first) builds its dashboard quickly. Prints
/// the figures; asserts the size bound.
#[test]
fn a_paper_length_run_keeps_its_event_log_small() {
    let dir = temp_run("paper-length");
    let search = Search::new(problem(20), 1).unwrap();
    let started = Instant::now();
    let (handle, rx) = start(
        search,
        RunDir::create(&dir).unwrap(),
        false,
        Stand {
            steps: 25_000,
            ..Stand::quick(0)
        },
    );
    let done = handle.join().unwrap();
    let run_s = started.elapsed().as_secs_f64();
    assert!(done.state.finished);
    let trained = rx
        .try_iter()
        .filter(|e| matches!(e, Event::Evaluated { .. }))
        .count();
    let log = dir.join("events.jsonl");
    let bytes = std::fs::metadata(&log).unwrap().len();

    let replay = Instant::now();
    let events = esr_ea::tui::tail::read_event_log(&log);
    let read_s = replay.elapsed().as_secs_f64();
    let app = app_from(&events, esr_ea::tui::Mode::Attached);
    let first = render(&app, 120, 40);
    let first_frame_s = replay.elapsed().as_secs_f64();
    let frames = Instant::now();
    for _ in 0..20 {
        render(&app, 120, 40);
    }
    let frame_ms = frames.elapsed().as_secs_f64() * 1e3 / 20.0;
    let progress = events
        .iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .count();
    let rss_mb = esr_ea::ops::mem::rss().map_or(0.0, |m| m.current as f64 / 1e6);
    eprintln!(
        "paper length: {trained} members trained x 25,000 steps in {run_s:.1} s; events.jsonl {:.1} MB, {} events ({progress} progress); replay to first frame {first_frame_s:.2} s (reading {read_s:.2} s); frame {frame_ms:.1} ms; test process resident {rss_mb:.0} MB",
        bytes as f64 / 1e6,
        events.len()
    );
    assert!(trained >= 100, "{trained}");
    assert!(bytes <= 50 << 20, "events.jsonl is {bytes} bytes");
    // At most 500 points a member, plus liveness points of a slow machine.
    assert!(progress <= trained * 600, "{progress} progress events");
    assert!(!text(&first).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

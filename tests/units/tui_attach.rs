//! The attach path without a terminal: the event log of a real engine
//! replays into the same dashboard state as the live channel, commands reach
//! the engine through `control.jsonl`, and the problem comes from the run's
//! `config.yaml`.

use crate::support;

use esr_ea::cli;
use esr_ea::config::Config;
use esr_ea::engine::{Command, Event, RunDir};
use esr_ea::search::Search;
use esr_ea::tui::{self, App, CommandSink, Mode};
use support::*;

#[test]
fn the_event_log_replays_into_the_live_state() {
    let dir = temp_run("replay");
    let (handle, rx) = start(
        Search::new(problem(2), 7).unwrap(),
        RunDir::create(&dir).unwrap(),
        false,
        Stand::timed(0),
    );
    handle.join().unwrap();
    let live: Vec<Event> = rx.try_iter().collect();
    let from_log = tui::read_event_log(&dir.join("events.jsonl"));
    assert_eq!(from_log, live);
    let a = app_from(&live, Mode::InProcess);
    let b = app_from(&from_log, Mode::Attached);
    assert_eq!(a.view.population, b.view.population);
    assert_eq!(a.view.elites, b.view.elites);
    assert_eq!(a.view.summaries, b.view.summaries);
    assert_eq!(a.view.best, b.view.best);
    assert_eq!(
        text(&render(&a, 120, 40)),
        text(&render(&b, 120, 40)).replace("  attached", "          ")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn commands_reach_a_running_engine_through_the_control_file() {
    let dir = temp_run("control");
    let (handle, rx) = start(
        Search::new(problem(2), 8).unwrap(),
        RunDir::create(&dir).unwrap(),
        false,
        Stand::timed(20),
    );
    wait_for(&rx, |e| matches!(e, Event::Started { .. }));
    let sink = CommandSink::ControlFile(dir.join("control.jsonl"));
    sink.send(Command::Pause).unwrap();
    wait_for(&rx, |e| matches!(e, Event::Paused));
    // A second viewer writes to the same file.
    let other = CommandSink::ControlFile(dir.join("control.jsonl"));
    other.send(Command::Stop).unwrap();
    let done = handle.join().unwrap();
    assert!(!done.state.finished, "stopped early, resumable");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_problem_comes_from_the_run_config() {
    let dir = temp_run("config");
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config::embedded("quick").unwrap().config;
    std::fs::write(dir.join("config.yaml"), config.to_yaml()).unwrap();
    let problem = esr_ea::engine::rundir::problem_of_run(&dir).unwrap();
    assert_eq!(problem.range, config.range);
    assert_eq!(problem.space, config.search_space);
    // The attached dashboard checks injected genes against that budget.
    let app = App::new(problem, Mode::Attached);
    assert_eq!(app.view.run.max_params, config.range.max_params);
    std::fs::write(dir.join("config.yaml"), "nas: [").unwrap();
    let err = esr_ea::engine::rundir::problem_of_run(&dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = cli::attach::attach(&dir).unwrap_err().to_string();
    assert!(err.contains("not a run directory"), "{err}");
}

#[test]
fn one_clock_from_the_event_stamps_that_stops_when_the_run_ends() {
    let dir = temp_run("clock");
    let (handle, rx) = start(
        Search::new(problem(1), 9).unwrap(),
        RunDir::create(&dir).unwrap(),
        false,
        Stand::timed(5),
    );
    handle.join().unwrap();
    let live: Vec<Event> = rx.try_iter().collect();
    // Every line carries the run's clock, never going back.
    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let stamps: Vec<f64> = log
        .lines()
        .map(|l| esr_ea::engine::clock::stamp_of(l).unwrap_or_else(|| panic!("no t: {l}")))
        .collect();
    assert_eq!(stamps.len(), live.len());
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(*stamps.last().unwrap() > 0.0);
    // Attached: the view's clock is the stamps', and it stops at the end.
    let mut tail = tui::tail::Tail::new(&dir.join("events.jsonl"));
    let mut app = App::new(problem(1), Mode::Attached);
    for (event, t) in tail.poll_stamped() {
        app.view.stamp(t.unwrap());
        app.apply(&event);
    }
    let end = std::time::Duration::from_secs_f64(*stamps.last().unwrap());
    assert!(matches!(app.view.state(), tui::RunState::Finished));
    std::thread::sleep(std::time::Duration::from_millis(30));
    app.view.tick();
    assert!(
        app.view.elapsed().abs_diff(end) < std::time::Duration::from_millis(2),
        "{:?} vs {end:?}",
        app.view.elapsed()
    );
    // In-process: the view reads the same clock the stamps came from, and
    // it stops at the end too.
    let clock = esr_ea::engine::clock::RunClock::of_run(&dir);
    let mut here = App::new(problem(1), Mode::InProcess);
    here.view.set_run_clock(clock);
    for e in &live {
        here.apply(e);
    }
    let stopped = here.view.elapsed();
    assert!(stopped >= end, "{stopped:?} vs {end:?}");
    std::thread::sleep(std::time::Duration::from_millis(30));
    here.view.tick();
    assert_eq!(here.view.elapsed(), stopped);
    // One sentence for the search's end, with that clock.
    let finished: Vec<&String> = app
        .view
        .log
        .iter()
        .map(|l| &l.text)
        .filter(|t| t.starts_with("search finished in") || t.starts_with("search done in"))
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    let mut printer = cli::headless::Printer::default();
    let mut lines = Vec::new();
    for e in live.iter().chain([&Event::StageDone {
        stage: "search".into(),
        seconds: 99.0,
    }]) {
        lines.extend(printer.handle(e));
    }
    let ends: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("search finished in") || l.starts_with("search done in"))
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    // A resumed run's clock goes on from the last stamp, not from 0.
    let again = esr_ea::engine::clock::last_stamp(&dir.join("events.jsonl"));
    assert_eq!(again, *stamps.last().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

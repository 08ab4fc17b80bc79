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

//! `esr-ea attach <run dir>`: the live dashboard on a search that runs
//! elsewhere on this machine (e.g. `esr-ea search --headless` under nohup).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use crate::engine::rundir::{files, problem_of_run};
use crate::tui::{run_dashboard_with_state, App, CommandSink, EventSource, Exit, Mode};

/// Arguments of `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The run directory of the search (`runs/<name>`).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
}

/// Runs `attach`.
pub fn run(args: &AttachArgs) -> Result<()> {
    attach(&args.run_dir)
}

/// `esr-ea attach <run dir>`: the dashboard on a search running elsewhere on
/// this machine. Its history is replayed from `events.jsonl`, new events are
/// followed, commands go through `control.jsonl`. Leaving without stopping
/// keeps the search running.
pub fn attach(run_dir: &Path) -> Result<()> {
    if !run_dir.is_dir() {
        bail!(
            "{} is not a run directory (no such folder)",
            run_dir.display()
        );
    }
    let events = run_dir.join(files::EVENTS);
    if !events.is_file() {
        bail!(
            "{} has no {}: is a search running there? (start one with esr-ea search --run-dir {})",
            run_dir.display(),
            files::EVENTS,
            run_dir.display()
        );
    }
    if !std::io::stdout().is_terminal() {
        bail!(
            "attach needs a terminal; to follow the run in a script, read {}",
            events.display()
        );
    }
    let problem = problem_of_run(run_dir)?;
    let app = App::new(problem, Mode::Attached).with_run_dir(run_dir);
    let sink = CommandSink::ControlFile(run_dir.join(files::CONTROL));
    let (exit, app) = run_dashboard_with_state(EventSource::EventLog(events), sink, app)?;
    match exit {
        Exit::Detached if app.view.paused() => println!(
            "detached: the search stays paused (no new training starts); resume it with esr-ea attach {} and p",
            run_dir.display()
        ),
        Exit::Detached => println!(
            "detached: the search keeps running; watch it again with esr-ea attach {}",
            run_dir.display()
        ),
        Exit::Stopped => println!(
            "asked the search to stop: it checkpoints; continue it with esr-ea search --resume {}",
            run_dir.display()
        ),
        Exit::Left | Exit::Signal => {}
    }
    Ok(())
}

//! `esr-ea search`: check a config, or run (or resume) a whole search.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::headless::Printer;
use crate::config::{Config, Loaded};
use crate::device::DeviceName;
use crate::engine::{self, Command, EngineSetup, Inbox, RunDir};
use crate::search::{plan, Problem, Search, Status};
use crate::train::fitness::QuickTrain;
use crate::train::trainer::TrainPlan;

/// Arguments of `search`.
#[derive(Debug, Args, Default)]
pub struct SearchArgs {
    /// Configuration file (YAML; a Vega `esr_ea.yml` works too). Default: the
    /// embedded `configs/quick.yaml`, a whole search in minutes on a laptop CPU.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Only validate the config and print the plan.
    #[arg(long)]
    pub check: bool,
    /// Run directory (default `runs/<config>-<date>-<time>`).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue the search saved in this run directory.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Devices to train on, one worker each: `cpu`, or `cuda:0,cuda:1` with the `cuda` build.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "cpu",
        value_delimiter = ','
    )]
    pub devices: Vec<DeviceName>,
    /// Print progress lines instead of the dashboard (automatic when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Override the config's seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Loads the config named on the command line, or the embedded default;
/// prints its warnings.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    let Loaded { config, warnings } = match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded("quick")?,
    };
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(config)
}

fn problem_of(config: &Config) -> Result<Problem> {
    Problem::new(
        config.search_space.clone(),
        config.policy.clone(),
        config.range.clone(),
    )
    .with_context(|| config.source.clone())
}

/// A default run directory name: `runs/<config stem>-YYYYmmdd-HHMMSS` (UTC).
fn default_run_dir(config: &Config) -> PathBuf {
    let stem = Path::new(config.source.trim_start_matches("embedded "))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "search".into());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    PathBuf::from("runs").join(format!(
        "{stem}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Runs `search`.
pub fn run(args: &SearchArgs) -> Result<()> {
    if args.devices.is_empty() {
        bail!("--devices: name at least one device (cpu, cuda:0, ...)");
    }
    for d in &args.devices {
        d.open().context("--devices")?;
    }
    let (config, run, search, resumed) = match &args.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let config = run.load_config()?;
            let problem = problem_of(&config)?;
            let state = run.load_state()?;
            let search = Search::resume(problem, state)?;
            if search.state.finished {
                bail!(
                    "the search in {} has already finished; export it with `esr-ea export --run {}`",
                    dir.display(),
                    dir.display()
                );
            }
            (config, run, search, true)
        }
        None => {
            let mut config = load_config(args.config.as_deref())?;
            if let Some(seed) = args.seed {
                config.seed = seed;
            }
            let problem = problem_of(&config)?;
            config.validate_paths()?;
            if args.check {
                println!("config: {} (ok)", config.source);
                print!("{}", plan::describe(&problem, config.seed, 200)?);
                let t = &config.search_trainer;
                println!(
                    "training per individual: {} (lr {}, milestones {:?}, gamma {})",
                    t.steps
                        .map(|s| format!("{s} steps"))
                        .unwrap_or_else(|| format!("{} epochs", t.epochs)),
                    t.lr,
                    t.milestones,
                    t.gamma
                );
                println!(
                    "data: train {}, validation {}",
                    config.dataset.train.root_hr.display(),
                    config.dataset.test.root_hr.display()
                );
                return Ok(());
            }
            let search = Search::new(problem, config.seed)?;
            let dir = args
                .run_dir
                .clone()
                .unwrap_or_else(|| default_run_dir(&config));
            let run = RunDir::create(&dir)?;
            run.write_config(&config.to_yaml())?;
            (config, run, search, false)
        }
    };
    if args.check {
        println!(
            "run {}: resumable at generation {}",
            run.path().display(),
            search.state.generation + 1
        );
        return Ok(());
    }
    let scale = config.search_space.scale;
    let train = Arc::new(crate::train::datasets::load_split(
        &config.dataset.train,
        scale,
    )?);
    let val = Arc::new(crate::train::datasets::load_split(
        &config.dataset.test,
        scale,
    )?);
    let plan = TrainPlan::from_config(&config.search_trainer, &config.dataset.train, train.len());
    let fitness = Arc::new(QuickTrain {
        train,
        val,
        plan,
        latency: config.latency_limit.clone(),
    });
    let run_path = run.path().to_path_buf();
    let elites_to_export = config.policy.num_elitism;
    let headless = args.headless || !std::io::stdout().is_terminal();
    let mut app = None;
    if !headless {
        let mut dashboard =
            crate::tui::App::new(search.problem.clone(), crate::tui::Mode::InProcess)
                .with_run_dir(run.path());
        if resumed {
            // Replay the history before the engine appends to the log, so nothing is seen twice.
            for e in crate::tui::read_event_log(&run.file(engine::rundir::files::EVENTS)) {
                dashboard.apply(&e);
            }
        }
        app = Some(dashboard);
    }
    let (tx, rx) = mpsc::channel();
    let handle = engine::spawn(
        EngineSetup {
            search,
            run,
            seed: config.seed,
            devices: args.devices.iter().map(DeviceName::to_string).collect(),
            resumed,
            fitness,
        },
        tx,
    );
    stop_on_signals(handle.sender());
    match app {
        Some(app) => {
            crate::tui::run_dashboard(
                crate::tui::EventSource::Engine(rx),
                crate::tui::CommandSink::Engine(handle.sender()),
                app,
            )?;
        }
        None => {
            let mut printer = Printer::default();
            for event in rx {
                for line in printer.handle(&event) {
                    say(&line);
                }
            }
        }
    }
    let search = handle.join()?;
    if search.state.finished && search.state.elites.is_empty() {
        bail!(
            "the search finished but no member got a fitness: {} (reasons in {})",
            failure_counts(&search.state),
            run_path.join(engine::rundir::files::HISTORY).display()
        );
    }
    if search.state.finished {
        let out = run_path.join("export");
        let n = crate::engine::export::export_top(
            &search.state,
            &search.problem.space,
            &run_path,
            elites_to_export,
            &out,
        )?;
        say(&format!(
            "exported the best {n} architectures with their weights to {}",
            out.display()
        ));
        say(&format!(
            "  upscale an image: esr-ea upscale --model {}/1.safetensors IN.png OUT.png",
            out.display()
        ));
    } else {
        say(&format!(
            "resume with: esr-ea search --resume {}",
            run_path.display()
        ));
    }
    Ok(())
}

/// `3 over max_latency_ms, 1 failed otherwise` for a run that trained nothing.
fn failure_counts(state: &crate::search::SearchState) -> String {
    let failed = |m: &&crate::search::Member| matches!(m.status, Status::Failed { .. });
    let over = |m: &&crate::search::Member| matches!(&m.status, Status::Failed { reason } if reason.contains("> max_latency_ms"));
    let all = state.history.iter().filter(failed).count();
    let rejected = state.history.iter().filter(over).count();
    format!(
        "{rejected} over max_latency_ms, {} failed otherwise, {} killed",
        all - rejected,
        state
            .history
            .iter()
            .filter(|m| m.status == Status::Killed)
            .count()
    )
}

/// Prints a line; after a dropped SSH connection stdout may be gone, and
/// losing a message must not turn a clean checkpoint into a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// SIGINT, SIGTERM and SIGHUP (a dropped SSH connection) checkpoint and stop.
fn stop_on_signals(inbox: mpsc::Sender<Inbox>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if inbox.send(Inbox::Command(Command::Stop)).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
    }
}

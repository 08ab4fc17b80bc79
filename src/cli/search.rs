//! `esr-ea search`: check a config, or run (or resume) a whole search.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::executor_args::SlurmArgs;
use super::headless::Printer;
use crate::config::Config;
use crate::device::DeviceWorkers;
use crate::engine::pipeline::{self, PipelineEnd, StopAfter};
use crate::engine::{self, start, Command, Inbox};
use crate::search::Strategy;

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
    /// Devices to train on, one worker each: `cpu`, or `cuda:0,cuda:1` with the
    /// `cuda` build; repeat a device or write `cuda:0*4` for several workers on it.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "cpu",
        value_delimiter = ','
    )]
    pub devices: Vec<DeviceWorkers>,
    /// Print progress lines instead of the dashboard (automatic when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Override the config's seed (a resumed run keeps its own).
    #[arg(long, conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// End after this stage: `search` (no full training) or `train` (no
    /// benchmarks, no report); `--resume` runs the rest later.
    #[arg(long, value_name = "STAGE", value_enum)]
    pub stop_after: Option<StopAfterArg>,
    /// How generations after the first are made: `evolution` (elites,
    /// mutation, crossover) or `random` (fresh draws at the same budget: the
    /// baseline); default: the config's `nas.search_algorithm.type`.
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub strategy: Option<StrategyArg>,
    /// Where trainings run: `local` (worker threads, --devices) or `slurm`
    /// (one batch job each); default: the config's `executor.type`, else local.
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Elites, mutation and crossover.
    Evolution,
    /// Fresh random networks every generation.
    Random,
}

impl From<StrategyArg> for Strategy {
    fn from(arg: StrategyArg) -> Strategy {
        match arg {
            StrategyArg::Evolution => Strategy::Evolution,
            StrategyArg::Random => Strategy::Random,
        }
    }
}

/// The stage `--stop-after` ends a run after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StopAfterArg {
    /// After the search: no full training.
    Search,
    /// After the full training: no benchmarks, no report.
    Train,
}

/// A config's warnings (unknown keys, ignored Vega keys) on their way to
/// the user: printed at once, or handed to the run's log; printed when
/// dropped if neither happened (a run that failed before its log began).
#[derive(Debug, Default)]
struct ConfigWarnings {
    pending: Vec<String>,
    printed: bool,
}

impl ConfigWarnings {
    fn new(warnings: Vec<String>, print_now: bool) -> ConfigWarnings {
        if print_now {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
        }
        ConfigWarnings {
            pending: warnings,
            printed: print_now,
        }
    }

    /// The warnings for the run's log (they are shown there from now on).
    fn into_log(mut self) -> Vec<String> {
        self.printed = true;
        std::mem::take(&mut self.pending)
    }
}

impl Drop for ConfigWarnings {
    fn drop(&mut self) {
        if !self.printed {
            for w in &self.pending {
                eprintln!("warning: {w}");
            }
        }
    }
}

/// The devices named by `--devices`, each opened once to fail early.
fn open_devices(args: &SearchArgs) -> Result<()> {
    if args.devices.is_empty() {
        bail!("--devices: name at least one device (cpu, cuda:0, ...)");
    }
    for d in &args.devices {
        d.device.open().context("--devices")?;
    }
    Ok(())
}

/// The config of a new run: the file (or the embedded default) with the
/// command line's overrides applied; its warnings printed now when
/// `print_now`, else kept for the run's log.
fn configured(args: &SearchArgs, print_now: bool) -> Result<(Config, ConfigWarnings)> {
    let loaded = super::load_config_with_warnings(args.config.as_deref())?;
    let warnings = ConfigWarnings::new(loaded.warnings, print_now);
    let mut config = loaded.config;
    if let Some(strategy) = args.strategy {
        config.policy.strategy = strategy.into();
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.executor = args.slurm.apply(&config.executor)?;
    Ok((config, warnings))
}

/// Runs `search --check`: a new run's config checked (the plan and every
/// problem found, not only the first), or a saved run's state read without
/// taking its lock. Nothing is trained or written.
pub fn check(args: &SearchArgs) -> Result<()> {
    open_devices(args)?;
    match &args.resume {
        None => {
            let (config, _printed) = configured(args, true)?;
            check_config(&config, &args.devices)
        }
        Some(dir) => {
            let started = start::resume(dir, true, |executor| args.slurm.apply(executor))?;
            println!(
                "run {}: resumable at generation {}",
                started.run.path().display(),
                started.search.state.generation + 1
            );
            Ok(())
        }
    }
}

/// Runs `search` (`--check` goes to [`check`]).
pub fn run(args: &SearchArgs) -> Result<()> {
    debug_assert!(!args.check, "search --check is dispatched to check()");
    open_devices(args)?;
    let headless = args.headless || !std::io::stdout().is_terminal();
    let (started, warnings) = match &args.resume {
        None => {
            // Seen where the user looks: printed now unless the run prints
            // them in its own log (headless); the dashboard's log gets them too.
            let (config, warnings) = configured(args, !headless)?;
            let started = start::fresh(config, &args.devices, args.run_dir.clone())?;
            (started, warnings)
        }
        Some(dir) => (
            start::resume(dir, false, |executor| args.slurm.apply(executor))?,
            ConfigWarnings::default(),
        ),
    };
    let run_path = started.run.path().to_path_buf();
    let options = start::LaunchOptions {
        devices: args.devices.clone(),
        stop_after: args.stop_after.map(|stage| match stage {
            StopAfterArg::Search => StopAfter::Search,
            StopAfterArg::Train => StopAfter::Train,
        }),
        report: Box::new(write_report),
        notes: warnings
            .into_log()
            .into_iter()
            .map(|w| ("warn".to_string(), format!("config: {w}")))
            .collect(),
    };
    let Some(mut launch) = start::launch(started, options, Arc::new(|line| eprintln!("{line}")))?
    else {
        say(&format!(
            "every stage of {} has finished",
            run_path.display()
        ));
        final_lines(&run_path);
        return Ok(());
    };
    let mut app = None;
    if !headless {
        let mut dashboard = crate::tui::App::new(launch.problem, crate::tui::Mode::InProcess)
            .with_run_dir(&run_path);
        // The run's clock goes on from the last stamp in events.jsonl, from now.
        dashboard
            .view
            .set_run_clock(engine::clock::RunClock::of_run(&run_path));
        if launch.has_history {
            // Replay the history before the engine appends to the log, so nothing is seen twice.
            for e in crate::tui::read_event_log(&run_path.join(engine::rundir::files::EVENTS)) {
                dashboard.apply(&e);
            }
        }
        app = Some(dashboard);
    }
    let (tx, rx) = mpsc::channel();
    // Held until this function returns: one search per run directory.
    let _lock = launch.lock.take();
    let handle = pipeline::spawn(launch.pipeline, tx);
    stop_on_signals(handle.sender());
    match app {
        Some(app) => {
            crate::tui::run_dashboard(
                crate::tui::EventSource::Engine(rx),
                crate::tui::CommandSink::Engine(handle.sender()),
                app,
            )?;
            // Leaving the dashboard never leaves stages running unseen: they checkpoint.
            let _ = handle.sender().send(Inbox::Command(Command::Stop));
        }
        None => {
            let mut printer = Printer::for_run(&run_path);
            for event in rx {
                for line in printer.handle(&event) {
                    say(&line);
                }
            }
        }
    }
    let outcome = handle.join()?;
    if let Some((out, n)) = &outcome.exported {
        say(&format!(
            "exported the best {n} architectures with their weights to {}",
            out.display()
        ));
    }
    match outcome.end {
        PipelineEnd::Complete => {
            final_lines(&run_path);
            Ok(())
        }
        PipelineEnd::StoppedAfter(stage) => {
            say(&format!(
                "stopped after {stage} as asked; run the later stages with: esr-ea search --resume {}",
                run_path.display()
            ));
            if stage == "search" {
                say(&format!(
                    "  upscale an image: esr-ea upscale --model {}/1.safetensors IN.png OUT.png",
                    run_path.join("export").display()
                ));
            } else {
                final_lines(&run_path);
            }
            Ok(())
        }
        PipelineEnd::Interrupted => {
            let what = if outcome.search.state.finished {
                "pipeline"
            } else {
                "search"
            };
            Err(super::exit::Interrupted(format!(
                "{what} interrupted, state saved: resume with: esr-ea search --resume {}",
                run_path.display()
            ))
            .into())
        }
    }
}

/// The report stage's writer: the one place the report module is called.
fn write_report(run_dir: &Path) -> Result<()> {
    crate::report::write_report(run_dir).map(|_| ())
}

/// The run's last lines: where the model and the report are, and how to use the model.
fn final_lines(run_dir: &Path) {
    use engine::results::{files, final_dir, read_json, FinalResult};
    let dir = final_dir(run_dir, 1);
    if let Ok(Some(r)) = read_json::<FinalResult>(&dir.join(files::RESULT)) {
        say(&format!(
            "fully trained model: {} ({} params, {:.3} dB on the validation images, {:+.3} dB over bicubic {:.3})",
            dir.join(files::MODEL).display(),
            crate::format::thousands(r.params),
            r.val_psnr,
            r.val_psnr - r.bicubic_val_psnr,
            r.bicubic_val_psnr
        ));
    }
    let report = run_dir.join("report.md");
    if report.is_file() {
        say(&format!(
            "report: {} (pareto.png, progress.png beside it)",
            report.display()
        ));
    }
    if dir.join(files::MODEL).is_file() {
        say(&format!(
            "upscale an image: esr-ea upscale --model {} IN.png OUT.png",
            dir.join(files::MODEL).display()
        ));
    }
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

/// A new run's check: the plan and every problem found (not only the
/// first). The plan is printed whatever the data folders say; any problem
/// makes it an error.
fn check_config(config: &Config, devices: &[DeviceWorkers]) -> Result<()> {
    let cache = super::data_cache(config);
    let report = start::check(config, devices, &cache, &mut |line| eprintln!("{line}"));
    for line in &report.lines {
        println!("{line}");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.problems.is_empty() {
        println!("config: {} (ok)", config.source);
        return Ok(());
    }
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
    bail!(
        "{} in {}",
        crate::format::plural(report.problems.len(), "problem"),
        config.source
    )
}

//! The command line: one subcommand per job, each in its own module.

pub mod attach;
mod bench;
mod compare;
mod control;
mod device_check;
mod evaluate;
mod executor_args;
pub mod exit;
mod export;
pub mod headless;
mod inspect;
mod latency;
mod onnx;
mod progress;
mod report;
mod search;
mod speed;
mod study;
mod train;
mod upscale;

use clap::{Parser, Subcommand};

/// Evolutionary search for small, fast super-resolution networks (ESR_EA).
#[derive(Debug, Parser)]
#[command(name = "esr-ea", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// CUDA only: TF32 tensor cores in f32 convolutions (PyTorch's default;
    /// results move away from the CPU's). Same as ESR_EA_TF32=1.
    #[arg(long, global = true)]
    pub tf32: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run (or check, or resume) an evolutionary search. The default command.
    Search(search::SearchArgs),
    /// Show the blocks, exact parameters and Multi-Adds of an architecture.
    Inspect(inspect::InspectArgs),
    /// Fully train an architecture or continue a model.
    Train(train::TrainArgs),
    /// PSNR/SSIM of a model (or bicubic) on benchmark folders.
    Bench(bench::BenchArgs),
    /// Super-resolve an image with a model.
    Upscale(upscale::UpscaleArgs),
    /// Export the best architectures of a run, with their weights.
    Export(export::ExportArgs),
    /// Watch and steer a search running elsewhere on this machine (live dashboard).
    Attach(attach::AttachArgs),
    /// Steer a search running elsewhere from a script (pause, kill, inject, ...).
    Control(control::ControlArgs),
    /// Time training and inference of an architecture (phases, GFLOP/s, peak memory).
    Speed(speed::SpeedArgs),
    /// Convert a model file to ONNX (opset 17, any input size) for deployment.
    Onnx(onnx::OnnxArgs),
    /// Milliseconds per frame of a model in candle or onnxruntime.
    Latency(latency::LatencyArgs),
    /// (Re)write a run's report: report.md/csv/json, pareto.png, progress.png.
    Report(report::ReportArgs),
    /// How far the search's fitness can be trusted: rank correlation with a longer training, seed noise.
    Study(study::StudyArgs),
    /// Evolution against random search over several runs: incumbent curves, verdict.
    Compare(compare::CompareArgs),
    /// Compare a device's forward/backward with the CPU's (CUDA check).
    #[command(hide = true)]
    DeviceCheck(device_check::DeviceCheckArgs),
    /// Train and validate one member from a job file (what a Slurm job runs).
    #[command(hide = true)]
    Evaluate(evaluate::EvaluateArgs),
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.tf32 {
        // Read where the first convolution runs, and by every child process.
        std::env::set_var("ESR_EA_TF32", "1");
    }
    match cli.command {
        Some(Command::Search(args)) if args.check => search::check(&args),
        Some(Command::Search(args)) => search::run(&args),
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Upscale(args)) => upscale::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Attach(args)) => attach::run(&args),
        Some(Command::Control(args)) => control::run(&args),
        Some(Command::Speed(args)) => speed::run(&args),
        Some(Command::Onnx(args)) => onnx::run(&args),
        Some(Command::Latency(args)) => latency::run(&args),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::Study(args)) => study::run(&args),
        Some(Command::Compare(args)) => compare::run(&args),
        Some(Command::DeviceCheck(args)) => device_check::run(&args),
        Some(Command::Evaluate(args)) => evaluate::run(&args),
        // No subcommand: a search on the embedded default, as the README promises.
        None => search::run(&search::SearchArgs {
            devices: vec![crate::device::DeviceWorkers {
                device: crate::device::DeviceName::Cpu,
                workers: 1,
            }],
            ..Default::default()
        }),
    }
}

/// A count given on the command line (`--steps`, `--epochs`): a whole
/// number, 1 or more, the rule the config applies to the same keys.
pub(crate) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be 1 or more (0 would write an untrained model)".into()),
        Err(_) => Err(format!("'{text}' is not a whole number (1 or more)")),
    }
}

/// Loads the config named on the command line (`--config`), or the embedded
/// default `configs/quick.yaml`, with its warnings (unknown keys, ignored
/// Vega keys): the caller shows them where the user looks.
pub(crate) fn load_config_with_warnings(
    path: Option<&std::path::Path>,
) -> anyhow::Result<crate::config::Loaded> {
    Ok(match path {
        Some(p) => crate::config::Config::load(p)?,
        None => crate::config::Config::embedded("quick")?,
    })
}

/// [`load_config_with_warnings`], the warnings printed on stderr.
pub(crate) fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::Config> {
    let loaded = load_config_with_warnings(path)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.config)
}

/// The decoded image cache `config` asks for, its news printed to stderr
/// (before any dashboard starts: loading precedes it).
pub(crate) fn data_cache(config: &crate::config::Config) -> crate::data::DataCache {
    crate::train::datasets::reported_cache(config.data_cache(), |line| eprintln!("{line}"))
}

/// The tiles for a model on an `h x w` image within `--max-memory` (or the
/// default budget): one pass when the image fits.
pub fn tile_plan(
    arch: &crate::space::Arch,
    max_memory: Option<u64>,
    device: &candle_core::Device,
    h: usize,
    w: usize,
) -> anyhow::Result<crate::model::tiled::TilePlan> {
    let budget =
        max_memory.unwrap_or_else(|| crate::model::tiled::default_memory_budget_on(device));
    crate::model::tiled::TilePlan::for_image(arch, budget, h, w)
        .map_err(|e| anyhow::anyhow!("{e}; give --max-memory with at least that much"))
}

//! `esr-ea study`: how far the search's fitness can be trusted: K drawn
//! architectures, each quick-trained as the search does and trained again
//! longer, with rank correlations and seed noise (logic in `crate::study`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::executor_args::SlurmArgs;
use super::load_config;
use crate::device::DeviceWorkers;
use crate::study::{files, Finished, Study, StudyReport, StudySettings};

/// Arguments of `study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// Configuration whose fitness is studied (default: the embedded `configs/quick.yaml`).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Study directory (default `studies/<config>-s<seed>-k<K>`).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the study in this directory (finished trainings are kept).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Architectures drawn from the config's space (K).
    #[arg(long, default_value_t = 12, value_name = "K")]
    pub archs: usize,
    /// Extra fitness runs with other run seeds on each repeated architecture (R).
    #[arg(long, default_value_t = 2, value_name = "R")]
    pub repeats: usize,
    /// How many architectures (the first drawn) get the seed repeats.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeat_archs: usize,
    /// Extra reference trainings with other seeds on each repeated architecture
    /// (the reference's own noise).
    #[arg(long, default_value_t = 0, value_name = "R")]
    pub reference_repeats: usize,
    /// Take over the finished reference trainings of this earlier study where
    /// they are the same trainings (same networks, seed, reference plan and
    /// images), so fitness settings can be compared against one reference.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub references_from: Option<PathBuf>,
    /// Reference training length in steps (default: the config's `fully_train`).
    #[arg(long, value_name = "N")]
    pub reference_steps: Option<usize>,
    /// Seed of the draw and of the first fitness run (default: the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Devices to train on, one worker each, as for `search`.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "cpu",
        value_delimiter = ','
    )]
    pub devices: Vec<DeviceWorkers>,
    /// Where the trainings run: `local` (worker threads, --devices) or
    /// `slurm` (one batch job each, the search's Slurm settings); default:
    /// the config's `executor.type`, else local.
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// Runs `study`.
pub fn run(args: &StudyArgs) -> Result<()> {
    if args.devices.is_empty() {
        bail!("--devices: name at least one device (cpu, cuda:0, ...)");
    }
    for d in &args.devices {
        d.device.open().context("--devices")?;
    }
    let study = match &args.resume {
        Some(dir) => Study::open(dir, super::data_cache)?,
        None => {
            let mut config = load_config(args.config.as_deref())?;
            if let Some(seed) = args.seed {
                config.seed = seed;
            }
            let settings = StudySettings {
                archs: args.archs,
                repeats: args.repeats,
                repeat_archs: args.repeat_archs.min(args.archs),
                reference_steps: args.reference_steps,
                reference_repeats: args.reference_repeats,
                seed: config.seed,
            };
            let dir = args.out.clone().unwrap_or_else(|| {
                let stem = std::path::Path::new(config.source.trim_start_matches("embedded "))
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "study".into());
                PathBuf::from("studies").join(format!("{stem}-s{}-k{}", config.seed, args.archs))
            });
            let cache = super::data_cache(&config);
            let (study, reused) = Study::create_reusing(
                &dir,
                config,
                settings,
                args.references_from.as_deref(),
                cache,
            )?;
            if let Some(from) = &args.references_from {
                say(&format!(
                    "reused {reused} finished reference trainings from {}",
                    from.display()
                ));
            }
            study
        }
    };
    let plan = &study.plan;
    let done = study.records()?.len();
    let total = study.tasks().len();
    say(&format!(
        "study {}: {} architectures, fitness {} steps (+{} seed repeats on {}), reference {} steps; bicubic {:.3} dB; {} of {} trainings done",
        study.dir().display(),
        plan.archs.len(),
        plan.fitness.steps,
        plan.settings.repeats,
        plan.settings.repeat_archs,
        plan.reference.steps,
        plan.bicubic_psnr,
        done,
        total
    ));
    let cancel = Arc::new(AtomicBool::new(false));
    stop_on_signals(Arc::clone(&cancel));
    let bicubic = plan.bicubic_psnr;
    let executor_config = args.slurm.apply(&study.config().executor)?;
    let study = Arc::new(study);
    let executor = crate::study::executor_for(
        &study,
        &executor_config,
        DeviceWorkers::expand(&args.devices),
    )?;
    let complete = study.run(
        executor,
        Arc::clone(&cancel),
        |f| say(&progress_line(f, bicubic)),
        |line| say(&line),
    )?;
    let report = study.report()?;
    study.write_outputs(&report)?;
    for line in summary(&report) {
        say(&line);
    }
    say(&format!(
        "wrote {}, {} and {} in {}",
        files::JSON,
        files::CSV,
        files::PNG,
        study.dir().display()
    ));
    if !complete {
        return Err(super::exit::Interrupted(format!(
            "study interrupted ({} of {} trainings done): continue with: esr-ea study --resume {}",
            report.done,
            report.total,
            study.dir().display()
        ))
        .into());
    }
    Ok(())
}

fn progress_line(f: &Finished, bicubic: f64) -> String {
    let what = match f.record.task {
        crate::study::Task::Fitness { arch, repeat: 0 } => format!("fitness   #{arch:02}"),
        crate::study::Task::Fitness { arch, repeat } => format!("repeat {repeat}  #{arch:02}"),
        crate::study::Task::Reference { arch, repeat: 0 } => format!("reference #{arch:02}"),
        crate::study::Task::Reference { arch, repeat } => format!("ref rep {repeat} #{arch:02}"),
    };
    let score = match (f.record.psnr, &f.record.error) {
        (Some(p), _) => format!("{p:.3} dB ({:+.3} vs bicubic)", p - bicubic),
        (None, Some(e)) => format!("failed: {e}"),
        (None, None) => "failed".into(),
    };
    format!(
        "[{}/{}] {what} {score}  {:.1} s on {}, ETA {}  {}",
        f.done,
        f.total,
        f.record.seconds,
        f.record.device,
        crate::format::duration(f.eta_seconds),
        f.genes
    )
}

/// The table and the figures, as printed at the end.
pub fn summary(r: &StudyReport) -> Vec<String> {
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let signed = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:+.3}"));
    let mut lines = vec![format!(
        "{:>3} {:>7} {:>8} {:>7} {:>6} {:>9} {:>7}  genes",
        "#", "params", "fitness", "vs bic", "sd", "reference", "vs bic"
    )];
    for row in &r.rows {
        lines.push(format!(
            "{:>3} {:>7} {:>8} {:>7} {:>6} {:>9} {:>7}  {}",
            row.index,
            row.params,
            cell(row.fitness),
            signed(row.fitness_over_bicubic),
            row.fitness_sd.map_or(String::new(), |v| format!("{v:.3}")),
            cell(row.reference),
            signed(row.reference_over_bicubic),
            row.genes
        ));
        for e in &row.errors {
            lines.push(format!("      failed: {e}"));
        }
    }
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    lines.push(format!(
        "Spearman {}  Kendall tau-b {}  top-3 overlap {}/3  ({} architectures compared)",
        fmt(r.spearman),
        fmt(r.kendall_tau_b),
        r.top3_overlap,
        r.compared
    ));
    lines.push(format!(
        "seed-noise SD {} dB, spread between architectures {} dB (noise/spread {}); reference spread {} dB",
        fmt(r.seed_noise_sd),
        fmt(r.spread_sd),
        fmt(r.noise_ratio()),
        fmt(r.reference_spread_sd)
    ));
    if r.reference_noise_sd.is_some() {
        lines.push(format!(
            "reference seed-noise SD {} dB (reference spread / noise {}); highest correlation this noise allows {}",
            fmt(r.reference_noise_sd),
            fmt(r
                .reference_spread_sd
                .zip(r.reference_noise_sd)
                .filter(|(_, n)| *n > 0.0)
                .map(|(s, n)| s / n)),
            fmt(r.correlation_ceiling)
        ));
    }
    if !r.curve_ranks.is_empty() {
        let cells: Vec<String> = r
            .curve_ranks
            .iter()
            .map(|c| format!("{}: {}/{}", c.step, fmt(c.vs_final), fmt(c.vs_fitness)))
            .collect();
        lines.push(format!(
            "reference part way (step: Spearman vs its final / vs fitness): {}",
            cells.join("  ")
        ));
    }
    for c in &r.checkpoint_ranks {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join("/")
        };
        let kept: Vec<String> = c
            .reference_top3_kept
            .iter()
            .map(|k| k.to_string())
            .collect();
        lines.push(format!(
            "fitness loss at step {} (stopping-rule checkpoint; run seeds): Spearman vs whole fitness {}, vs reference {}; the better half by it keeps {} of the reference's top 3",
            c.step,
            list(&c.vs_fitness),
            list(&c.vs_reference),
            kept.join("/")
        ));
    }
    lines.push(format!(
        "training time: fitness {:.1} min, reference {:.1} min; bicubic {:.3} dB",
        r.fitness_minutes, r.reference_minutes, r.plan.bicubic_psnr
    ));
    lines
}

fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// SIGINT, SIGTERM and SIGHUP stop after the trainings in flight are
/// abandoned; everything finished is already on disk.
fn stop_on_signals(cancel: Arc<AtomicBool>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&cancel));
    }
}

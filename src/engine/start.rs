//! Starting a search run: what `search` checks and prepares before the
//! engine runs (the plan, the memory of the largest networks where they will
//! train, every data problem), the run directory made or reopened under its
//! lock, and the engine's setup with its executor. The front end only reads
//! the arguments and shows what comes back; lines meant for the user are
//! handed to a `say` callback, never printed here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::executor::local::LocalExecutor;
use super::executor::slurm::SlurmExecutor;
use super::executor::Executor;
use super::lock::RunLock;
use super::pipeline::{PipelineSetup, ReportFn, SearchStage, StopAfter};
use super::rundir::{files, RunDir};
use super::EngineSetup;
use crate::config::{Config, DataSplit, ExecutorConfig};
use crate::data::DataCache;
use crate::device::DeviceWorkers;
use crate::search::memory_plan::{self, MemoryInputs, MemoryPlan};
use crate::search::{plan, Problem, Search, Strategy};
use crate::train::datasets::{count_images, load_for, reported_cache, Role};
use crate::train::fitness::QuickTrain;

/// A run ready for the engine: its config, directory (locked unless only
/// checked) and search state.
pub struct Started {
    /// The run's config (as saved in its directory).
    pub config: Config,
    /// The run directory.
    pub run: RunDir,
    /// The search, fresh or as saved.
    pub search: Search,
    /// Whether it goes on from a saved state.
    pub resumed: bool,
    /// One search per run directory: held until dropped.
    pub lock: Option<RunLock>,
    /// The memory plan a fresh run was admitted with (made once; a resumed
    /// run's is made against the devices it resumes on).
    pub memory: Option<MemoryPlan>,
}

/// A new run of `config` in `dir` (default: [`default_run_dir`]): refused
/// before anything is written when its paths, benchmark sets or memory
/// would stop it; the config saved in the directory.
pub fn fresh(config: Config, devices: &[DeviceWorkers], dir: Option<PathBuf>) -> Result<Started> {
    let problem = config.problem()?;
    config.validate_paths()?;
    if let Some(e) = config.benchmark_path_problems().into_iter().next() {
        return Err(e.into());
    }
    let memory = memory_of(&config, &problem, devices)?;
    if let Some(p) = memory.problems.first() {
        bail!("{p} ({})", config.source);
    }
    let search = Search::new(problem, config.seed)?;
    let dir = dir.unwrap_or_else(|| default_run_dir(&config.source));
    let run = RunDir::create(&dir)?;
    let lock = RunLock::acquire(&dir)?;
    // Another search may have started here while we waited.
    let run = RunDir::create(&dir).map(|_| run)?;
    run.write_config(&config)?;
    Ok(Started {
        config,
        run,
        search,
        resumed: false,
        lock: Some(lock),
        memory: Some(memory),
    })
}

/// The run saved in `dir`, its executor settings replaced by `executor`'s
/// answer (command-line overrides); locked unless `check_only`. A run
/// killed between writing its config and its first state starts afresh
/// from the saved config and seed: nothing was evaluated, so that is
/// exactly the run that was begun.
pub fn resume(
    dir: &Path,
    check_only: bool,
    executor: impl FnOnce(&ExecutorConfig) -> Result<ExecutorConfig>,
) -> Result<Started> {
    let never_checkpointed = dir.join(files::CONFIG).is_file() && !dir.join(files::STATE).exists();
    let (run, lock) = if never_checkpointed {
        let run = RunDir::create(dir)?;
        (run, Some(RunLock::acquire(dir)?))
    } else {
        let run = RunDir::open(dir)?;
        let lock = if check_only {
            None
        } else {
            Some(RunLock::acquire(dir)?)
        };
        (run, lock)
    };
    let mut config = run.load_config()?;
    config.executor = executor(&config.executor)?;
    let problem = config.problem()?;
    let (search, resumed) = if never_checkpointed {
        (Search::new(problem, config.seed)?, false)
    } else {
        (Search::resume(problem, run.load_state()?)?, true)
    };
    Ok(Started {
        config,
        run,
        search,
        resumed,
        lock,
        memory: None,
    })
}

/// A default run directory: `runs/<config stem>-YYYYmmdd-HHMMSS` (UTC),
/// the stem from the config's source (`embedded configs/quick.yaml` → `quick`).
pub fn default_run_dir(config_source: &str) -> PathBuf {
    let stem = Path::new(config_source.trim_start_matches("embedded "))
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

/// What `search --check` finds: the plan's lines in order, and every
/// problem (not only the first); warnings that would not stop a run.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The plan: budget and space, training, data, pipeline, memory.
    pub lines: Vec<String>,
    /// Anything that would stop the run.
    pub problems: Vec<String>,
    /// What would stop it later or only elsewhere (benchmark sets).
    pub warnings: Vec<String>,
}

/// Checks `config` for a run on `devices` as its start would, and more:
/// each data folder's images are decoded and measured (`say` hears which
/// folder is being read). The plan is made whatever the folders say.
pub fn check(
    config: &Config,
    devices: &[DeviceWorkers],
    cache: &DataCache,
    say: &mut dyn FnMut(String),
) -> CheckReport {
    let mut report = CheckReport::default();
    let mut memory = None;
    let mut problem_for_cost = None;
    match config.problem() {
        Ok(problem) => {
            match plan::describe(&problem, config.seed, 200) {
                Ok(text) => {
                    report.lines.push(format!("config: {}", config.source));
                    report.lines.extend(text.lines().map(str::to_string));
                }
                Err(e) => report.problems.push(format!("{e:#}")),
            }
            memory = Some(memory_of(config, &problem, devices));
            problem_for_cost = Some(problem);
        }
        Err(e) => report.problems.push(format!("{e:#}")),
    }
    let t = &config.search_trainer;
    report.lines.push(format!(
        "training per individual: {} ({})",
        t.steps
            .map(|s| format!("{s} steps"))
            .unwrap_or_else(|| format!("{} epochs", t.epochs)),
        t.describe_optimiser()
    ));
    if let Some(rule) = &t.median_stop {
        report.lines.push(rule.describe(t.steps));
    }
    if let Some(halving) = &t.successive_halving {
        report.lines.push(halving.describe(t.steps));
    }
    report.lines.push(format!(
        "data: train {}, validation {}",
        config.dataset.train.root_hr.display(),
        config.dataset.test.root_hr.display()
    ));
    let ft = &config.full_trainer;
    let stages: Vec<String> = super::pipeline::planned_stages(config)
        .stages
        .into_iter()
        .map(|s| s.name)
        .collect();
    report.lines.push(format!(
        "pipeline: {}; fully training the best {} for {}",
        stages.join(" -> "),
        config.top_n,
        ft.steps
            .map(|s| format!("{s} steps"))
            .unwrap_or_else(|| format!("{} epochs", ft.epochs))
    ));
    match memory {
        Some(Ok(plan)) => {
            report.lines.extend(plan.lines);
            report.problems.extend(plan.problems);
        }
        Some(Err(e)) => report.problems.push(format!("{e:#}")),
        None => {}
    }
    report
        .problems
        .extend(config.path_problems().iter().map(|e| e.to_string()));
    let (data, validation) = data_problems(config, cache, say);
    if let (Some(problem), true) = (&problem_for_cost, data.is_empty()) {
        match validation_cost(config, problem, devices, validation, cache) {
            Ok(lines) => report.lines.extend(lines),
            Err(e) => report
                .warnings
                .push(format!("cannot estimate the validation's cost: {e:#}")),
        }
    }
    report.problems.extend(data);
    // Benchmark sets often live on the machine that runs the search only.
    report.warnings.extend(
        config
            .benchmark_path_problems()
            .into_iter()
            .map(|e| format!("{e} (the run would stop at start)")),
    );
    report
}

/// Every problem of the data folders the config names, as the start of a
/// run would meet them (each image decoded and measured against the crop,
/// the scale and the shave), each prefixed with its config key. Folders
/// that do not exist are left to [`Config::path_problems`]. Also returns
/// the validation set (`nas.dataset.test`) when it was read.
fn data_problems(
    config: &Config,
    cache: &DataCache,
    say: &mut dyn FnMut(String),
) -> (Vec<String>, Option<crate::data::Dataset>) {
    let scale = config.search_space.scale;
    let mut splits = vec![
        (
            "nas.dataset.train",
            &config.dataset.train,
            Role::Training {
                crop: config.dataset.train.crop,
            },
        ),
        ("nas.dataset.test", &config.dataset.test, Role::Scoring),
    ];
    if config.full_dataset.train != config.dataset.train {
        let crop = config.full_dataset.train.crop;
        splits.push((
            "fully_train.dataset.train",
            &config.full_dataset.train,
            Role::Training { crop },
        ));
    }
    let mut problems = Vec::new();
    let mut validation = None;
    for (key, split, role) in splits {
        if !split.root_hr.exists() {
            continue;
        }
        say(format!(
            "checking the images of {key} ({})",
            split.root_hr.display()
        ));
        match load_for(split, scale, role, cache) {
            Ok(set) if key == "nas.dataset.test" => validation = Some(set),
            Ok(_) => {}
            Err(e) => problems.extend(e.problems().into_iter().map(|p| format!("{key}: {p}"))),
        }
    }
    (problems, validation)
}

/// What one fitness's validation costs beside its training, on the first
/// device: the images' LR pixels times the inference time per pixel of one
/// network of the budget, measured here on a 64 px tile; the training's
/// steps estimated at 3 forwards of the batch each (forward + backward).
/// `validation`: the set as the check read it (else it is loaded here: the
/// embedded default, which the check does not read).
fn validation_cost(
    config: &Config,
    problem: &Problem,
    devices: &[DeviceWorkers],
    validation: Option<crate::data::Dataset>,
    cache: &DataCache,
) -> Result<Vec<String>> {
    use rand::SeedableRng;
    let scale = config.search_space.scale;
    let val = match validation {
        Some(set) => set,
        None => load_for(&config.dataset.test, scale, Role::Scoring, cache)?,
    };
    let pixels: usize = val.pairs.iter().map(|p| p.lr.height * p.lr.width).sum();
    let device = devices
        .first()
        .map_or(Ok(candle_core::Device::Cpu), |d| d.device.open())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let individual = problem.random_individual(&mut rng)?;
    let arch = config.search_space.arch(individual.genes(&problem.table));
    let (model, _) = crate::model::Esrn::seeded(&arch, 0, &device)?;
    let tile = crate::data::RgbImage::filled(64, 64, 128.0);
    crate::model::infer::upscale_image(&model, &tile, &device)?;
    let start = std::time::Instant::now();
    let runs = 3;
    for _ in 0..runs {
        crate::model::infer::upscale_image(&model, &tile, &device)?;
    }
    let per_pixel = start.elapsed().as_secs_f64() / (runs * 64 * 64) as f64;
    let validation = per_pixel * pixels as f64;
    let train = &config.dataset.train;
    let images = count_images(train, scale)?;
    let steps = config.search_rules(images).steps as f64;
    let training = steps * 3.0 * per_pixel * (train.batch_size * train.crop * train.crop) as f64;
    let share = validation / (validation + training).max(f64::MIN_POSITIVE);
    let how = match config.dataset.test.val_crop {
        0 => "whole images".to_string(),
        side => format!("centred {side} px LR crops"),
    };
    let mut lines = vec![format!(
        "validation per fitness: {} ({how}), {:.2} M LR pixels: about {} on {} ({:.1} us a pixel, measured here on one network of the budget); {:.1}% of a member's time beside ~{} of training ({steps} steps at about 3 forwards each)",
        crate::format::plural(val.len(), "image"),
        pixels as f64 / 1e6,
        crate::format::duration(validation),
        devices.first().map_or("cpu".to_string(), |d| d.device.to_string()),
        per_pixel * 1e6,
        share * 100.0,
        crate::format::duration(training),
    )];
    if share > 0.25 && config.dataset.test.val_crop == 0 {
        lines.push(
            "validation: more than a quarter of each member's time; nas.dataset.test.val_crop: N scores every image on its centred N px LR window instead (fixed, deterministic)".into(),
        );
    }
    Ok(lines)
}

/// The memory part of the plan: the largest networks' training step on
/// each device (with its workers) or in each Slurm job, and validation of
/// the largest validation image.
pub fn memory_of(
    config: &Config,
    problem: &Problem,
    devices: &[DeviceWorkers],
) -> Result<MemoryPlan> {
    let train = &config.dataset.train;
    let validation_lr = largest_image(&config.dataset.test).map(|(h, w)| {
        let s = config.search_space.scale;
        let (h, w) = match config.dataset.test.root_lr {
            Some(_) => (h, w),
            None => (h / s, w / s),
        };
        match config.dataset.test.val_crop {
            0 => (h, w),
            side => (h.min(side), w.min(side)),
        }
    });
    // (workers, where, memory available there, validation budget there)
    let mut places: Vec<(usize, String, Option<u64>, u64)> = Vec::new();
    match &config.executor {
        ExecutorConfig::Slurm(settings) => {
            let mem = settings
                .mem
                .as_deref()
                .and_then(|m| crate::format::parse_memory(m).ok());
            let budget = crate::model::tiled::default_memory_budget();
            places.push((1, "each Slurm job (executor.slurm.mem)".into(), mem, budget));
        }
        ExecutorConfig::Local => {
            for d in devices {
                let dev = d.device.open()?;
                places.push((
                    d.workers,
                    if dev.is_cpu() {
                        "this machine".into()
                    } else {
                        d.device.to_string()
                    },
                    crate::model::tiled::free_memory_on(&dev),
                    crate::model::tiled::default_memory_budget_on(&dev),
                ));
            }
        }
    }
    let mut plan = MemoryPlan::default();
    for (workers, place, available, budget) in places {
        let inputs = MemoryInputs {
            batch: train.batch_size,
            crop: train.crop,
            workers,
            validation_lr,
            budget,
            available,
            place,
        };
        let one = memory_plan::memory_plan(problem, config.seed, memory_plan::SAMPLES, &inputs)?;
        for line in one.lines.into_iter().chain(one.problems.iter().cloned()) {
            if !plan.lines.contains(&line) && !one.problems.contains(&line) {
                plan.lines.push(line);
            }
        }
        for p in one.problems {
            if !plan.problems.contains(&p) {
                plan.problems.push(p);
            }
        }
    }
    Ok(plan)
}

/// Height and width of the largest image (by pixels) of a data split's
/// folder (the LR folder when it has one), read from the files' headers;
/// `None` when the folder cannot be listed (its problems are reported
/// separately).
fn largest_image(split: &DataSplit) -> Option<(usize, usize)> {
    let dir = split.root_lr.as_deref().unwrap_or(&split.root_hr);
    crate::data::dataset::list_images(dir)
        .ok()?
        .iter()
        .filter_map(|p| image::image_dimensions(p).ok())
        .map(|(w, h)| (h as usize, w as usize))
        .max_by_key(|(h, w)| h * w)
}

/// How a started run goes on: what the front end chose.
pub struct LaunchOptions {
    /// Devices with their workers (`--devices`).
    pub devices: Vec<DeviceWorkers>,
    /// End after this stage (`--stop-after`).
    pub stop_after: Option<StopAfter>,
    /// Writes the report into the run directory.
    pub report: ReportFn,
    /// Lines for the run's log before the engine's own (config warnings).
    pub notes: Vec<(String, String)>,
}

/// A started run ready for the pipeline, with what a front end shows
/// before the first event.
pub struct Launch {
    /// The pipeline's setup: hand it to [`super::pipeline::spawn`].
    pub pipeline: PipelineSetup,
    /// The search's problem (the dashboard's budget and table).
    pub problem: Problem,
    /// Whether the run's event log holds history to replay first.
    pub has_history: bool,
    /// One search per run directory: hold it until the pipeline has ended.
    pub lock: Option<RunLock>,
}

/// The pipeline's setup for a started run, or `None` when every stage of
/// it has finished. An unfinished search gets its engine: the memory plan
/// (made here for a resumed run, against the devices it resumes on) and
/// `options.notes` go to the run's log; local workers share the search's
/// fitness with its images loaded once, a Slurm job loads its own (here
/// only the training images are counted); the bicubic line is measured
/// once per run. `say` hears the data cache's news and the temporary
/// files of a killed writer that were removed.
pub fn launch(
    started: Started,
    options: LaunchOptions,
    say: Arc<dyn Fn(String) + Send + Sync>,
) -> Result<Option<Launch>> {
    let Started {
        config,
        run,
        search,
        resumed,
        lock,
        memory,
    } = started;
    let stale = if lock.is_some() {
        run.remove_stale_temp_files()
    } else {
        0
    };
    if stale > 0 {
        say(format!(
            "removed {} left by a killed writer",
            crate::format::plural(stale, "temporary file")
        ));
    }
    let run_dir = run.path().to_path_buf();
    let finished = search.state.finished;
    if finished && super::pipeline::all_done(&super::pipeline::load_state(&run_dir, &config)?) {
        return Ok(None);
    }
    let problem = search.problem.clone();
    let devices = DeviceWorkers::expand(&options.devices);
    let search_stage = if finished {
        SearchStage::Finished(Box::new(search))
    } else {
        let memory = match memory {
            Some(plan) => plan,
            None => memory_of(&config, &search.problem, &options.devices)?,
        };
        let strategy = (search.problem.policy.strategy == Strategy::Random).then(|| {
            (
                "info".to_string(),
                "strategy: random search (every generation drawn fresh at the same budget; no evolution)".to_string(),
            )
        });
        let notes = strategy
            .into_iter()
            .chain(options.notes)
            .chain(memory.lines.into_iter().map(|l| ("info".into(), l)))
            .chain(memory.problems.into_iter().map(|p| ("warn".into(), p)))
            .collect();
        let news = Arc::clone(&say);
        let cache = reported_cache(config.data_cache(), move |line| news(line));
        let (setup, executor) =
            engine_setup(&config, search, run, resumed, &devices, &cache, notes)?;
        SearchStage::Run(Box::new(setup), executor)
    };
    Ok(Some(Launch {
        pipeline: PipelineSetup {
            run_dir,
            config,
            devices,
            search: search_stage,
            stop_after: options.stop_after,
            report: options.report,
        },
        problem,
        has_history: resumed || finished,
        lock,
    }))
}

/// The engine's setup for an unfinished search, with its executor: local
/// workers (the search's fitness with its images loaded once, shared by
/// every worker) or Slurm jobs (each loads its own; here only the training
/// images are counted); the bicubic line measured once per run.
fn engine_setup(
    config: &Config,
    mut search: Search,
    run: RunDir,
    resumed: bool,
    devices: &[String],
    cache: &DataCache,
    notes: Vec<(String, String)>,
) -> Result<(EngineSetup, Box<dyn Executor>)> {
    let scale = config.search_space.scale;
    let (rules, executor, val): (_, Box<dyn Executor>, _) = match &config.executor {
        ExecutorConfig::Local => {
            let fitness = Arc::new(QuickTrain::load(config, cache)?);
            let rules = config.search_rules(fitness.train.len());
            let val = Arc::clone(&fitness.val);
            (
                rules,
                Box::new(LocalExecutor::new(devices.to_vec(), fitness)),
                val,
            )
        }
        ExecutorConfig::Slurm(settings) => {
            let images = count_images(&config.dataset.train, scale)?;
            let slurm = SlurmExecutor::new(settings.clone(), run.path())
                .map_err(|e| anyhow::anyhow!("--executor slurm: {e}"))?;
            let val =
                load_for(&config.dataset.test, scale, Role::Scoring, cache).with_context(|| {
                    format!(
                        "validation images {}",
                        config.dataset.test.root_hr.display()
                    )
                })?;
            (config.search_rules(images), Box::new(slurm), Arc::new(val))
        }
    };
    if search.state.bicubic_psnr.is_none() {
        // Once per run (saved in state.json): the line every fitness is read against.
        search.state.bicubic_psnr = Some(crate::train::trainer::bicubic_psnr(&val, scale)?);
    }
    let setup = EngineSetup {
        search,
        run,
        seed: config.seed,
        devices: devices.to_vec(),
        resumed,
        rules,
        notes,
    };
    Ok((setup, executor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let dir = default_run_dir("embedded configs/quick.yaml");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("quick-") && name.len() == "quick-20240101-000000".len(),
            "{name}"
        );
    }
}

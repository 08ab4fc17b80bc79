//! The fidelity study of a search's fitness (`esr-ea study`): does the quick
//! training rank architectures as a longer training does?
//!
//! K architectures are drawn from the config's space exactly as the search
//! draws its first generation (random individual + repair, seeded), each is
//! evaluated with the search's own fitness ([`QuickTrain`]) and with a
//! reference training, and a few are evaluated again with other run seeds to
//! measure the seed noise. Every finished training is one JSON file in the
//! study directory, written atomically, so a killed study resumes where it
//! stopped and ends with the same table. The trainings run through the
//! search's executors ([`run`]: worker threads here or Slurm jobs), each
//! training and its record made where it runs ([`training`]).

pub mod plot;
pub mod records;
mod reuse;
mod run;
pub mod stats;
pub mod table;
mod training;

pub use records::*;
pub use run::executor_for;
pub use table::{report_of, to_csv};
pub use training::{run_job, Trainings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use serde::Serialize;

use crate::config::Config;
use crate::data::{DataCache, Dataset};
use crate::search::Problem;
use crate::train::fitness::QuickTrain;
use crate::train::trainer::{bicubic_psnr, TrainPlan};

/// File names inside a study directory.
pub mod files {
    /// The resolved configuration the study measures.
    pub const CONFIG: &str = "config.yaml";
    /// Settings, drawn architectures, bicubic PSNR and both training plans.
    pub const PLAN: &str = "plan.json";
    /// One `<key>.json` per finished training.
    pub const TRAININGS: &str = "trainings";
    /// Weights of every training (`<key>.safetensors`).
    pub const MODELS: &str = "models";
    /// The summary and every row.
    pub const JSON: &str = "study.json";
    /// Every row as CSV.
    pub const CSV: &str = "study.csv";
    /// Fitness against reference, seed noise as error bars.
    pub const PNG: &str = "study.png";
}

/// A study directory with its config, plan and finished trainings.
pub struct Study {
    dir: PathBuf,
    config: Config,
    /// What it measures.
    pub plan: StudyPlan,
    train: Arc<Dataset>,
    val: Arc<Dataset>,
    cache: DataCache,
}

/// The K architectures a study measures: the search's own random
/// individuals (fair coin per slot, weighted choice, repair to depth and
/// budget), drawn from one seeded stream, repeated architectures skipped.
pub fn draw_archs(problem: &Problem, count: usize, seed: u64) -> Result<Vec<PlannedArch>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out: Vec<PlannedArch> = Vec::with_capacity(count);
    // A small space may hold fewer than K distinct networks: give up after
    // many duplicates rather than loop forever.
    let mut attempts = 0;
    while out.len() < count {
        attempts += 1;
        if attempts > count * 200 + 1000 {
            bail!(
                "the search space holds fewer than {count} distinct architectures in the budget (found {}); ask for fewer with --archs",
                out.len()
            );
        }
        let individual = problem.random_individual(&mut rng)?;
        let genes = individual.genes(&problem.table);
        if out.iter().any(|a| a.genes == genes) {
            continue;
        }
        out.push(PlannedArch {
            params: problem.params(&individual),
            genes,
        });
    }
    Ok(out)
}

/// The images the search's fitness trains and validates on, loaded as it loads them.
fn load_images(config: &Config, cache: &DataCache) -> Result<(Arc<Dataset>, Arc<Dataset>)> {
    let fitness = QuickTrain::load(config, cache)?;
    Ok((fitness.train, fitness.val))
}

impl Study {
    /// Starts a study in `dir` (created; refused when it already holds one),
    /// its images decoded through `cache`, taking over the finished
    /// reference trainings of the study in `references_from` that are the
    /// same trainings (same networks, seed, reference plan, images; checked
    /// before anything is written); returns how many it took over.
    pub fn create_reusing(
        dir: &Path,
        config: Config,
        settings: StudySettings,
        references_from: Option<&Path>,
        cache: DataCache,
    ) -> Result<(Study, usize)> {
        if settings.archs < 2 {
            bail!("--archs: {} is too few to rank (2 or more)", settings.archs);
        }
        if settings.repeat_archs > settings.archs {
            bail!(
                "--repeat-archs: {} is more than the {} architectures drawn (--archs)",
                settings.repeat_archs,
                settings.archs
            );
        }
        if settings.reference_steps == Some(0) {
            bail!("--reference-steps: 0 is not allowed (1 or more)");
        }
        if dir.join(files::PLAN).exists() {
            bail!(
                "{} already holds a study: continue it with `esr-ea study --resume {}` or choose another --out",
                dir.display(),
                dir.display()
            );
        }
        let problem = config.problem()?;
        config.validate_paths()?;
        let (train, val) = load_images(&config, &cache)?;
        let archs = draw_archs(&problem, settings.archs, settings.seed)?;
        let bicubic = bicubic_psnr(&val, config.search_space.scale)?;
        let fitness =
            TrainPlan::from_config(&config.search_trainer, &config.dataset.train, train.len());
        let full = TrainPlan::from_config(
            &config.full_trainer,
            &config.full_dataset.train,
            train.len(),
        );
        let reference = match settings.reference_steps {
            Some(n) => full.with_steps(n),
            None => full,
        };
        let checkpoint_steps = config
            .search_rules(train.len())
            .checkpoints()
            .into_iter()
            .map(|(step, _)| step)
            .collect();
        let plan = StudyPlan {
            settings,
            archs,
            bicubic_psnr: bicubic,
            fitness,
            reference,
            config_source: config.source.clone(),
            checkpoint_steps,
        };
        let source = references_from
            .map(|from| reuse::Source::open(from, &plan, &config))
            .transpose()?;
        make_folders(dir)?;
        crate::fsutil::atomic_write(&dir.join(files::CONFIG), config.to_yaml().as_bytes())
            .with_context(|| format!("cannot write {}", dir.join(files::CONFIG).display()))?;
        write_json(&dir.join(files::PLAN), &plan)?;
        let study = Study {
            dir: dir.to_path_buf(),
            config,
            plan,
            train,
            val,
            cache,
        };
        let reused = match source {
            Some(source) => source.copy_into(&study)?,
            None => 0,
        };
        Ok((study, reused))
    }

    /// Opens a study started before (to resume it or redo its table).
    /// Its images are decoded through the cache `cache_for` gives for its config.
    pub fn open(dir: &Path, cache_for: impl FnOnce(&Config) -> DataCache) -> Result<Study> {
        let (plan, config) = read_plan_and_config(dir)?;
        // The config must still make the same problem (a hand-edited file
        // would silently change what the records mean).
        config.problem()?;
        let cache = cache_for(&config);
        let (train, val) = load_images(&config, &cache)?;
        Ok(Study {
            dir: dir.to_path_buf(),
            config,
            plan,
            train,
            val,
            cache,
        })
    }

    /// The study directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it measures (as saved in its directory).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every training, in the order they run: the fitness of each arch,
    /// then the seed repeats, then the (longer) reference trainings.
    pub fn tasks(&self) -> Vec<Task> {
        let s = &self.plan.settings;
        let k = self.plan.archs.len();
        let mut tasks: Vec<Task> = (0..k)
            .map(|arch| Task::Fitness { arch, repeat: 0 })
            .collect();
        for repeat in 1..=s.repeats {
            tasks.extend((0..s.repeat_archs).map(|arch| Task::Fitness { arch, repeat }));
        }
        tasks.extend((0..k).map(|arch| Task::Reference { arch, repeat: 0 }));
        for repeat in 1..=s.reference_repeats {
            tasks.extend((0..s.repeat_archs).map(|arch| Task::Reference { arch, repeat }));
        }
        tasks
    }

    fn record_path(&self, task: &Task) -> PathBuf {
        self.dir
            .join(files::TRAININGS)
            .join(format!("{}.json", task.key()))
    }

    /// The trainings finished so far, by key.
    pub fn records(&self) -> Result<BTreeMap<String, TrainingRecord>> {
        let mut out = BTreeMap::new();
        for task in self.tasks() {
            let path = self.record_path(&task);
            if !path.exists() {
                continue;
            }
            out.insert(task.key(), read_record(&path)?);
        }
        Ok(out)
    }

    /// The table and statistics of what is recorded so far.
    pub fn report(&self) -> Result<StudyReport> {
        let records = self.records()?;
        Ok(report_of(&self.plan, &records, self.tasks().len()))
    }

    /// Writes `study.json`, `study.csv` and `study.png`.
    pub fn write_outputs(&self, report: &StudyReport) -> Result<()> {
        write_json(&self.dir.join(files::JSON), report)?;
        let csv = self.dir.join(files::CSV);
        crate::fsutil::atomic_write(&csv, to_csv(report).as_bytes())
            .with_context(|| format!("cannot write {}", csv.display()))?;
        plot::scatter(report, &self.dir.join(files::PNG))
    }
}

/// One training's record file.
fn read_record(path: &Path) -> Result<TrainingRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a training record: delete it to train it again",
            path.display()
        )
    })
}

/// The folders a study writes its trainings into.
fn make_folders(dir: &Path) -> Result<()> {
    for sub in [files::TRAININGS, files::MODELS] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    Ok(())
}

/// A study directory's `plan.json` and `config.yaml`.
fn read_plan_and_config(dir: &Path) -> Result<(StudyPlan, Config)> {
    let plan_path = dir.join(files::PLAN);
    let text = std::fs::read_to_string(&plan_path).with_context(|| {
        format!(
            "cannot read {} (is {} a study directory?)",
            plan_path.display(),
            dir.display()
        )
    })?;
    let plan: StudyPlan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a study plan", plan_path.display()))?;
    let config_path = dir.join(files::CONFIG);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = Config::from_yaml_str(&text, dir, config_path.display().to_string())?.config;
    Ok((plan, config))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    crate::fsutil::atomic_write(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::table::ceiling;
    use super::*;
    use crate::space::GeneList;

    fn plan(archs: usize, repeats: usize, repeat_archs: usize) -> StudyPlan {
        let genes =
            |i: usize| GeneList::parse_args(&[format!("G_4_8_{}", [8, 16, 24][i % 3])]).unwrap();
        let train = TrainPlan {
            steps: 10,
            lr: 1e-3,
            milestones: vec![],
            gamma: 0.5,
            scheduler: Default::default(),
            clip_grad_norm: None,
            batch_size: 1,
            crop: 8,
            augment: crate::data::patches::Augment {
                hflip: false,
                vflip: false,
                rot90: false,
            },
        };
        StudyPlan {
            settings: StudySettings {
                archs,
                repeats,
                repeat_archs,
                reference_steps: Some(10),
                reference_repeats: 0,
                seed: 0,
            },
            archs: (0..archs)
                .map(|i| PlannedArch {
                    genes: genes(i),
                    params: 1000 + i as u64,
                })
                .collect(),
            bicubic_psnr: 30.0,
            fitness: train.clone(),
            reference: train,
            config_source: "test".into(),
            checkpoint_steps: vec![5, 10],
        }
    }

    fn record(task: Task, psnr: f64) -> (String, TrainingRecord) {
        (
            task.key(),
            TrainingRecord {
                task,
                psnr: Some(psnr),
                error: None,
                seconds: 60.0,
                device: "cpu".into(),
                curve: Vec::new(),
                checkpoint_losses: Vec::new(),
            },
        )
    }

    #[test]
    fn checkpoint_ranks_from_known_losses() {
        // 4 archs, fitness 0 < 1 < 2 < 3, reference 3 > 1 > 2 > 0 (the
        // reference's top 3 is 3, 1, 2). Seed 0's losses at step 5 rank
        // 2 > 3 > 0 > 1 (lower loss ranks higher), at step 10 like the fitness.
        let plan = plan(4, 1, 4);
        let fitness = [0.0, 1.0, 2.0, 3.0];
        let reference = [10.0, 12.0, 11.0, 13.0];
        let losses = [[0.3, 0.4], [0.4, 0.3], [0.1, 0.2], [0.2, 0.1]];
        let mut records = BTreeMap::new();
        for arch in 0..4 {
            for repeat in 0..2 {
                let (key, mut rec) = record(Task::Fitness { arch, repeat }, fitness[arch]);
                rec.checkpoint_losses = losses[arch].to_vec();
                if repeat == 1 {
                    // The second seed records only the first checkpoint.
                    rec.checkpoint_losses.truncate(1);
                }
                records.insert(key, rec);
            }
            let (key, rec) = record(Task::Reference { arch, repeat: 0 }, reference[arch]);
            records.insert(key, rec);
        }
        let r = report_of(&plan, &records, 12);
        assert_eq!(r.checkpoint_ranks.len(), 2);
        let (first, second) = (&r.checkpoint_ranks[0], &r.checkpoint_ranks[1]);
        assert_eq!((first.step, second.step), (5, 10));
        // Step 5: -loss = [-0.3, -0.4, -0.1, -0.2] ranks [2, 1, 4, 3] against
        // fitness ranks [1, 2, 3, 4]: d² = 1 + 1 + 1 + 1, rho = 1 - 6*4/60 = 0.6.
        assert_eq!(first.vs_fitness.len(), 2);
        assert!((first.vs_fitness[0] - 0.6).abs() < 1e-12);
        // Against the reference ranks [1, 3, 2, 4]: d² = 1 + 4 + 4 + 1, rho = 0.
        assert!(first.vs_reference[0].abs() < 1e-12);
        // The better half by loss at step 5 is {2, 3}: 2 of the reference's top 3.
        assert_eq!(first.reference_top3_kept, vec![2, 2]);
        // Step 10: only seed 0 has it; loss ranks exactly like the fitness.
        assert_eq!(second.vs_fitness.len(), 1);
        assert!((second.vs_fitness[0] - 1.0).abs() < 1e-12);
        assert_eq!(second.reference_top3_kept, vec![2]);
    }

    #[test]
    fn reference_repeats_are_averaged_and_their_noise_pooled() {
        let mut plan = plan(3, 0, 2);
        plan.settings.reference_repeats = 1;
        let mut records: BTreeMap<_, _> = (0..3)
            .flat_map(|arch| {
                [
                    record(Task::Fitness { arch, repeat: 0 }, arch as f64),
                    record(Task::Reference { arch, repeat: 0 }, 10.0 + arch as f64),
                ]
            })
            .collect();
        // Repeats of archs 0 and 1: 10.0/10.4 and 11.0/11.2.
        records.extend([
            record(Task::Reference { arch: 0, repeat: 1 }, 10.4),
            record(Task::Reference { arch: 1, repeat: 1 }, 11.2),
        ]);
        let r = report_of(&plan, &records, 8);
        assert!((r.rows[0].reference.unwrap() - 10.2).abs() < 1e-12);
        assert!((r.rows[1].reference.unwrap() - 11.1).abs() < 1e-12);
        assert_eq!(r.rows[2].reference, Some(12.0));
        assert!(r.rows[2].reference_runs.is_empty());
        assert_eq!(r.rows[0].reference_runs, vec![10.0, 10.4]);
        // Squares 0.08 + 0.02 over 2 degrees of freedom.
        assert!((r.reference_noise_sd.unwrap() - 0.05f64.sqrt()).abs() < 1e-12);
        // No fitness repeats: no ceiling.
        assert_eq!(r.correlation_ceiling, None);
        // Noise half the spread in one, none in the other: sqrt(0.75).
        assert!(
            (ceiling(Some((0.5, 1.0)), Some((0.0, 2.0))).unwrap() - 0.75f64.sqrt()).abs() < 1e-12
        );
        assert_eq!(ceiling(Some((2.0, 1.0)), Some((0.0, 2.0))), Some(0.0));
        assert_eq!(
            Task::Reference { arch: 1, repeat: 1 }.key(),
            "reference-01-r1"
        );
    }

    #[test]
    fn curve_ranks_compare_the_reference_part_way_with_its_end() {
        let plan = plan(3, 0, 0);
        let mut records = BTreeMap::new();
        // At step 5 the order is reversed, at step 10 (the end) it is 0 < 1 < 2.
        for arch in 0..3 {
            let (key, mut rec) = record(Task::Reference { arch, repeat: 0 }, arch as f64);
            rec.curve = vec![
                CurvePoint {
                    step: 5,
                    psnr: -(arch as f64),
                },
                CurvePoint {
                    step: 10,
                    psnr: arch as f64,
                },
            ];
            records.insert(key, rec);
            let (key, rec) = record(Task::Fitness { arch, repeat: 0 }, arch as f64);
            records.insert(key, rec);
        }
        let r = report_of(&plan, &records, 6);
        assert_eq!(r.curve_ranks.len(), 2);
        assert_eq!(r.curve_ranks[0].step, 5);
        assert!((r.curve_ranks[0].vs_final.unwrap() + 1.0).abs() < 1e-12);
        assert!((r.curve_ranks[0].vs_fitness.unwrap() + 1.0).abs() < 1e-12);
        assert!((r.curve_ranks[1].vs_final.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn table_from_known_records() {
        let plan = plan(5, 1, 2);
        // scipy's example again: fitness 1..5 against references with a tie.
        let fitness = [1.0, 2.0, 3.0, 4.0, 5.0];
        let reference = [5.0, 6.0, 7.0, 8.0, 7.0];
        let mut records: BTreeMap<_, _> = (0..5)
            .flat_map(|arch| {
                [
                    record(Task::Fitness { arch, repeat: 0 }, fitness[arch]),
                    record(Task::Reference { arch, repeat: 0 }, reference[arch]),
                ]
            })
            .collect();
        records.extend([
            record(Task::Fitness { arch: 0, repeat: 1 }, 1.2),
            record(Task::Fitness { arch: 1, repeat: 1 }, 2.4),
        ]);
        let r = report_of(&plan, &records, 12);
        assert_eq!((r.done, r.total, r.compared), (12, 12, 5));
        assert!((r.spearman.unwrap() - 0.820_782_681_668_123_3).abs() < 1e-12);
        assert!(r.kendall_tau_b.unwrap() > 0.7 && r.kendall_tau_b.unwrap() < 0.8);
        // Top 3 of the fitness: 4, 3, 2; of the reference: 3 (8.0), then 2 and
        // 4 (7.0 each).
        assert_eq!(r.top3_overlap, 3);
        // Pairs (1.0, 1.2) and (2.0, 2.4): squares 0.02 + 0.08 over 2.
        assert!((r.seed_noise_sd.unwrap() - 0.05f64.sqrt()).abs() < 1e-12);
        assert!((r.spread_sd.unwrap() - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.rows[0].fitness_over_bicubic, Some(-29.0));
        assert_eq!(r.rows[3].reference_over_bicubic, Some(-22.0));
        assert_eq!(r.rows[1].repeats, vec![2.4]);
        assert_eq!(r.rows[2].fitness_sd, None);
        assert_eq!((r.fitness_minutes, r.reference_minutes), (7.0, 5.0));
        let csv = to_csv(&r);
        assert_eq!(csv.lines().count(), 6);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("0,\"G_4_8_8\",1000,1.0000,-29.0000,"));
    }

    #[test]
    fn missing_and_failed_trainings_leave_rows_out_of_the_correlation() {
        let plan = plan(3, 0, 0);
        let mut records: BTreeMap<_, _> = [
            record(Task::Fitness { arch: 0, repeat: 0 }, 1.0),
            record(Task::Reference { arch: 0, repeat: 0 }, 1.0),
            record(Task::Fitness { arch: 1, repeat: 0 }, 2.0),
            record(Task::Reference { arch: 1, repeat: 0 }, 3.0),
        ]
        .into_iter()
        .collect();
        let mut failed = record(Task::Fitness { arch: 2, repeat: 0 }, 0.0);
        failed.1.psnr = None;
        failed.1.error = Some("training diverged".into());
        records.insert(failed.0, failed.1);
        let r = report_of(&plan, &records, 6);
        assert_eq!(r.compared, 2);
        assert_eq!(r.spearman, Some(1.0));
        assert_eq!(r.seed_noise_sd, None);
        assert_eq!(
            r.rows[2].errors,
            vec!["fitness-02-r0: training diverged".to_string()]
        );
    }

    #[test]
    fn task_keys_are_distinct_and_sorted_by_arch() {
        let keys = [
            Task::Fitness { arch: 3, repeat: 0 }.key(),
            Task::Fitness { arch: 3, repeat: 1 }.key(),
            Task::Reference { arch: 3, repeat: 0 }.key(),
        ];
        assert_eq!(keys, ["fitness-03-r0", "fitness-03-r1", "reference-03"]);
    }
}

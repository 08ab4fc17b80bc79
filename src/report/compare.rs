//! `esr-ea compare RUN...`: does evolution beat random search at the same
//! budget? Each run's incumbent (best fitness so far) against evaluations
//! and training time, the final fully trained PSNR where the run went
//! through `fully_train`, mean and spread per strategy, and a verdict with
//! a bootstrap interval that says when the runs are too few to give one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::results::{self, files as result_files, FinalResult};
use crate::engine::rundir::{self, files};
use crate::format::{csv_field, duration};

/// Bootstrap resamples of the difference of means (fixed seed: the same
/// runs always give the same interval).
pub const RESAMPLES: usize = 10_000;
/// Runs per strategy below which the interval is called rough.
pub const FEW_RUNS: usize = 5;

/// One run as the comparison reads it from its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCurve {
    /// The run directory's name.
    pub name: String,
    /// `evolution` or `random`.
    pub strategy: String,
    /// The run's seed.
    pub seed: u64,
    /// After each trained member (cache hits cost nothing and are not
    /// counted): (evaluations so far, training seconds so far, best fitness
    /// so far); from the first member with a fitness on.
    pub points: Vec<(usize, f64, f64)>,
    /// Members trained.
    pub evaluations: usize,
    /// Their training seconds, summed.
    pub train_seconds: f64,
    /// Bicubic PSNR on the fitness's validation images, when known.
    pub bicubic: Option<f64>,
    /// The rank-1 finalist's validation PSNR over bicubic after `fully_train`.
    pub final_over_bicubic: Option<f64>,
    /// What the budget comparison needs to be equal between runs.
    budget: String,
}

impl RunCurve {
    /// Reads `history.csv`, `config.yaml` and `final/1/result.json` of `dir`.
    pub fn load(dir: &Path) -> Result<RunCurve> {
        let config = rundir::load_config(dir)?;
        let path = dir.join(files::HISTORY);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (has the search started?)", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|c| *c == name)
                .with_context(|| format!("{}: no '{name}' column in its header", path.display()))
        };
        let (state, psnr, seconds) = (column("state")?, column("psnr")?, column("seconds")?);
        let over = header.iter().position(|c| *c == "psnr_over_bicubic");
        let (mut evaluations, mut train_seconds, mut best) = (0, 0.0, None::<f64>);
        let mut points = Vec::new();
        let mut bicubic = None;
        for line in lines.filter(|l| !l.trim().is_empty()) {
            // Quoted fields (reasons) come after the columns read here.
            let fields: Vec<&str> = line.split(',').collect();
            let field = |i: usize| fields.get(i).copied().unwrap_or_default();
            if field(state) == "cached" {
                continue;
            }
            evaluations += 1;
            train_seconds += field(seconds).parse::<f64>().unwrap_or(0.0);
            if let Ok(fitness) = field(psnr).parse::<f64>() {
                best = Some(best.map_or(fitness, |b: f64| b.max(fitness)));
                if let Some(o) = over.and_then(|i| fields.get(i)?.parse::<f64>().ok()) {
                    bicubic = Some(fitness - o);
                }
            }
            if let Some(b) = best {
                points.push((evaluations, train_seconds, b));
            }
        }
        let final_path = results::final_dir(dir, 1).join(result_files::RESULT);
        let final_over_bicubic = results::read_json::<FinalResult>(&final_path)?
            .map(|r| r.val_psnr - r.bicubic_val_psnr);
        let (p, r, s) = (&config.policy, &config.range, &config.search_space);
        Ok(RunCurve {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string()),
            strategy: p.strategy.name().to_string(),
            seed: config.seed,
            points,
            evaluations,
            train_seconds,
            bicubic,
            final_over_bicubic,
            budget: format!(
                "{} generations x {}, {}..{} params, x{} G0 {}",
                p.num_generation, p.num_individual, r.min_params, r.max_params, s.scale, s.g0
            ),
        })
    }

    /// Best fitness after `evaluations` trained members (or all it had).
    pub fn best_at(&self, evaluations: usize) -> Option<f64> {
        self.points
            .iter()
            .take_while(|p| p.0 <= evaluations)
            .last()
            .map(|p| p.2)
    }

    /// The best fitness of the whole run.
    pub fn best(&self) -> Option<f64> {
        self.points.last().map(|p| p.2)
    }
}

/// Mean and sample standard deviation (0 for one value); `None` when empty.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// The difference of means `a - b` and its 95% percentile bootstrap
/// interval (each group resampled with replacement, `resamples` times).
pub fn bootstrap_difference(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> (f64, f64, f64) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |v: &[f64]| -> f64 {
        (0..v.len())
            .map(|_| v[rng.random_range(0..v.len())])
            .sum::<f64>()
            / v.len() as f64
    };
    let mut diffs: Vec<f64> = (0..resamples).map(|_| draw(a) - draw(b)).collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    (mean(a) - mean(b), at(0.025), at(0.975))
}

/// The plain answer for one measure: which strategy is better, by how much,
/// with its interval; or that the runs cannot tell.
pub fn verdict(what: &str, evolution: &[f64], random: &[f64]) -> String {
    let (n, m) = (evolution.len(), random.len());
    if n < 2 || m < 2 {
        return format!(
            "{what}: too few runs for a verdict ({n} evolution, {m} random; it needs at least 2 of each, {FEW_RUNS} for a useful one)"
        );
    }
    let (diff, lo, hi) = bootstrap_difference(evolution, random, RESAMPLES, 0);
    let interval = format!("95% bootstrap interval of evolution - random: {lo:+.3}..{hi:+.3} dB");
    let answer = if lo > 0.0 {
        format!("evolution is better by {diff:.3} dB ({interval})")
    } else if hi < 0.0 {
        format!("random search is better by {:.3} dB ({interval})", -diff)
    } else {
        format!("no difference shown: evolution - random = {diff:+.3} dB, and the {interval} includes 0")
    };
    let rough = if n.min(m) < FEW_RUNS {
        format!("; only {n} and {m} runs, so the interval is rough")
    } else {
        String::new()
    };
    format!("{what}: {answer}{rough}")
}

/// A comparison of runs, ready to write.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The runs, in the order given.
    pub runs: Vec<RunCurve>,
    /// Trained members every run reached: the common budget.
    pub common_evaluations: usize,
    /// Problems that make the comparison unfair (different budgets).
    pub warnings: Vec<String>,
}

impl Comparison {
    /// Loads every run directory.
    pub fn load(dirs: &[PathBuf]) -> Result<Comparison> {
        if dirs.len() < 2 {
            bail!(
                "compare needs at least two run directories (got {})",
                dirs.len()
            );
        }
        let runs = dirs
            .iter()
            .map(|d| RunCurve::load(d))
            .collect::<Result<Vec<_>>>()?;
        Ok(Comparison::of(runs))
    }

    /// The comparison of loaded runs.
    pub fn of(runs: Vec<RunCurve>) -> Comparison {
        let common_evaluations = runs.iter().map(|r| r.evaluations).min().unwrap_or(0);
        let mut warnings = Vec::new();
        if let Some(first) = runs.first() {
            for r in &runs[1..] {
                if r.budget != first.budget {
                    warnings.push(format!(
                        "{} searches {} but {} searches {}: not the same budget",
                        r.name, r.budget, first.name, first.budget
                    ));
                }
            }
        }
        Comparison {
            runs,
            common_evaluations,
            warnings,
        }
    }

    fn of_strategy<'a>(&'a self, strategy: &'a str) -> impl Iterator<Item = &'a RunCurve> {
        self.runs.iter().filter(move |r| r.strategy == strategy)
    }

    /// Per strategy: best fitness at the common budget, whole-run best, final over bicubic.
    fn measures(&self, strategy: &str) -> [Vec<f64>; 3] {
        let e = self.common_evaluations;
        [
            self.of_strategy(strategy)
                .filter_map(|r| r.best_at(e))
                .collect(),
            self.of_strategy(strategy)
                .filter_map(RunCurve::best)
                .collect(),
            self.of_strategy(strategy)
                .filter_map(|r| r.final_over_bicubic)
                .collect(),
        ]
    }

    /// The verdicts, one line a measure.
    pub fn verdicts(&self) -> Vec<String> {
        let (evo, rnd) = (self.measures("evolution"), self.measures("random"));
        let mut out = vec![verdict(
            &format!(
                "best fitness after {} trained members (the common budget)",
                self.common_evaluations
            ),
            &evo[0],
            &rnd[0],
        )];
        if !evo[2].is_empty() || !rnd[2].is_empty() {
            out.push(verdict("fully trained PSNR over bicubic", &evo[2], &rnd[2]));
        }
        out
    }

    /// `compare.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::from("# Evolution against random search\n\n");
        for w in &self.warnings {
            let _ = writeln!(md, "**Warning:** {w}\n");
        }
        let _ = writeln!(md, "## Verdict\n");
        for v in self.verdicts() {
            let _ = writeln!(md, "- {v}");
        }
        let _ = writeln!(
            md,
            "\n## Per strategy (mean ± SD over runs)\n\n| strategy | runs | best fitness at {} trained | best fitness, whole run | fully trained over bicubic |\n|---|---|---|---|---|",
            self.common_evaluations
        );
        let show = |v: &[f64]| {
            // One run has no spread to show: its SD would read as zero.
            mean_sd(v)
                .map(|(m, s)| match v.len() {
                    1 => format!("{m:.3} dB (n=1, no spread)"),
                    n => format!("{m:.3} ± {s:.3} dB (n={n})"),
                })
                .unwrap_or_else(|| "–".into())
        };
        for strategy in ["evolution", "random"] {
            let runs = self.of_strategy(strategy).count();
            if runs == 0 {
                continue;
            }
            let [at, best, fin] = self.measures(strategy);
            let _ = writeln!(
                md,
                "| {strategy} | {runs} | {} | {} | {} |",
                show(&at),
                show(&best),
                show(&fin)
            );
        }
        let _ = writeln!(
            md,
            "\n## Runs\n\n| run | strategy | seed | trained | training time | best fitness | at {} trained | best over bicubic | fully trained over bicubic |\n|---|---|---|---|---|---|---|---|---|",
            self.common_evaluations
        );
        let db = |v: Option<f64>, sign: bool| match v {
            Some(v) if sign => format!("{v:+.3}"),
            Some(v) => format!("{v:.3}"),
            None => "–".into(),
        };
        for r in &self.runs {
            let over = r.best().zip(r.bicubic).map(|(b, c)| b - c);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.strategy,
                r.seed,
                r.evaluations,
                duration(r.train_seconds),
                db(r.best(), false),
                db(r.best_at(self.common_evaluations), false),
                db(over, true),
                db(r.final_over_bicubic, true)
            );
        }
        let _ = writeln!(
            md,
            "\nFitness is the search's validation PSNR after quick training (dB); the incumbent curves are in `compare.csv` and `compare.png`."
        );
        md
    }

    /// `compare.csv`: every run's incumbent after each trained member.
    pub fn csv(&self) -> String {
        let mut out = String::from("run,strategy,seed,trained,train_seconds,best_psnr\n");
        for r in &self.runs {
            for (n, secs, best) in &r.points {
                let _ = writeln!(
                    out,
                    "{},{},{},{n},{secs:.1},{best:.4}",
                    csv_field(&r.name),
                    r.strategy,
                    r.seed
                );
            }
        }
        out
    }
}

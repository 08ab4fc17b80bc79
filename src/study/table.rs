//! The study's table from its plan and records: each architecture's
//! fitness against its reference, the seed noise, the rank correlations
//! (at the end and along the curves and checkpoints) and the CSV.

use std::collections::BTreeMap;

use super::records::*;
use super::stats;

/// The table from a plan and its records (pure: what the tests check).
pub fn report_of(
    plan: &StudyPlan,
    records: &BTreeMap<String, TrainingRecord>,
    total: usize,
) -> StudyReport {
    let bicubic = plan.bicubic_psnr;
    let get = |task: Task| records.get(&task.key());
    let psnr = |task: Task| get(task).and_then(|r| r.psnr);
    let mut rows = Vec::with_capacity(plan.archs.len());
    let mut noise_groups = Vec::new();
    let mut reference_groups = Vec::new();
    for (index, arch) in plan.archs.iter().enumerate() {
        let fitness = psnr(Task::Fitness {
            arch: index,
            repeat: 0,
        });
        let repeats: Vec<f64> = (1..=plan.settings.repeats)
            .filter_map(|repeat| {
                psnr(Task::Fitness {
                    arch: index,
                    repeat,
                })
            })
            .collect();
        let group: Vec<f64> = fitness
            .iter()
            .copied()
            .chain(repeats.iter().copied())
            .collect();
        let fitness_sd = if repeats.is_empty() {
            None
        } else {
            stats::sample_sd(&group)
        };
        if !repeats.is_empty() {
            noise_groups.push(group);
        }
        let reference_runs: Vec<f64> = (0..=plan.settings.reference_repeats)
            .filter_map(|repeat| {
                psnr(Task::Reference {
                    arch: index,
                    repeat,
                })
            })
            .collect();
        let reference = psnr(Task::Reference {
            arch: index,
            repeat: 0,
        })
        .map(|_| reference_runs.iter().sum::<f64>() / reference_runs.len() as f64);
        if reference_runs.len() > 1 {
            reference_groups.push(reference_runs.clone());
        }
        let mut tasks: Vec<Task> = (0..=plan.settings.repeats)
            .map(|repeat| Task::Fitness {
                arch: index,
                repeat,
            })
            .collect();
        tasks.extend(
            (0..=plan.settings.reference_repeats).map(|repeat| Task::Reference {
                arch: index,
                repeat,
            }),
        );
        let errors = tasks
            .into_iter()
            .filter_map(|t| {
                get(t)
                    .and_then(|r| r.error.clone())
                    .map(|e| format!("{}: {e}", t.key()))
            })
            .collect();
        rows.push(StudyRow {
            index,
            genes: arch.genes.to_string(),
            params: arch.params,
            fitness,
            fitness_over_bicubic: fitness.map(|f| f - bicubic),
            repeats,
            fitness_sd,
            reference,
            reference_over_bicubic: reference.map(|r| r - bicubic),
            reference_runs: if reference_runs.len() > 1 {
                reference_runs
            } else {
                Vec::new()
            },
            errors,
        });
    }
    let (xs, ys): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .filter_map(|r| Some((r.fitness?, r.reference?)))
        .unzip();
    let fitnesses: Vec<f64> = rows.iter().filter_map(|r| r.fitness).collect();
    let references: Vec<f64> = rows.iter().filter_map(|r| r.reference).collect();
    let minutes = |reference: bool| {
        records
            .values()
            .filter(|r| matches!(r.task, Task::Reference { .. }) == reference)
            .map(|r| r.seconds)
            .sum::<f64>()
            / 60.0
    };
    StudyReport {
        plan: plan.clone(),
        done: records.len(),
        total,
        spearman: stats::spearman(&xs, &ys),
        kendall_tau_b: stats::kendall_tau_b(&xs, &ys),
        top3_overlap: stats::top_overlap(&xs, &ys, 3),
        compared: xs.len(),
        seed_noise_sd: stats::pooled_sd(&noise_groups),
        spread_sd: stats::sample_sd(&fitnesses),
        reference_spread_sd: stats::sample_sd(&references),
        reference_noise_sd: stats::pooled_sd(&reference_groups),
        correlation_ceiling: ceiling(
            stats::pooled_sd(&noise_groups).zip(stats::sample_sd(&fitnesses)),
            stats::pooled_sd(&reference_groups).zip(stats::sample_sd(&references)),
        ),
        curve_ranks: curve_ranks(plan, records),
        checkpoint_ranks: checkpoint_ranks(plan, records, &rows),
        fitness_minutes: minutes(false),
        reference_minutes: minutes(true),
        rows,
    }
}

/// Spearman's correction for attenuation from (noise SD, spread SD) of
/// each measurement: the correlation two measurements with this much noise
/// reach at most, even if the quantities behind them agree perfectly.
pub(super) fn ceiling(fitness: Option<(f64, f64)>, reference: Option<(f64, f64)>) -> Option<f64> {
    let reliability = |(noise, spread): (f64, f64)| {
        (spread > 0.0).then(|| (1.0 - (noise * noise) / (spread * spread)).max(0.0))
    };
    Some((reliability(fitness?)? * reliability(reference?)?).sqrt())
}

/// Spearman of the main reference runs at each recorded step against their
/// final PSNR and against the fitness (archs with both).
fn curve_ranks(plan: &StudyPlan, records: &BTreeMap<String, TrainingRecord>) -> Vec<CurveRank> {
    let curves: Vec<(usize, &[CurvePoint], Option<f64>)> = (0..plan.archs.len())
        .filter_map(|arch| {
            let reference = records.get(&Task::Reference { arch, repeat: 0 }.key())?;
            let fitness = records
                .get(&Task::Fitness { arch, repeat: 0 }.key())
                .and_then(|r| r.psnr);
            Some((arch, reference.curve.as_slice(), fitness))
        })
        .filter(|(_, curve, _)| !curve.is_empty())
        .collect();
    let Some((_, first, _)) = curves.first() else {
        return Vec::new();
    };
    let steps: Vec<usize> = first.iter().map(|p| p.step).collect();
    let at =
        |curve: &[CurvePoint], step: usize| curve.iter().find(|p| p.step == step).map(|p| p.psnr);
    steps
        .into_iter()
        .map(|step| {
            let mut now_final = (Vec::new(), Vec::new());
            let mut now_fitness = (Vec::new(), Vec::new());
            for (_, curve, fitness) in &curves {
                let (Some(now), Some(last)) = (at(curve, step), curve.last().map(|p| p.psnr))
                else {
                    continue;
                };
                now_final.0.push(now);
                now_final.1.push(last);
                if let Some(f) = fitness {
                    now_fitness.0.push(*f);
                    now_fitness.1.push(now);
                }
            }
            CurveRank {
                step,
                vs_final: stats::spearman(&now_final.0, &now_final.1),
                vs_fitness: stats::spearman(&now_fitness.0, &now_fitness.1),
            }
        })
        .collect()
}

/// For each checkpoint where the fitness trainings recorded their loss:
/// per run seed, how the loss there ranks against that seed's fitness and
/// against the reference, and how much of the reference's top 3 a cut to
/// the better half keeps.
fn checkpoint_ranks(
    plan: &StudyPlan,
    records: &BTreeMap<String, TrainingRecord>,
    rows: &[StudyRow],
) -> Vec<CheckpointRank> {
    let losses_of = |arch: usize, repeat: usize| {
        records
            .get(&Task::Fitness { arch, repeat }.key())
            .filter(|r| r.psnr.is_some())
            .map(|r| (r.checkpoint_losses.as_slice(), r.psnr.unwrap_or_default()))
    };
    let checkpoints = (0..plan.archs.len())
        .filter_map(|a| losses_of(a, 0))
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0);
    (0..checkpoints)
        .map(|i| {
            let mut rank = CheckpointRank {
                step: plan.checkpoint_steps.get(i).copied().unwrap_or_default(),
                vs_fitness: Vec::new(),
                vs_reference: Vec::new(),
                reference_top3_kept: Vec::new(),
            };
            for repeat in 0..=plan.settings.repeats {
                let mut with_fitness = (Vec::new(), Vec::new());
                let mut with_reference = (Vec::new(), Vec::new());
                for (arch, row) in rows.iter().enumerate() {
                    let Some((losses, psnr)) = losses_of(arch, repeat) else {
                        continue;
                    };
                    let Some(&loss) = losses.get(i) else {
                        continue;
                    };
                    with_fitness.0.push(-loss);
                    with_fitness.1.push(psnr);
                    if let Some(reference) = row.reference {
                        with_reference.0.push(-loss);
                        with_reference.1.push(reference);
                    }
                }
                if let Some(rho) = stats::spearman(&with_fitness.0, &with_fitness.1) {
                    rank.vs_fitness.push(rho);
                }
                if let Some(rho) = stats::spearman(&with_reference.0, &with_reference.1) {
                    rank.vs_reference.push(rho);
                    let (x, y) = &with_reference;
                    rank.reference_top3_kept
                        .push(stats::top_in_top(x, x.len().div_ceil(2), y, 3));
                }
            }
            rank
        })
        .collect()
}

/// The rows as CSV (one line per architecture; empty cells where a
/// training is missing or failed).
pub fn to_csv(report: &StudyReport) -> String {
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let mut out = String::from(
        "index,genes,params,fitness_psnr,fitness_over_bicubic_db,fitness_seed_sd,repeats,reference_psnr,reference_over_bicubic_db,bicubic_psnr\n",
    );
    for r in &report.rows {
        let repeats: Vec<String> = r.repeats.iter().map(|v| format!("{v:.4}")).collect();
        out.push_str(&format!(
            "{},\"{}\",{},{},{},{},\"{}\",{},{},{:.4}\n",
            r.index,
            r.genes,
            r.params,
            cell(r.fitness),
            cell(r.fitness_over_bicubic),
            cell(r.fitness_sd),
            repeats.join(" "),
            cell(r.reference),
            cell(r.reference_over_bicubic),
            report.plan.bicubic_psnr
        ));
    }
    out
}

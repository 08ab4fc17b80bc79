//! The report's numbers: one row per finalist plus bicubic, and the run's
//! facts, as one serialisable value written three ways (Markdown, CSV, JSON).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::inputs::{BicubicBaseline, RunInputs};
use crate::engine::export::best_members;
use crate::engine::results::{files, SetScore, StageStatus};
use crate::format::{csv_field, duration, thousands};
use crate::search::Status;

/// `report.json`: the table and the facts behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What run, how it ran.
    pub facts: RunFacts,
    /// The benchmark sets, in pipeline order (the table's set columns).
    pub sets: Vec<SetInfo>,
    /// Bicubic first, then the finalists by rank (or, when no finalist was
    /// fully trained, the search's best distinct architectures).
    pub rows: Vec<ReportRow>,
}

/// One benchmark set as the table names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetInfo {
    /// `Set5`.
    pub name: String,
    /// The folder it was read from.
    pub path: String,
    /// Number of images.
    pub images: usize,
}

/// A row's score on one benchmark set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetCell {
    /// The set's name.
    pub set: String,
    /// Mean PSNR (dB) and SSIM.
    #[serde(flatten)]
    pub score: SetScore,
}

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// The bicubic baseline.
    Bicubic,
    /// A fully trained finalist.
    Finalist,
    /// One of the search's best distinct architectures, only quick-trained
    /// (no finalist yet); rank N is `export/N.safetensors`.
    Searched,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// `Bicubic`, `ESRN-1`, … (`search-1`, … before full training).
    pub model: String,
    /// What the row is.
    pub kind: RowKind,
    /// Finalist or search rank (1 = best); none for bicubic.
    pub rank: Option<usize>,
    /// The search member the network came from.
    pub member_id: Option<u64>,
    /// Its blocks, e.g. `G_8_16_24`.
    pub genes: Vec<String>,
    /// Exact parameters.
    pub params: Option<u64>,
    /// Multi-Adds for a 1280x720 output.
    pub multi_adds: Option<u64>,
    /// Score per benchmark set, in the order of [`Report::sets`].
    pub sets: Vec<SetCell>,
    /// Validation PSNR (dB) after full training (bicubic: its own).
    pub val_psnr: Option<f64>,
    /// Validation SSIM, as `val_psnr`.
    pub val_ssim: Option<f64>,
    /// `val_psnr` minus bicubic's validation PSNR.
    pub val_over_bicubic_db: Option<f64>,
    /// The search fitness: validation PSNR after quick training (dB).
    pub fitness_psnr: Option<f64>,
    /// `fitness_psnr` minus bicubic's validation PSNR.
    pub fitness_over_bicubic_db: Option<f64>,
    /// Optimiser steps of the full training.
    pub steps: Option<usize>,
    /// Wall seconds of the full training.
    pub train_seconds: Option<f64>,
    /// Device of the full training.
    pub device: Option<String>,
    /// Its weights, relative to the run directory.
    pub model_file: Option<String>,
}

/// One stage's wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageFact {
    /// `search`, `fully_train`, `benchmark_<Name>`, `report`.
    pub name: String,
    /// `pending`, `running` or `done`.
    pub status: StageStatus,
    /// Wall seconds so far.
    pub seconds: f64,
}

/// The run's facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// Run name (folder name).
    pub run: String,
    /// The run directory as given.
    pub run_dir: String,
    /// Where the configuration came from (file path or embedded name).
    pub config: String,
    /// Master seed.
    pub seed: u64,
    /// `evolution` or `random` (the baseline).
    #[serde(default)]
    pub strategy: String,
    /// Upscaling factor.
    pub scale: usize,
    /// Devices the search trained on (latest start).
    pub devices: Vec<String>,
    /// Generations planned.
    pub generations: usize,
    /// Individuals per generation.
    pub population: usize,
    /// Generations completed.
    pub generations_done: usize,
    /// True once the search's last generation completed.
    pub search_finished: bool,
    /// Parameter budget, inclusive.
    pub min_params: u64,
    /// Parameter budget, inclusive.
    pub max_params: u64,
    /// Members quick-trained and validated.
    pub members_evaluated: usize,
    /// Members that reused an identical architecture's result.
    pub cache_hits: u64,
    /// Members whose training failed.
    pub failures: usize,
    /// Members stopped by hand.
    pub killed: usize,
    /// What the median stopping rule saved, when it stopped anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_stop: Option<crate::search::StopTally>,
    /// Quick-training seconds summed over the evaluated members.
    pub search_train_seconds: f64,
    /// The stages (empty when the run has no `pipeline.json`).
    pub stages: Vec<StageFact>,
    /// Wall seconds of all stages together, when `pipeline.json` says.
    pub total_seconds: Option<f64>,
    /// The validation folder the fitness was measured on (the config's).
    pub validation_images: String,
    /// Where the bicubic baseline's figures come from: that folder, or a
    /// finalist's `result.json` that recorded them.
    pub bicubic_source: Option<String>,
    /// Why bicubic is unknown, when it is.
    pub bicubic_note: Option<String>,
    /// Finalists fully trained.
    pub finalists: usize,
    /// How to upscale with the best model.
    pub upscale_command: Option<String>,
}

/// The display name of finalist `rank`.
pub fn finalist_name(rank: usize) -> String {
    format!("ESRN-{rank}")
}

impl Report {
    /// The numbers of `run`.
    pub fn build(run: &RunInputs) -> Report {
        let bicubic = run.bicubic.score().cloned();
        let base = bicubic.as_ref().map(|b| b.psnr);
        let over = |v: Option<f64>| Some(v? - base?);
        let sets: Vec<SetInfo> = run
            .bench
            .iter()
            .flat_map(|b| &b.sets)
            .map(|s| SetInfo {
                name: s.name.clone(),
                path: s.path.clone(),
                images: s.images,
            })
            .collect();
        let bench_sets = run.bench.as_ref().map(|b| b.sets.as_slice()).unwrap_or(&[]);

        let mut rows = vec![ReportRow {
            model: "Bicubic".into(),
            kind: RowKind::Bicubic,
            rank: None,
            member_id: None,
            genes: Vec::new(),
            params: None,
            multi_adds: None,
            sets: bench_sets
                .iter()
                .map(|s| SetCell {
                    set: s.name.clone(),
                    score: s.bicubic.clone(),
                })
                .collect(),
            val_psnr: bicubic.as_ref().map(|b| b.psnr),
            val_ssim: bicubic.as_ref().map(|b| b.ssim),
            val_over_bicubic_db: base.map(|_| 0.0),
            fitness_psnr: None,
            fitness_over_bicubic_db: None,
            steps: None,
            train_seconds: None,
            device: None,
            model_file: None,
        }];
        for f in &run.finals {
            rows.push(ReportRow {
                model: finalist_name(f.rank),
                kind: RowKind::Finalist,
                rank: Some(f.rank),
                member_id: Some(f.member_id),
                genes: f.genes.clone(),
                params: Some(f.params),
                multi_adds: Some(f.multi_adds),
                sets: bench_sets
                    .iter()
                    .filter_map(|s| {
                        let m = s.models.iter().find(|m| m.rank == f.rank)?;
                        Some(SetCell {
                            set: s.name.clone(),
                            score: m.score.clone(),
                        })
                    })
                    .collect(),
                val_psnr: Some(f.val_psnr),
                val_ssim: Some(f.val_ssim),
                val_over_bicubic_db: over(Some(f.val_psnr)),
                fitness_psnr: Some(f.fitness_psnr),
                fitness_over_bicubic_db: over(Some(f.fitness_psnr)),
                steps: Some(f.steps),
                train_seconds: Some(f.train_seconds),
                device: Some(f.device.clone()),
                model_file: Some(format!("{}/{}/{}", files::FINAL, f.rank, files::MODEL)),
            });
        }
        if run.finals.is_empty() {
            let top = run.state.elites.len().max(1);
            for (i, m) in best_members(&run.state, top).iter().enumerate() {
                let model_file = format!("export/{}.safetensors", i + 1);
                rows.push(ReportRow {
                    model: format!("search-{}", i + 1),
                    kind: RowKind::Searched,
                    rank: Some(i + 1),
                    member_id: Some(m.id),
                    genes: m.genes.0.iter().map(|g| g.to_string()).collect(),
                    params: Some(m.params),
                    multi_adds: Some(m.multi_adds),
                    sets: Vec::new(),
                    val_psnr: None,
                    val_ssim: None,
                    val_over_bicubic_db: None,
                    fitness_psnr: m.fitness(),
                    fitness_over_bicubic_db: over(m.fitness()),
                    steps: None,
                    train_seconds: None,
                    device: None,
                    model_file: run.dir.join(&model_file).is_file().then_some(model_file),
                });
            }
        }

        Report {
            facts: facts(run),
            sets,
            rows,
        }
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        let f = &self.facts;
        let mut md = String::new();
        let _ = writeln!(md, "# esr-ea report: {}\n", f.run);
        if f.finalists == 0 {
            let _ = writeln!(
                md,
                "No finalist was fully trained yet (no `{}/<rank>/{}`): the table lists the \
                 search's best architectures with their quick-training fitness.\n",
                files::FINAL,
                files::RESULT
            );
        }
        let mut header = vec![
            "Model".to_string(),
            "Params".into(),
            "Multi-Adds (G, 720p)".into(),
        ];
        let mut align = vec!["---", "---:", "---:"];
        for s in &self.sets {
            header.push(format!("{} PSNR / SSIM", s.name));
            align.push("---:");
        }
        header.extend([
            "Validation PSNR / SSIM (vs bicubic)".to_string(),
            "Search fitness, dB (vs bicubic)".into(),
            "Training time".into(),
        ]);
        align.extend(["---:", "---:", "---:"]);
        let _ = writeln!(md, "| {} |", header.join(" | "));
        let _ = writeln!(md, "|{}|", align.join("|"));
        for row in &self.rows {
            let mut cells = vec![
                row.model.clone(),
                row.params.map(thousands).unwrap_or_else(dash),
                row.multi_adds.map(giga).unwrap_or_else(dash),
            ];
            for s in &self.sets {
                cells.push(
                    row.sets
                        .iter()
                        .find(|c| c.set == s.name)
                        .map(|c| psnr_ssim(&c.score))
                        .unwrap_or_else(dash),
                );
            }
            let val = match (row.val_psnr, row.val_ssim) {
                (Some(p), Some(s)) if row.kind == RowKind::Bicubic => format!("{p:.2} / {s:.4}"),
                (Some(p), Some(s)) => format!(
                    "{p:.2} / {s:.4}{}",
                    row.val_over_bicubic_db.map(signed).unwrap_or_default()
                ),
                _ => dash(),
            };
            cells.push(val);
            cells.push(
                row.fitness_psnr
                    .map(|p| {
                        format!(
                            "{p:.2}{}",
                            row.fitness_over_bicubic_db.map(signed).unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(dash),
            );
            cells.push(row.train_seconds.map(duration).unwrap_or_else(dash));
            let _ = writeln!(md, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(
            md,
            "\nx{} super-resolution; PSNR (dB) and SSIM on the Y channel with {} px shaved, \
             mean over each set's images; Multi-Adds for one 1280x720 output.",
            f.scale, f.scale
        );
        if let Some(note) = &f.bicubic_note {
            let _ = writeln!(md, "\n{note}: the columns against bicubic are left empty.");
        }
        if !self.sets.is_empty() {
            let _ = writeln!(md, "\nBenchmark sets:\n");
            for s in &self.sets {
                let _ = writeln!(md, "* {}: {} images, `{}`", s.name, s.images, s.path);
            }
        }

        let _ = writeln!(md, "\n## Models\n");
        for row in self.rows.iter().filter(|r| r.kind != RowKind::Bicubic) {
            let _ = writeln!(
                md,
                "* **{}** (search member {}): `{}`",
                row.model,
                row.member_id.map(|i| i.to_string()).unwrap_or_else(dash),
                row.genes.join(" ")
            );
            if let Some(file) = &row.model_file {
                let trained = match (row.steps, &row.device) {
                    (Some(steps), Some(device)) => {
                        format!(" ({steps} steps on {device})")
                    }
                    _ => " (quick-trained weights)".into(),
                };
                let _ = writeln!(md, "  weights: `{}/{file}`{trained}", f.run_dir);
            }
        }
        match &f.upscale_command {
            Some(cmd) => {
                let _ = writeln!(
                    md,
                    "\nUpscale an image with the best model:\n\n```sh\n{cmd}\n```"
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "\nFully train the best architecture first:\n\n```sh\nesr-ea train --model {}/export/1.safetensors --out {}/final/1\n```",
                    f.run_dir, f.run_dir
                );
            }
        }

        let _ = writeln!(md, "\n## Run\n\n| | |\n|---|---|");
        let devices = if f.devices.is_empty() {
            "unknown (no run_started in events.jsonl)".to_string()
        } else {
            f.devices.join(", ")
        };
        let mut facts = vec![
            ("run directory", format!("`{}`", f.run_dir)),
            ("config", f.config.clone()),
            ("seed", f.seed.to_string()),
            (
                "strategy",
                if f.strategy == "random" {
                    "random search (the baseline: no evolution)".to_string()
                } else {
                    "evolution".to_string()
                },
            ),
            ("devices", devices),
            (
                "generations x population",
                format!(
                    "{} x {} ({} completed{})",
                    f.generations,
                    f.population,
                    f.generations_done,
                    if f.search_finished {
                        ""
                    } else {
                        ", search not finished"
                    }
                ),
            ),
            (
                "parameter budget",
                format!("{}..{}", thousands(f.min_params), thousands(f.max_params)),
            ),
            ("members evaluated", f.members_evaluated.to_string()),
            ("cache hits", f.cache_hits.to_string()),
            ("failures", f.failures.to_string()),
            ("killed by hand", f.killed.to_string()),
        ];
        if let Some(t) = f.median_stop {
            facts.push((
                if t.by_halving {
                    "stopped by successive halving"
                } else {
                    "stopped by the median rule"
                },
                format!(
                    "{} ({} training steps saved)",
                    t.stopped,
                    thousands(t.steps_saved as u64)
                ),
            ));
        }
        facts.extend([
            (
                "quick training, summed over members",
                duration(f.search_train_seconds),
            ),
            ("validation images", f.validation_images.clone()),
            (
                "bicubic baseline from",
                f.bicubic_source.clone().unwrap_or_else(dash),
            ),
        ]);
        for (k, v) in facts {
            let _ = writeln!(md, "| {k} | {v} |");
        }

        let _ = writeln!(md, "\n## Stages\n");
        if f.stages.is_empty() {
            let _ = writeln!(
                md,
                "No `{}`: this run only searched (its wall time was not recorded).",
                files::PIPELINE
            );
        } else {
            let _ = writeln!(md, "| stage | status | wall time |\n|---|---|---:|");
            for s in &f.stages {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    s.name,
                    status_name(s.status),
                    duration(s.seconds)
                );
            }
            if let Some(total) = f.total_seconds {
                let _ = writeln!(md, "| **total** | | {} |", duration(total));
            }
        }
        let _ = writeln!(
            md,
            "\n## Charts\n\n![validation PSNR over bicubic against Multi-Adds](pareto.png)\n\n\
             ![best and mean fitness per generation](progress.png)"
        );
        md
    }

    /// `report.csv`: one line per row; PSNR/SSIM columns per benchmark set.
    pub fn csv(&self) -> String {
        let mut header: Vec<String> = [
            "model",
            "kind",
            "rank",
            "member_id",
            "genes",
            "params",
            "multi_adds",
        ]
        .map(String::from)
        .to_vec();
        for s in &self.sets {
            header.push(format!("{}_psnr", s.name));
            header.push(format!("{}_ssim", s.name));
        }
        header.extend(
            [
                "val_psnr",
                "val_ssim",
                "val_over_bicubic_db",
                "fitness_psnr",
                "fitness_over_bicubic_db",
                "steps",
                "train_seconds",
                "device",
                "model_file",
            ]
            .map(String::from),
        );
        let mut out = header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for row in &self.rows {
            let mut cells = vec![
                row.model.clone(),
                kind_name(row.kind).into(),
                opt(row.rank),
                opt(row.member_id),
                row.genes.join(" "),
                opt(row.params),
                opt(row.multi_adds),
            ];
            for s in &self.sets {
                let cell = row.sets.iter().find(|c| c.set == s.name);
                cells.push(opt(cell.map(|c| c.score.psnr)));
                cells.push(opt(cell.map(|c| c.score.ssim)));
            }
            cells.extend([
                opt(row.val_psnr),
                opt(row.val_ssim),
                opt(row.val_over_bicubic_db),
                opt(row.fitness_psnr),
                opt(row.fitness_over_bicubic_db),
                opt(row.steps),
                opt(row.train_seconds),
                row.device.clone().unwrap_or_default(),
                row.model_file.clone().unwrap_or_default(),
            ]);
            out.push_str(
                &cells
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        out
    }
}

fn facts(run: &RunInputs) -> RunFacts {
    let state = &run.state;
    let evaluated = |m: &&crate::search::Member| matches!(m.status, Status::Evaluated(_));
    let stages: Vec<StageFact> = run
        .pipeline
        .iter()
        .flat_map(|p| &p.stages)
        .map(|s| StageFact {
            name: s.name.clone(),
            status: s.status,
            seconds: s.seconds,
        })
        .collect();
    let total_seconds = (!stages.is_empty()).then(|| stages.iter().map(|s| s.seconds).sum());
    let (bicubic_source, bicubic_note) = match &run.bicubic {
        BicubicBaseline::Known { source, .. } => (Some(source.clone()), None),
        BicubicBaseline::Unknown(why) => (None, Some(why.clone())),
    };
    let run_dir = run.dir.display().to_string();
    RunFacts {
        run: run.name.clone(),
        upscale_command: run.finals.first().map(|f| {
            format!(
                "esr-ea upscale --model {run_dir}/{}/{}/{} IN.png OUT.png",
                files::FINAL,
                f.rank,
                files::MODEL
            )
        }),
        run_dir,
        config: run.config_origin.clone(),
        seed: run.config.seed,
        strategy: run.config.policy.strategy.name().to_string(),
        scale: run.config.search_space.scale,
        devices: run.devices.clone(),
        generations: run.config.policy.num_generation,
        population: run.config.policy.num_individual,
        generations_done: state.summaries.len(),
        search_finished: state.finished,
        min_params: run.config.range.min_params,
        max_params: run.config.range.max_params,
        members_evaluated: state.history.iter().filter(evaluated).count(),
        cache_hits: state.cache_hits,
        failures: state
            .history
            .iter()
            .filter(|m| matches!(m.status, Status::Failed { .. }))
            .count(),
        killed: state
            .history
            .iter()
            .filter(|m| matches!(m.status, Status::Killed))
            .count(),
        median_stop: Some(crate::search::StopTally::of(&state.history)).filter(|t| t.stopped > 0),
        search_train_seconds: state
            .history
            .iter()
            .filter_map(|m| match &m.status {
                Status::Evaluated(e) => Some(e.seconds),
                Status::Stopped(s) => Some(s.seconds),
                _ => None,
            })
            .sum(),
        stages,
        total_seconds,
        validation_images: run.config.dataset.test.root_hr.display().to_string(),
        bicubic_source,
        bicubic_note,
        finalists: run.finals.len(),
    }
}

fn dash() -> String {
    "–".into()
}

fn giga(multi_adds: u64) -> String {
    format!("{:.2}", multi_adds as f64 / 1e9)
}

fn psnr_ssim(s: &SetScore) -> String {
    format!("{:.2} / {:.4}", s.psnr, s.ssim)
}

fn signed(db: f64) -> String {
    format!(" ({db:+.2})")
}

fn status_name(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Pending => "pending",
        StageStatus::Running => "running",
        StageStatus::Done => "done",
    }
}

fn kind_name(k: RowKind) -> &'static str {
    match k {
        RowKind::Bicubic => "bicubic",
        RowKind::Finalist => "finalist",
        RowKind::Searched => "searched",
    }
}

/// A value as CSV writes it: full precision (`f64`'s shortest round-trip
/// form), empty when absent.
fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("G_8_16_24 C_8_16_16"), "G_8_16_24 C_8_16_16");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        // Full precision: the text reads back as the same number.
        let psnr = 29.0 + 1.0 / 7.0;
        assert_eq!(opt(Some(psnr)).parse::<f64>().unwrap(), psnr);
        assert_eq!(opt::<f64>(None), "");
    }
}

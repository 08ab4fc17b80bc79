//! `esr-ea report RUN_DIR` on a real tiny search (trained through the
//! binary), with and without the later stages' files: the table's rows and
//! columns, CSV/JSON with the same numbers, the charts as real images, and
//! one-line errors for what is missing.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use esr_ea::engine::results::{
    self, BenchResults, BenchSet, CurvePoint, FinalResult, ModelScore, PipelineState, SetScore,
    Stage, StageStatus,
};
use esr_ea::report::{self, Report, RowKind};
use esr_ea::search::SearchState;
use support::cli::{error_line, esr_ea, search, stdout};
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

/// One real tiny search (3 generations x 4, 3 steps each), run once per test
/// binary; each test reports on its own copy.
fn searched() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = temp_dir("report-search");
        tiny_dataset(
            &dir,
            &[
                "train/astronaut.png",
                "train/brick.png",
                "train/chelsea.png",
            ],
        );
        let cfg = TinySearch {
            seed: 3,
            generations: 3,
            batch_size: 2,
            steps: 3,
            milestone: 2,
        }
        .write(&dir, "tiny.yaml");
        let run = dir.join("run");
        let o = search(&[
            "--config",
            cfg.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--headless",
            "--stop-after",
            "search",
        ]);
        assert!(o.status.success(), "{}", support::cli::stderr(&o));
        run
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the searched run in a fresh folder of this test.
fn run_copy(name: &str) -> PathBuf {
    let run = temp_dir(name).join("run");
    copy_dir(searched(), &run);
    run
}

fn state(run: &Path) -> SearchState {
    esr_ea::engine::RunDir::open(run)
        .unwrap()
        .load_state()
        .unwrap()
}

const BICUBIC_VAL: SetScore = SetScore {
    psnr: 27.25,
    ssim: 0.8125,
};

/// The later stages' files from known numbers: the search's best elite as
/// finalist 1, two benchmark sets.
fn write_later_stages(run: &Path) -> FinalResult {
    let best = esr_ea::engine::export::best_members(&state(run), 1)[0].clone();
    let fin = FinalResult {
        rank: 1,
        member_id: best.id,
        genes: best.genes.0.iter().map(|g| g.to_string()).collect(),
        params: best.params,
        multi_adds: best.multi_adds,
        fitness_psnr: best.fitness().unwrap(),
        steps: 400,
        train_seconds: 125.0,
        device: "cpu".into(),
        val_psnr: 28.875,
        val_ssim: 0.84375,
        bicubic_val_psnr: BICUBIC_VAL.psnr,
        bicubic_val_ssim: BICUBIC_VAL.ssim,
        curve: vec![
            CurvePoint {
                step: 200,
                loss: 0.05,
                val_psnr: Some(28.5),
            },
            CurvePoint {
                step: 400,
                loss: 0.04,
                val_psnr: Some(28.875),
            },
        ],
    };
    std::fs::create_dir_all(results::final_dir(run, 1)).unwrap();
    results::write_json(&results::final_dir(run, 1).join("result.json"), &fin).unwrap();
    let set = |name: &str, bicubic: (f64, f64), model: (f64, f64)| BenchSet {
        name: name.into(),
        path: format!("/data/{name}"),
        images: 5,
        bicubic: SetScore {
            psnr: bicubic.0,
            ssim: bicubic.1,
        },
        models: vec![ModelScore {
            rank: 1,
            score: SetScore {
                psnr: model.0,
                ssim: model.1,
            },
        }],
    };
    let bench = BenchResults {
        sets: vec![
            set("Set5", (33.66, 0.9299), (36.125, 0.9512)),
            set("Urban7", (26.88, 0.8403), (29.5, 0.8951)),
        ],
    };
    results::write_json(&run.join("bench.json"), &bench).unwrap();
    let stage = |name: &str, status, seconds| Stage {
        name: name.into(),
        status,
        seconds,
    };
    let pipeline = PipelineState {
        stages: vec![
            stage("search", StageStatus::Done, 20.0),
            stage("fully_train", StageStatus::Done, 125.0),
            stage("benchmark_Set5", StageStatus::Done, 3.0),
            stage("benchmark_Urban7", StageStatus::Done, 4.0),
            stage("report", StageStatus::Running, 0.0),
        ],
    };
    results::write_json(&run.join("pipeline.json"), &pipeline).unwrap();
    fin
}

/// The Markdown table's row that starts with `| model |`.
fn md_row<'a>(md: &'a str, model: &str) -> &'a str {
    md.lines()
        .find(|l| l.starts_with(&format!("| {model} |")))
        .unwrap_or_else(|| panic!("no row {model} in:\n{md}"))
}

/// The image decodes, has the charts' size and is a drawing, not a blank.
fn check_chart(path: &Path, must_hold: &[[u8; 3]]) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(
        (img.width(), img.height()),
        (report::CHART_WIDTH, report::CHART_HEIGHT)
    );
    assert_eq!((img.width(), img.height()), (1000, 700));
    let colours: BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() >= 8,
        "{}: {} colours",
        path.display(),
        colours.len()
    );
    let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    let total = (img.width() * img.height()) as usize;
    assert!(
        white < total * 98 / 100,
        "{} is nearly blank",
        path.display()
    );
    for c in must_hold {
        assert!(
            colours.contains(c),
            "{} has no pixel of {c:?}",
            path.display()
        );
    }
}

/// (header, rows) of a CSV file without quoted fields.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect());
    let header: Vec<String> = lines.next().unwrap();
    let rows: Vec<Vec<String>> = lines.collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
    }
    (header, rows)
}

fn cell<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    &row[i]
}

const RED: [u8; 3] = [200, 30, 30];
const ORANGE: [u8; 3] = [235, 140, 0];
const PURPLE: [u8; 3] = [120, 40, 160];

#[test]
fn a_whole_pipeline_run_reports_every_set_bicubic_and_the_finalist() {
    let run = run_copy("report-full");
    let fin = write_later_stages(&run);

    let o = esr_ea(&["report", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", support::cli::stderr(&o));
    let out = stdout(&o);
    for f in [
        "report.md",
        "report.csv",
        "report.json",
        "pareto.png",
        "progress.png",
    ] {
        assert!(out.contains(f), "{f} not named in: {out}");
        assert!(run.join(f).is_file(), "{f} missing");
    }

    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    let header = md.lines().find(|l| l.starts_with("| Model |")).unwrap();
    for col in [
        "Params",
        "Multi-Adds (G, 720p)",
        "Set5 PSNR / SSIM",
        "Urban7 PSNR / SSIM",
        "Validation PSNR",
        "Search fitness",
        "Training time",
    ] {
        assert!(header.contains(col), "{col} not in {header}");
    }
    let bicubic = md_row(&md, "Bicubic");
    for v in ["33.66 / 0.9299", "26.88 / 0.8403", "27.25 / 0.8125"] {
        assert!(bicubic.contains(v), "{v} not in {bicubic}");
    }
    let esrn = md_row(&md, "ESRN-1");
    let params = esr_ea::format::thousands(fin.params);
    let giga = format!("{:.2}", fin.multi_adds as f64 / 1e9);
    for v in [
        params.as_str(),
        giga.as_str(),
        "36.12 / 0.9512",
        "29.50 / 0.8951",
        "28.88 / 0.8438 (+1.62)",
        "2m05s",
    ] {
        assert!(esrn.contains(v), "{v} not in {esrn}");
    }
    let fitness = format!(
        "{:.2} ({:+.2})",
        fin.fitness_psnr,
        fin.fitness_psnr - BICUBIC_VAL.psnr
    );
    assert!(esrn.contains(&fitness), "{fitness} not in {esrn}");
    assert!(md.contains(&format!("`{}`", fin.genes.join(" "))), "{md}");
    assert!(md.contains(&format!(
        "esr-ea upscale --model {}/final/1/model.safetensors",
        run.display()
    )));
    for fact in [
        "| seed | 3 |",
        "| strategy | evolution |",
        "| devices | cpu |",
        "| generations x population | 3 x 4 (3 completed) |",
        "| parameter budget | 20,000..60,000 |",
        "| fully_train | done | 2m05s |",
        "| **total** | | 2m32s |",
        "| bicubic baseline from | final/1/result.json |",
    ] {
        assert!(md.contains(fact), "{fact} not in:\n{md}");
    }
    // The validation images are the folder the config names, not where
    // the bicubic figures were read from (issue 28, item 10).
    let validation = md_row(&md, "validation images");
    assert!(
        !validation.contains("result.json") && validation.contains('/'),
        "{validation}"
    );
    assert!(!md.contains("No finalist"));
    let config = md.lines().find(|l| l.starts_with("| config |")).unwrap();
    assert!(config.ends_with("tiny.yaml |"), "{config}");

    let (header, rows) = read_csv(&run.join("report.csv"));
    assert_eq!(rows.len(), 2, "bicubic + one finalist");
    let (bic, esr) = (&rows[0], &rows[1]);
    assert_eq!(cell(&header, bic, "model"), "Bicubic");
    assert_eq!(
        cell(&header, bic, "Set5_psnr").parse::<f64>().unwrap(),
        33.66
    );
    assert_eq!(
        cell(&header, bic, "Urban7_ssim").parse::<f64>().unwrap(),
        0.8403
    );
    assert_eq!(
        cell(&header, bic, "val_psnr").parse::<f64>().unwrap(),
        27.25
    );
    assert_eq!(cell(&header, esr, "genes"), fin.genes.join(" "));
    assert_eq!(
        cell(&header, esr, "params").parse::<u64>().unwrap(),
        fin.params
    );
    assert_eq!(
        cell(&header, esr, "multi_adds").parse::<u64>().unwrap(),
        fin.multi_adds
    );
    assert_eq!(
        cell(&header, esr, "Set5_psnr").parse::<f64>().unwrap(),
        36.125
    );
    assert_eq!(
        cell(&header, esr, "Urban7_psnr").parse::<f64>().unwrap(),
        29.5
    );
    assert_eq!(
        cell(&header, esr, "fitness_psnr").parse::<f64>().unwrap(),
        fin.fitness_psnr
    );
    assert_eq!(
        cell(&header, esr, "train_seconds").parse::<f64>().unwrap(),
        125.0
    );

    let json: Report =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(json.facts.seed, 3);
    assert_eq!(json.facts.devices, vec!["cpu".to_string()]);
    assert_eq!(
        json.facts.members_evaluated + json.facts.cache_hits as usize,
        12
    );
    assert_eq!(json.facts.total_seconds, Some(152.0));
    assert_eq!(json.facts.finalists, 1);
    let names: Vec<&str> = json.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Set5", "Urban7"]);
    assert_eq!(json.rows.len(), 2);
    assert_eq!(json.rows[0].kind, RowKind::Bicubic);
    let row = &json.rows[1];
    assert_eq!(row.kind, RowKind::Finalist);
    assert_eq!(row.genes, fin.genes);
    assert_eq!(row.sets[0].score.psnr, 36.125);
    assert_eq!(row.sets[1].score.ssim, 0.8951);
    assert_eq!(row.val_over_bicubic_db, Some(28.875 - 27.25));

    check_chart(&run.join("pareto.png"), &[RED, ORANGE, PURPLE]);
    check_chart(&run.join("progress.png"), &[RED]);

    // Regenerating gives the same report.
    let o = esr_ea(&["report", run.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(run.join("report.md")).unwrap(), md);
    std::fs::remove_dir_all(run.parent().unwrap()).unwrap();
}

#[test]
fn a_run_that_only_searched_reports_its_best_and_says_no_finalist_was_trained() {
    let run = run_copy("report-search-only");
    let files = report::write_report(&run).unwrap();
    assert_eq!(files.markdown, run.join("report.md"));
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("No finalist was fully trained"), "{md}");
    assert!(md.contains("fully_train"), "{md}");
    let st = state(&run);
    let best = esr_ea::engine::export::best_members(&st, st.elites.len());
    let elite = &best[0];
    let row = md_row(&md, "search-1");
    assert!(
        row.contains(&esr_ea::format::thousands(elite.params)),
        "{row}"
    );
    assert!(md.contains(&format!("`{}`", elite.genes)), "{md}");
    assert!(md.contains("train --model"), "{md}");

    let json: Report =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json.facts.finalists, 0);
    assert!(json.sets.is_empty());
    assert_eq!(json.rows.len(), 1 + best.len());
    // Bicubic measured on the run's validation crop: a real PSNR, and the
    // fitness column is taken against it.
    let bicubic = json.rows[0].val_psnr.expect("bicubic measured");
    assert!((15.0..50.0).contains(&bicubic), "{bicubic}");
    assert!(json.facts.bicubic_note.is_none());
    let e = &json.rows[1];
    assert_eq!(e.kind, RowKind::Searched);
    assert_eq!(e.fitness_psnr, elite.fitness());
    assert_eq!(
        e.fitness_over_bicubic_db,
        Some(elite.fitness().unwrap() - bicubic)
    );
    assert_eq!(e.model_file.as_deref(), Some("export/1.safetensors"));

    let (header, rows) = read_csv(&files.csv);
    assert_eq!(rows.len(), json.rows.len());
    assert_eq!(
        cell(&header, &rows[0], "val_psnr").parse::<f64>().unwrap(),
        bicubic
    );
    assert_eq!(
        cell(&header, &rows[1], "fitness_psnr")
            .parse::<f64>()
            .unwrap(),
        elite.fitness().unwrap()
    );

    check_chart(&files.pareto, &[ORANGE]);
    check_chart(&files.progress, &[RED]);
    std::fs::remove_dir_all(run.parent().unwrap()).unwrap();
}

#[test]
fn report_names_what_is_missing_in_one_line() {
    let dir = temp_dir("report-errors");
    let o = esr_ea(&["report", dir.join("nowhere").to_str().unwrap()]);
    error_line(&o, "no such folder");
    let o = esr_ea(&["report", dir.to_str().unwrap()]);
    error_line(&o, "state.json");
    assert!(!dir.join("report.md").exists());

    // A stage pipeline.json calls done without its file.
    let run = run_copy("report-missing");
    write_later_stages(&run);
    std::fs::remove_file(run.join("final/1/result.json")).unwrap();
    let o = esr_ea(&["report", run.to_str().unwrap()]);
    error_line(&o, "final/1/result.json is missing");
    write_later_stages(&run);
    std::fs::remove_file(run.join("bench.json")).unwrap();
    let o = esr_ea(&["report", run.to_str().unwrap()]);
    error_line(&o, "bench.json is missing");
    std::fs::write(run.join("bench.json"), "{").unwrap();
    let o = esr_ea(&["report", run.to_str().unwrap()]);
    error_line(&o, "bench.json: not a valid esr-ea results file");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(run.parent().unwrap()).unwrap();
}

//! The embedded default, shortened, against figures recorded before the
//! structural changes of issue 26: a refactoring must leave what a seeded
//! run does (genes, fitness, the fully trained model) as it was.
//!
//! The config is `configs/quick.yaml` with two generations, 10 steps a
//! member at batch 4, 20 steps of full training and validation on centred
//! 48 px crops (so the test takes seconds); everything else, the seed
//! included, is the default. The AVX2 kernels are asked for by name so that the figures do
//! not depend on whether the CPU has AVX-512 (kernel sets round
//! differently); PSNRs are compared to 1e-3 dB, everything else exactly.
//! To record again (after a change that is meant to change results):
//! `ESR_EA_RECORD=1 cargo test --test commands recorded_run`.

use std::path::Path;
use std::process::Command;

use esr_ea::ops::direct::Kernels;

use crate::support::temp_dir;

const RECORDED: &str = "tests/data/recorded_quick_run.txt";

/// The shortened embedded default.
fn config(dir: &Path) -> std::path::PathBuf {
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
    let mut steps_seen = 0;
    let mut milestones_seen = 0;
    let text: Vec<String> = include_str!("../../configs/quick.yaml")
        .lines()
        .map(|line| {
            if line.starts_with("    steps: ") {
                steps_seen += 1;
                let steps = if steps_seen == 1 { 10 } else { 20 };
                return format!("    steps: {steps}");
            }
            if line.starts_with("      milestones: [") {
                milestones_seen += 1;
                let m = if milestones_seen == 1 {
                    "[10, 15]"
                } else {
                    "[20, 30]"
                };
                return format!("      milestones: {m}");
            }
            if line.starts_with("      batch_size: 8") {
                return line.replace("batch_size: 8", "batch_size: 4");
            }
            if line.trim_start().starts_with("num_generation: 3 ") {
                return line.replace("num_generation: 3 ", "num_generation: 2 ");
            }
            let line = line.replace("../assets", assets);
            if line.starts_with("      root_HR: ") && line.ends_with("/assets/val") {
                return format!("{line}\n      val_crop: 48");
            }
            line
        })
        .collect();
    assert_eq!(
        (steps_seen, milestones_seen),
        (2, 2),
        "quick.yaml changed shape"
    );
    let path = dir.join("quick-short.yaml");
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

/// What a run did, one line per member and one for the final model:
/// `member ID GENES PARAMS MULTI_ADDS STATE ORIGIN FITNESS` and `final PSNR`.
fn figures(run: &Path) -> String {
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("history.csv has no {name} column: {header:?}"))
    };
    let (id, genes, params, adds, state, psnr, origin) = (
        col("id"),
        col("genes"),
        col("params"),
        col("multi_adds"),
        col("state"),
        col("psnr"),
        col("origin"),
    );
    let mut rows: Vec<String> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!(
                "member {} {} {} {} {} {} {}",
                f[id],
                f[genes].trim_matches('"'),
                f[params],
                f[adds],
                f[state],
                f[origin],
                f[psnr]
            )
        })
        .collect();
    // Rows are written as members finish; the record is by member.
    rows.sort_by_key(|r| r.split(' ').nth(1).unwrap().parse::<u64>().unwrap());
    let result = std::fs::read_to_string(run.join("final/1/result.json")).unwrap();
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    rows.push(format!("final {:.4}", result["val_psnr"].as_f64().unwrap()));
    rows.join("\n") + "\n"
}

/// Same words, and numbers within 1e-3 (PSNRs) or equal (the rest).
fn same_figures(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        a.split_whitespace().collect(),
        b.split_whitespace().collect(),
    );
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x == y
                || matches!(
                    (x.parse::<f64>(), y.parse::<f64>()),
                    (Ok(p), Ok(q)) if x.contains('.') && (p - q).abs() <= 1e-3
                )
        })
}

#[test]
fn the_shortened_default_run_gives_the_recorded_figures() {
    if !Kernels::Avx2.available() {
        eprintln!(
            "\nskipped: the recorded figures are of the AVX2 kernels, which this CPU lacks\n"
        );
        return;
    }
    let dir = temp_dir("recorded-run");
    let run = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["search", "--headless", "--stop-after", "train", "--config"])
        .arg(config(&dir))
        .arg("--run-dir")
        .arg(&run)
        .env("ESR_EA_DIRECT", Kernels::Avx2.name())
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let now = figures(&run);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED);
    if std::env::var("ESR_EA_RECORD").as_deref() == Ok("1") {
        std::fs::write(&path, &now).unwrap();
        eprintln!("recorded {}:\n{now}", path.display());
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap();
    assert!(
        same_figures(&recorded, &now),
        "the run differs from {RECORDED}:\nrecorded:\n{recorded}\nnow:\n{now}"
    );
}

//! `report::compare` on made-up runs whose answer is known by construction.

use std::path::{Path, PathBuf};

use crate::support::temp_dir;
use esr_ea::report::compare::{bootstrap_difference, mean_sd, verdict, Comparison, RunCurve};

const HEADER: &str = "generation,id,genes,blocks,params,multi_adds,state,psnr,ssim,seconds,origin,hand_made,psnr_over_bicubic";

/// A run directory with a config of `strategy` and a history of `fitness`
/// (one trained member each, 10 s each), plus one cache hit that costs nothing.
fn fake_run(root: &Path, name: &str, strategy: &str, seed: u64, fitness: &[f64]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        format!("seed: {seed}\nnas:\n  search_algorithm: {{type: {strategy}}}\n"),
    )
    .unwrap();
    let mut csv = format!("{HEADER}\n");
    for (i, f) in fitness.iter().enumerate() {
        csv.push_str(&format!(
            "1,{i},C_4_8_8,4,30000,1000,done,{f},0.9,10.0,initial,false,{:.4}\n",
            f - 30.0
        ));
    }
    csv.push_str(&format!(
        "2,99,C_4_8_8,4,30000,1000,cached,{},0.9,0.0,initial,false,0\n",
        fitness[0]
    ));
    std::fs::write(dir.join("history.csv"), csv).unwrap();
    dir
}

fn runs(root: &Path, strategy: &str, seeds: u64, base: f64) -> Vec<PathBuf> {
    (0..seeds)
        .map(|s| {
            let wobble = 0.01 * s as f64;
            let f = [base - 0.5 + wobble, base + wobble, base - 0.2 + wobble];
            fake_run(root, &format!("{strategy}{s}"), strategy, s, &f)
        })
        .collect()
}

#[test]
fn a_run_is_read_as_its_incumbent_curve() {
    let root = temp_dir("compare-one");
    let dir = fake_run(&root, "r", "random", 4, &[31.0, 30.5, 31.4]);
    let r = RunCurve::load(&dir).unwrap();
    assert_eq!((r.strategy.as_str(), r.seed), ("random", 4));
    assert_eq!(r.evaluations, 3, "the cache hit is not a training");
    assert_eq!(r.train_seconds, 30.0);
    assert_eq!(
        r.points,
        [(1, 10.0, 31.0), (2, 20.0, 31.0), (3, 30.0, 31.4)]
    );
    assert_eq!((r.best_at(2), r.best()), (Some(31.0), Some(31.4)));
    assert!((r.bicubic.unwrap() - 30.0).abs() < 1e-9);
    assert_eq!(r.final_over_bicubic, None);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_better_strategy_by_construction_is_named_with_its_interval() {
    let root = temp_dir("compare-better");
    let mut dirs = runs(&root, "evolution", 5, 31.0);
    dirs.extend(runs(&root, "random", 5, 30.5));
    let c = Comparison::load(&dirs).unwrap();
    assert_eq!(c.common_evaluations, 3);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let v = &c.verdicts()[0];
    assert!(v.contains("evolution is better by 0.500 dB"), "{v}");
    assert!(!v.contains("rough"), "{v}");
    let md = c.markdown();
    assert!(md.contains("| evolution | 5 |"), "{md}");
    assert!(md.contains("| random | 5 |"), "{md}");
    assert_eq!(c.csv().lines().count(), 1 + 10 * 3);

    // The other way round, and with few runs the interval is called rough.
    let mut dirs = runs(&root, "evolution", 3, 30.0);
    dirs.extend(runs(&root, "random", 3, 30.8).into_iter().map(|d| {
        let renamed = d.with_file_name(format!("r-{}", d.file_name().unwrap().to_string_lossy()));
        std::fs::rename(&d, &renamed).unwrap();
        renamed
    }));
    let v = &Comparison::load(&dirs).unwrap().verdicts()[0];
    assert!(v.contains("random search is better by 0.800 dB"), "{v}");
    assert!(v.contains("only 3 and 3 runs"), "{v}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn identical_strategies_show_no_difference_and_too_few_runs_no_verdict() {
    let same = [30.0, 30.2, 29.9, 30.1, 30.05];
    let v = verdict("x", &same, &same);
    assert!(v.contains("no difference shown"), "{v}");
    assert!(v.contains("includes 0"), "{v}");
    let v = verdict("x", &[30.0], &same);
    assert!(v.contains("too few runs for a verdict"), "{v}");
    let (diff, lo, hi) = bootstrap_difference(&[1.0, 1.0], &[0.0, 0.0], 1000, 0);
    assert_eq!((diff, lo, hi), (1.0, 1.0, 1.0));
    let (m, s) = mean_sd(&[1.0, 2.0, 3.0]).unwrap();
    assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
    assert_eq!(mean_sd(&[]), None);
}

#[test]
fn runs_of_different_budgets_are_flagged_and_one_run_is_refused() {
    let root = temp_dir("compare-budget");
    let a = fake_run(&root, "a", "evolution", 0, &[30.0]);
    let b = fake_run(&root, "b", "random", 0, &[30.0]);
    std::fs::write(
        b.join("config.yaml"),
        "seed: 0\nnas:\n  search_algorithm: {type: random, policy: {num_generation: 7}}\n",
    )
    .unwrap();
    let c = Comparison::load(&[a.clone(), b]).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("not the same budget"));
    let err = Comparison::load(&[a]).unwrap_err().to_string();
    assert!(err.contains("at least two run directories"), "{err}");
    let err = Comparison::load(&[root.join("nope"), root.join("a")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

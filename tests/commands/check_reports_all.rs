//! `search --check` reports every problem it finds and prints the plan
//! whatever the data folders say; a config without `nas.dataset` trains on
//! the embedded photographs and says so in one line.

use std::process::{Command, Output};

fn quick_yaml() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quick.yaml")).unwrap()
}

fn without_dataset(text: &str) -> String {
    let start = text
        .find("\n  dataset:\n")
        .expect("quick.yaml has nas.dataset");
    let end = text
        .find("\n  trainer:\n")
        .expect("quick.yaml has nas.trainer");
    // fully_train.dataset refers to nas.dataset: drop it too (then it
    // defaults to nas.dataset, i.e. the embedded photographs as well).
    format!("{}{}", &text[..start], &text[end..]).replace("  dataset:\n    ref: nas.dataset\n", "")
}

fn check(name: &str, text: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("esr-ea-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["search", "--check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    o
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_unreachable_budget_without_a_dataset_reports_both_facts() {
    let cfg = without_dataset(&quick_yaml())
        .replace("max_params: 150000", "max_params: 20000")
        .replace("min_params: 25000", "min_params: 10000");
    let o = check("budget", &cfg);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "{out}");
    assert!(
        err.contains("max_params = 20000 is below the smallest network"),
        "{err}"
    );
    assert!(err.contains("embedded photographs"), "{err}");
    assert!(out.contains("training per individual"), "{out}");
}

#[test]
fn missing_data_folders_are_all_listed_after_the_plan() {
    let cfg = quick_yaml()
        .replace("root_HR: ../assets/train", "root_HR: /no/such/train")
        .replace("root_HR: ../assets/val", "root_HR: /no/such/val");
    let o = check("folders", &cfg);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success());
    assert!(
        out.contains("generations x") && out.contains("reachable:"),
        "no plan: {out}"
    );
    for key in ["nas.dataset.train.root_HR", "nas.dataset.test.root_HR"] {
        assert!(err.contains(key), "{key} not reported: {err}");
    }
    assert!(err.contains("problems in"), "{err}");
}

#[test]
fn a_config_without_a_dataset_uses_the_embedded_photographs() {
    let o = check("nodata", &without_dataset(&quick_yaml()));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("embedded photographs"))
        .collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(
        out.contains("assets/train") && out.contains("assets/val"),
        "{out}"
    );
}

fn paper_yaml() -> String {
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/esr_ea.yaml"))
        .unwrap()
        .replace("../assets", assets)
}

#[test]
fn the_papers_plan_says_what_training_and_validation_need() {
    let o = check("paper-memory", &paper_yaml());
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    let training = out
        .lines()
        .find(|l| l.starts_with("memory: training step (batch 16 x 64x64 LR)"))
        .unwrap_or_else(|| panic!("no training line: {out}"));
    assert!(training.contains("available on this machine"), "{training}");
    let validation = out
        .lines()
        .find(|l| l.starts_with("memory: validation of the largest image"))
        .unwrap_or_else(|| panic!("no validation line: {out}"));
    assert!(validation.contains("(one pass)"), "{validation}");
}

#[test]
fn a_training_step_larger_than_the_machine_is_a_problem() {
    let cfg = paper_yaml().replacen("batch_size: 16", "batch_size: 200000", 1);
    let o = check("paper-oom", &cfg);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        err.contains("problem: a training step of the largest networks needs about")
            && err.contains("lower nas.dataset.train.batch_size"),
        "{err}"
    );
}

/// `dir/train` and `dir/val` with copies of two embedded photographs each,
/// and quick.yaml pointing at them.
fn data_folders(dir: &std::path::Path) -> String {
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
    for (split, photos) in [
        ("train", ["astronaut.png", "brick.png"]),
        ("val", ["coffee.png", "bliznaca.png"]),
    ] {
        let out = dir.join(split);
        std::fs::create_dir_all(&out).unwrap();
        for p in photos {
            let src = std::path::Path::new(assets).join(split).join(p);
            let src = if src.exists() {
                src
            } else {
                std::path::Path::new(assets).join("train").join(p)
            };
            std::fs::copy(&src, out.join(p)).unwrap();
        }
    }
    quick_yaml()
        .replace(
            "root_HR: ../assets/train",
            &format!("root_HR: {}", dir.join("train").display()),
        )
        .replace(
            "root_HR: ../assets/val",
            &format!("root_HR: {}", dir.join("val").display()),
        )
}

fn small_png(path: &std::path::Path, side: u32) {
    image::RgbImage::from_pixel(side, side, image::Rgb([90, 120, 150]))
        .save(path)
        .unwrap();
}

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Items 1-3 of the QA issue: every image problem of every folder is listed
/// by `--check`, naming the file and what it needs, and `--check` fails.
#[test]
fn check_lists_every_image_problem_with_its_file() {
    let dir = data_dir("check");
    let cfg = data_folders(&dir);
    small_png(&dir.join("val/small10.png"), 10);
    small_png(&dir.join("train/small10.png"), 10);
    std::fs::write(
        dir.join("train/truncated.png"),
        &std::fs::read(dir.join("train/brick.png")).unwrap()[..300],
    )
    .unwrap();
    small_png(&dir.join("train/one.png"), 1);
    let o = check("images", &cfg);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    let problem = |needle: &str| {
        err.lines()
            .find(|l| l.starts_with("problem: ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no problem line with {needle}: {err}"))
            .to_string()
    };
    let val = problem("val/small10.png");
    assert!(
        val.contains("nas.dataset.test") && val.contains("15x15"),
        "{val}"
    );
    let train = problem("train/small10.png");
    assert!(
        train.contains("nas.dataset.train") && train.contains("crop 24"),
        "{train}"
    );
    problem("truncated.png");
    problem("one.png");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_fails_on_an_empty_folder_and_one_without_images() {
    let dir = data_dir("empty");
    let cfg = data_folders(&dir);
    for f in std::fs::read_dir(dir.join("train")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let o = check("empty", &cfg);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("nas.dataset.train") && err.contains("train"),
        "{err}"
    );
    std::fs::write(dir.join("train/notes.txt"), "not an image").unwrap();
    let o = check("nonimages", &cfg);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("nas.dataset.train"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A validation image too small to score stops the search at start, before
/// any member trains, naming the file (item 1).
#[test]
fn a_search_with_a_too_small_validation_image_stops_before_training() {
    let dir = data_dir("start");
    let cfg_text = data_folders(&dir);
    small_png(&dir.join("val/small10.png"), 10);
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let run = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args([
            "search",
            "--headless",
            "--config",
            cfg.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        err.contains("val/small10.png") && err.contains("15x15"),
        "{err}"
    );
    assert!(!run.join("history.csv").exists(), "a member trained: {err}");
    // bench --data on the same folder names it too.
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args([
            "bench",
            "--model",
            "bicubic",
            "--scale",
            "2",
            "--data",
            dir.join("val").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("val/small10.png"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

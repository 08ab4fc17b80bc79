//! `esr-ea study` end to end on a tiny real dataset: the files it writes,
//! what they hold, its errors, and a study killed with SIGKILL that resumes
//! to the table of an uninterrupted one.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::{esr_ea, one_line_error, stdout};
use support::state::study_table as table;
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

fn tiny_config(dir: &Path) -> String {
    tiny_dataset(dir, &["train/astronaut.png", "train/chelsea.png"]);
    TinySearch {
        seed: 3,
        generations: 1,
        batch_size: 2,
        steps: 3,
        milestone: 2,
    }
    .write(dir, "tiny.yaml")
    .display()
    .to_string()
}

#[test]
fn study_writes_its_files_with_every_row() {
    let dir = temp_dir("study-e2e");
    let config = tiny_config(&dir);
    let out = dir.join("study");
    let o = esr_ea(&[
        "study",
        "--config",
        &config,
        "--out",
        out.to_str().unwrap(),
        "--archs",
        "4",
        "--repeats",
        "1",
        "--repeat-archs",
        "2",
        "--reference-steps",
        "6",
    ]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", support::cli::stderr(&o));
    // 4 fitness + 2 repeats + 4 references, each with a progress line.
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        10,
        "{text}"
    );
    assert!(text.contains("[10/10] reference"), "{text}");
    assert!(text.contains("Spearman"), "{text}");
    let v = table(&out);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let bicubic = v["plan"]["bicubic_psnr"].as_f64().unwrap();
    assert!(bicubic > 15.0 && bicubic < 60.0, "{bicubic}");
    for row in rows {
        let fitness = row["fitness"].as_f64().unwrap();
        let reference = row["reference"].as_f64().unwrap();
        assert!((row["fitness_over_bicubic"].as_f64().unwrap() - (fitness - bicubic)).abs() < 1e-9);
        assert!(
            (row["reference_over_bicubic"].as_f64().unwrap() - (reference - bicubic)).abs() < 1e-9
        );
        // Within the tiny config's budget (20k..60k).
        let params = row["params"].as_u64().unwrap();
        assert!((20_000..=60_000).contains(&params), "{params}");
    }
    assert_eq!(rows[0]["repeats"].as_array().unwrap().len(), 1);
    assert!(rows[0]["fitness_sd"].is_number());
    assert!(rows[2]["fitness_sd"].is_null());
    assert_eq!(v["compared"], 4);
    assert!(v["seed_noise_sd"].is_number() && v["spread_sd"].is_number());
    let csv = std::fs::read_to_string(out.join("study.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("index,genes,params,fitness_psnr,fitness_over_bicubic_db"));
    let png = std::fs::read(out.join("study.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (900, 640));
    assert_eq!(
        std::fs::read_dir(out.join("trainings")).unwrap().count(),
        10
    );
    // A second study in the same folder is refused, naming --resume.
    let again = esr_ea(&["study", "--config", &config, "--out", out.to_str().unwrap()]);
    one_line_error(&again, "--resume");
    // A finished study resumed trains nothing and gives the same table.
    let resumed = esr_ea(&["study", "--resume", out.to_str().unwrap()]);
    assert!(resumed.status.success());
    assert!(!stdout(&resumed).lines().any(|l| l.starts_with('[')));
    assert_eq!(table(&out), v);
}

#[test]
fn study_rejects_bad_settings_in_one_line() {
    let dir = temp_dir("study-bad");
    let config = tiny_config(&dir);
    let out = dir.join("s");
    let s = out.to_str().unwrap();
    one_line_error(
        &esr_ea(&["study", "--config", &config, "--out", s, "--archs", "1"]),
        "--archs",
    );
    one_line_error(
        &esr_ea(&[
            "study",
            "--config",
            &config,
            "--out",
            s,
            "--archs",
            "3",
            "--reference-steps",
            "0",
        ]),
        "--reference-steps",
    );
    one_line_error(
        &esr_ea(&["study", "--resume", dir.join("nothing").to_str().unwrap()]),
        "study directory",
    );
}

#[test]
fn study_killed_with_sigkill_resumes_to_the_same_table() {
    let dir = temp_dir("study-kill");
    let config = tiny_config(&dir);
    let args = |out: &Path| {
        vec![
            "study".to_string(),
            "--config".into(),
            config.clone(),
            "--out".into(),
            out.display().to_string(),
            "--archs".into(),
            "3".into(),
            "--repeats".into(),
            "1".into(),
            "--repeat-archs".into(),
            "1".into(),
            // Long enough that the kill lands while references train.
            "--reference-steps".into(),
            "150".into(),
        ]
    };
    let whole = dir.join("whole");
    let o = esr_ea(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", support::cli::stderr(&o));

    let killed = dir.join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let records = killed.join("trainings");
    // Finished records only, not a temporary file the kill may leave.
    let count = || {
        std::fs::read_dir(&records)
            .map(|d| {
                d.filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().ends_with(".json")
                })
                .count()
            })
            .unwrap_or(0)
    };
    let start = Instant::now();
    while count() < 4 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = count();
    assert!(
        (4..7).contains(&at_kill),
        "the kill should land mid-study: {at_kill} of 7 trainings recorded"
    );
    // Copied without its weights (records only), it still resumes.
    std::fs::remove_dir_all(killed.join("models")).unwrap();
    let o = esr_ea(&["study", "--resume", killed.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", support::cli::stderr(&o));
    // Only the missing trainings ran again.
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        7 - at_kill,
        "{text}"
    );
    assert_eq!(table(&whole), table(&killed));
    assert!(!text.contains("failed"), "{text}");
}

#[test]
fn another_fitness_reuses_the_references_of_an_earlier_study() {
    let dir = temp_dir("study-reuse");
    let config = tiny_config(&dir);
    let study = |config: &str, out: &Path, reference_steps: &str, extra: &[&str]| {
        let mut args = vec![
            "study",
            "--config",
            config,
            "--out",
            out.to_str().unwrap(),
            "--archs",
            "3",
            "--repeats",
            "0",
            "--repeat-archs",
            "1",
            "--reference-repeats",
            "1",
            "--reference-steps",
            reference_steps,
        ];
        args.extend_from_slice(extra);
        esr_ea(&args)
    };
    let first = dir.join("first");
    let o = study(&config, &first, "6", &[]);
    assert!(o.status.success(), "{}", support::cli::stderr(&o));

    // Another fitness (more steps, under successive halving), the same reference.
    let longer = TinySearch {
        seed: 3,
        generations: 1,
        batch_size: 2,
        steps: 5,
        milestone: 4,
    }
    .write(&dir, "longer.yaml");
    let text = std::fs::read_to_string(&longer).unwrap().replacen(
        "  trainer:\n",
        "  trainer:\n    successive_halving: {checkpoints: [0.4]}\n",
        1,
    );
    std::fs::write(&longer, text).unwrap();
    let longer = longer.display().to_string();
    let second = dir.join("second");
    let from = first.to_str().unwrap();
    let o = study(&longer, &second, "6", &["--references-from", from]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", support::cli::stderr(&o));
    assert!(
        text.contains("reused 4 finished reference trainings"),
        "{text}"
    );
    // Only the three fitness trainings ran.
    let ran: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(ran.len(), 3, "{text}");
    assert!(ran.iter().all(|l| l.contains("fitness")), "{text}");
    let (a, b) = (table(&first), table(&second));
    for (ra, rb) in a["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["rows"].as_array().unwrap())
    {
        assert_eq!(ra["reference_runs"], rb["reference_runs"]);
        assert_ne!(ra["fitness"], rb["fitness"]);
    }
    assert!(second.join("models/reference-00-r1.safetensors").is_file());
    // The fitness ran whole, its loss recorded at the halving checkpoint
    // (step 2 of 5) and ranked against the fitness and the reference.
    assert!(
        text.contains("fitness loss at step 2 (stopping-rule checkpoint"),
        "{text}"
    );
    let ranks = b["checkpoint_ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 1);
    assert_eq!(ranks[0]["step"], 2);
    assert_eq!(ranks[0]["vs_fitness"].as_array().unwrap().len(), 1);
    assert!(
        a.get("checkpoint_ranks").is_none(),
        "no rule, nothing recorded"
    );

    // A different reference is refused before anything is written.
    let third = dir.join("third");
    let o = study(&longer, &third, "7", &["--references-from", from]);
    one_line_error(&o, "reference training differs");
    assert!(support::cli::stderr(&o).contains("--references-from"));
    assert!(!third.join("plan.json").exists());
}

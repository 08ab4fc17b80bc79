//! Whole searches through the binary on a tiny config: real candle training
//! of tiny networks on tiny real-looking images, a few steps each.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::search;
use support::state::elites_and_history;
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

fn tiny_config(dir: &Path) -> PathBuf {
    tiny_dataset(
        dir,
        &[
            "train/astronaut.png",
            "train/brick.png",
            "train/chelsea.png",
        ],
    );
    TinySearch {
        seed: 3,
        generations: 3,
        batch_size: 2,
        steps: 3,
        milestone: 2,
    }
    .write(dir, "tiny.yaml")
}

#[test]
fn a_search_killed_with_sigkill_resumes_to_the_same_result() {
    let dir = temp_dir("kill");
    let cfg = tiny_config(&dir);
    let cfg = cfg.to_str().unwrap();

    let straight = dir.join("straight");
    let o = search(&[
        "--config",
        cfg,
        "--run-dir",
        straight.to_str().unwrap(),
        "--headless",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("search finished"), "{out}");
    assert!(out.contains("exported the best 2 architectures"), "{out}");
    for f in [
        "state.json",
        "events.jsonl",
        "history.csv",
        "arch.txt",
        "arch_child.txt",
        "config.yaml",
        "export/1.yaml",
        "export/1.safetensors",
    ] {
        assert!(straight.join(f).is_file(), "{f} missing");
    }

    let killed = dir.join("killed");
    kill_mid_search(&["--config", cfg], &killed);
    let o = search(&["--resume", killed.to_str().unwrap(), "--headless"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resuming run"));
    let (resumed, uninterrupted) = (elites_and_history(&killed), elites_and_history(&straight));
    assert!(
        resumed == uninterrupted,
        "resumed run differs:\n{resumed:?}\nvs\n{uninterrupted:?}"
    );
    assert_eq!(
        std::fs::read_to_string(killed.join("history.csv"))
            .unwrap()
            .lines()
            .count(),
        std::fs::read_to_string(straight.join("history.csv"))
            .unwrap()
            .lines()
            .count()
    );
    // A finished run is not run again: every stage is done, nothing is redone.
    let state = std::fs::read(killed.join("state.json")).unwrap();
    let o = search(&["--resume", killed.to_str().unwrap(), "--headless"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("every stage"));
    assert_eq!(std::fs::read(killed.join("state.json")).unwrap(), state);

    // The exported model upscales an image.
    let model = straight.join("export/1.safetensors");
    let up = dir.join("up.png");
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args([
            "upscale",
            "--model",
            model.to_str().unwrap(),
            dir.join("val/0.png").to_str().unwrap(),
            up.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::open(&up).unwrap().width(), 48);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_state_is_reported_clearly() {
    let dir = temp_dir("corrupt");
    let cfg = tiny_config(&dir);
    let run = dir.join("run");
    let o = search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--headless",
    ]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(run.join("state.json")).unwrap();
    std::fs::write(run.join("state.json"), &text[..text.len() - 40]).unwrap();
    let o = search(&["--resume", run.to_str().unwrap(), "--headless"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("state.json is corrupt or truncated"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Starting a new search over it is refused rather than overwriting.
    let o = search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--headless",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a search"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts a headless search into `run`, waits until some members are done
/// and another is training, then SIGKILLs it (no chance to checkpoint).
fn kill_mid_search(args: &[&str], run: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .arg("search")
        .args(args)
        .args(["--run-dir", run.to_str().unwrap(), "--headless"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
        let evaluated = events.matches("\"event\":\"evaluated\"").count();
        let last_is_progress = events
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"progress\""));
        if evaluated >= 5 && last_is_progress {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "search too slow"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("search ended before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--strategy random`, the baseline, runs like the evolution: resumed
/// after SIGKILL to the same result, every member a fresh draw in the
/// budget, and the run says which strategy ran.
#[test]
fn a_random_search_resumes_after_sigkill_and_says_it_is_random() {
    let dir = temp_dir("random");
    let cfg = tiny_config(&dir);
    let cfg = cfg.to_str().unwrap();
    let straight = dir.join("straight");
    let o = search(&[
        "--config",
        cfg,
        "--strategy",
        "random",
        "--run-dir",
        straight.to_str().unwrap(),
        "--headless",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("strategy: random search"), "{out}");
    let config = std::fs::read_to_string(straight.join("config.yaml")).unwrap();
    assert!(config.contains("type: random"), "{config}");
    let history = std::fs::read_to_string(straight.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 3 * 4, "{history}");
    for row in history.lines().skip(1) {
        assert!(row.contains(",initial,"), "bred, not drawn: {row}");
    }
    let killed = dir.join("killed");
    kill_mid_search(&["--config", cfg, "--strategy", "random"], &killed);
    let o = search(&["--resume", killed.to_str().unwrap(), "--headless"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(elites_and_history(&killed), elites_and_history(&straight));
    // The strategy is the run's: a resume cannot change it.
    let o = search(&[
        "--resume",
        killed.to_str().unwrap(),
        "--strategy",
        "evolution",
    ]);
    assert!(!o.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

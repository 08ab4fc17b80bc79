//! One search per run directory, checked with real second processes: a
//! resume of a live run is refused naming the holder, `control` tells a live
//! search from none, and a holder killed with SIGKILL leaves no stale lock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-lock-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny search whose members train long enough to stay alive during the test.
fn long_config(dir: &Path) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for (split, src, side) in [
        ("train", "train/astronaut.png", 48u32),
        ("val", "val/coffee.png", 24u32),
    ] {
        let out = dir.join(split);
        std::fs::create_dir_all(&out).unwrap();
        let img = image::open(assets.join(src)).unwrap().to_rgb8();
        image::imageops::crop_imm(&img, 40, 40, side, side)
            .to_image()
            .save(out.join("0.png"))
            .unwrap();
    }
    let text = r#"
seed: 3
nas:
  search_space:
    esrbody: {block_type: [S, G, C], conv_num: [4], growth_rate: [8, 16], type_prob: [1, 1, 1],
              conv_prob: [1], growth_prob: [1, 1], G0: 8, scale: 2}
  search_algorithm:
    policy: {num_generation: 3, num_individual: 4, num_elitism: 2, mutation_rate: 0.1}
    range: {node_num: 10, min_active: 4, max_params: 60000, min_params: 20000}
  dataset:
    train: {root_HR: train, upscale: 2, crop: 8, batch_size: 1}
    test: {root_HR: val, upscale: 2}
  trainer:
    steps: 100000
    optimizer: {type: Adam, params: {lr: 0.001}}
    lr_scheduler: {type: MultiStepLR, milestones: [2], gamma: 0.5, milestones_unit: steps}
    loss: {type: L1Loss}
"#;
    let path = dir.join("long.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn esr_ea(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(args)
        .output()
        .unwrap()
}

fn spawn_search(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .arg("search")
        .args(args)
        .arg("--headless")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the search in `run` has written its state and holds the lock.
fn wait_for_holder(run: &Path, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lock = std::fs::read_to_string(run.join("lock")).unwrap_or_default();
        if run.join("state.json").is_file() && lock.contains(&format!("\"pid\":{pid}")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "search {pid} never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_live_run_is_refused_and_a_killed_holder_leaves_no_stale_lock() {
    let dir = temp_dir("live");
    let cfg = long_config(&dir);
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let mut first = spawn_search(&["--config", cfg.to_str().unwrap(), "--run-dir", run_s]);
    wait_for_holder(&run, first.id());

    // Two more processes on the live run: both refused in one line naming the holder.
    let host = esr_ea_lock_host();
    for _ in 0..2 {
        let o = esr_ea(&["search", "--headless", "--resume", run_s]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("in use by another search"), "{err}");
        assert!(err.contains(&format!("pid {}", first.id())), "{err}");
        assert!(err.contains(&format!("host {host}")), "{err}");
    }
    // A fresh search into the same folder is refused as well.
    let o = esr_ea(&[
        "search",
        "--headless",
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run_s,
    ]);
    assert!(!o.status.success(), "{}", stderr(&o));

    // control: the live search is named.
    let o = esr_ea(&["control", run_s, "pause"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("pid {}", first.id())), "{out}");

    // kill -9: the kernel drops the lock with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let o = esr_ea(&["control", run_s, "pause"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no search is running"),
        "{}",
        stderr(&o)
    );

    // The stale lock file (the dead pid still in it) does not block a resume.
    let mut second = spawn_search(&["--resume", run_s]);
    wait_for_holder(&run, second.id());
    second.kill().unwrap();
    second.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The host name as the lock records it.
fn esr_ea_lock_host() -> String {
    esr_ea::engine::lock::host_name()
}

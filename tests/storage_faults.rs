//! Storage errors are never a member's fitness: on a real full disk (a tiny
//! tmpfs) the search stops cleanly, exits non-zero with one line, keeps its
//! last good state, and a resume after freeing space ends exactly like an
//! uninterrupted run. A real read-only mount is refused in one line.
//! Mounting needs root (CI runs as root); elsewhere the test says why it
//! skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny_config(dir: &Path) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for (split, sources, side) in [
        (
            "train",
            vec!["train/astronaut.png", "train/brick.png"],
            48u32,
        ),
        ("val", vec!["val/coffee.png"], 24u32),
    ] {
        let out = dir.join(split);
        std::fs::create_dir_all(&out).unwrap();
        for (i, src) in sources.iter().enumerate() {
            let img = image::open(assets.join(src)).unwrap().to_rgb8();
            image::imageops::crop_imm(&img, 40, 40, side, side)
                .to_image()
                .save(out.join(format!("{i}.png")))
                .unwrap();
        }
    }
    let text = r#"
seed: 5
nas:
  search_space:
    esrbody: {block_type: [S, G, C], conv_num: [4], growth_rate: [8, 16], type_prob: [1, 1, 1],
              conv_prob: [1], growth_prob: [1, 1], G0: 8, scale: 2}
  search_algorithm:
    policy: {num_generation: 2, num_individual: 4, num_elitism: 2, mutation_rate: 0.1}
    range: {node_num: 10, min_active: 4, max_params: 60000, min_params: 20000}
  dataset:
    train: {root_HR: train, upscale: 2, crop: 8, batch_size: 2}
    test: {root_HR: val, upscale: 2}
  trainer:
    steps: 2
    optimizer: {type: Adam, params: {lr: 0.001}}
    lr_scheduler: {type: MultiStepLR, milestones: [1], gamma: 0.5, milestones_unit: steps}
    loss: {type: L1Loss}
"#;
    let path = dir.join("tiny.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn search(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .arg("search")
        .args(args)
        .arg("--headless")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A mount undone on drop, even when an assertion fails.
struct Mount(PathBuf);

impl Mount {
    /// Runs `mount ARGS... TARGET`; the reason when it cannot.
    fn new(args: &[&str], target: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(target).unwrap();
        let o = Command::new("mount")
            .args(args)
            .arg(target)
            .output()
            .map_err(|e| format!("no mount command ({e})"))?;
        if !o.status.success() {
            return Err(format!("mount {args:?} failed: {}", stderr(&o).trim()));
        }
        Ok(Mount(target.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Elites and history without wall-clock fields.
fn result_of(run: &Path) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("seconds");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    strip(&mut state);
    format!("{}\n{}", state["elites"], state["history"])
}

#[test]
fn a_full_disk_stops_the_search_and_a_resume_gives_the_same_result() {
    let dir = temp_dir("full");
    let cfg = tiny_config(&dir);
    let cfg = cfg.to_str().unwrap();
    let straight = dir.join("straight");
    let o = search(&["--config", cfg, "--run-dir", straight.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A filesystem that holds the config, the state and a model or two.
    let disk = dir.join("disk");
    let mount = match Mount::new(&["-t", "tmpfs", "-o", "size=320k", "tmpfs"], &disk) {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("skipped: cannot mount a tmpfs here: {reason}");
            return;
        }
    };
    let run = disk.join("run");
    let o = search(&["--config", cfg, "--run-dir", run.to_str().unwrap()]);
    assert!(!o.status.success(), "a full disk must not end as a success");
    let err = stderr(&o);
    eprintln!("full disk: {}", err.trim());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("--resume"), "{err}");
    // The last good state is intact and blames no member for the disk.
    let state = std::fs::read_to_string(run.join("state.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&state).expect("state.json intact");
    assert!(!parsed["finished"].as_bool().unwrap());
    assert!(!state.contains("No space"), "{state}");
    assert!(!state.contains("\"failed\""), "{state}");

    // Free space: move the run to a roomy disk and resume.
    let moved = dir.join("moved");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&run)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(cp.success());
    drop(mount);
    let o = search(&["--resume", moved.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(result_of(&moved), result_of(&straight));

    // A read-only run directory: refused in one line, nothing written.
    let ro = dir.join("ro");
    let _bind = match Mount::new(&["--bind", moved.to_str().unwrap()], &ro).and_then(|m| {
        Mount::new(&["-o", "remount,bind,ro"], &ro).map(|r| {
            std::mem::forget(r);
            m
        })
    }) {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("skipped the read-only part: {reason}");
            return;
        }
    };
    std::fs::remove_file(moved.join("state.json")).ok();
    let o = search(&["--config", cfg, "--run-dir", ro.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    eprintln!("read-only: {}", err.trim());
    assert!(err.contains("Read-only file system"), "{err}");
    drop(_bind);
    std::fs::remove_dir_all(&dir).unwrap();
}

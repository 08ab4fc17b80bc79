//! Storage errors are never a member's fitness: on a real full disk (a tiny
//! tmpfs) the search stops cleanly, exits non-zero with one line, keeps its
//! last good state, and a resume after freeing space ends exactly like an
//! uninterrupted run. A real read-only mount is refused in one line.
//! Mounting needs root (CI runs as root); elsewhere the test says why it
//! skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

use support::cli::{headless_search, stderr};
use support::state::elites_and_history;
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

fn tiny_config(dir: &Path) -> PathBuf {
    tiny_dataset(dir, &["train/astronaut.png", "train/brick.png"]);
    TinySearch {
        seed: 5,
        generations: 2,
        batch_size: 2,
        steps: 2,
        milestone: 1,
    }
    .write(dir, "tiny.yaml")
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

#[test]
fn a_full_disk_stops_the_search_and_a_resume_gives_the_same_result() {
    let dir = temp_dir("full");
    let cfg = tiny_config(&dir);
    let cfg = cfg.to_str().unwrap();
    let straight = dir.join("straight");
    let o = headless_search(&["--config", cfg, "--run-dir", straight.to_str().unwrap()]);
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
    let o = headless_search(&["--config", cfg, "--run-dir", run.to_str().unwrap()]);
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
    let o = headless_search(&["--resume", moved.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(elites_and_history(&moved), elites_and_history(&straight));

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
    let o = headless_search(&["--config", cfg, "--run-dir", ro.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    eprintln!("read-only: {}", err.trim());
    assert!(err.contains("Read-only file system"), "{err}");
    drop(_bind);
    std::fs::remove_dir_all(&dir).unwrap();
}

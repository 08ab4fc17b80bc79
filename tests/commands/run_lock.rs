//! One search per run directory, checked with real second processes: a
//! resume of a live run is refused naming the holder, `control` tells a live
//! search from none, and a holder killed with SIGKILL leaves no stale lock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

use support::cli::{esr_ea, headless_search, stderr};
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

/// A tiny search whose members train long enough to stay alive during the test.
fn long_config(dir: &Path) -> PathBuf {
    tiny_dataset(dir, &["train/astronaut.png"]);
    TinySearch {
        seed: 3,
        generations: 3,
        batch_size: 1,
        steps: 100_000,
        milestone: 2,
    }
    .write(dir, "long.yaml")
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
    let o = headless_search(&["--config", cfg.to_str().unwrap(), "--run-dir", run_s]);
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

/// `control` checks what the dashboard checks, waits for the search's
/// answer, and exits non-zero with the reason when the search says no.
#[test]
fn control_says_no_with_the_reason_and_yes_only_when_the_search_did_it() {
    let dir = temp_dir("control-answers");
    let cfg = long_config(&dir);
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let mut search = spawn_search(&["--config", cfg.to_str().unwrap(), "--run-dir", run_s]);
    wait_for_holder(&run, search.id());
    let control = |args: &[&str]| {
        let mut all = vec!["control", run_s];
        all.extend_from_slice(args);
        esr_ea(&all)
    };
    let refused = |args: &[&str], why: &str| {
        let o = control(args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} was accepted: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!err.contains("sent {"), "{args:?}: {err}");
    };
    // Accepted: the answer is the search's own sentence, after it acted.
    let o = control(&["pause"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("paused"), "{out}");
    assert!(out.contains(&format!("pid {}", search.id())), "{out}");
    refused(&["kill", "99"], "no member #99 in generation 1");
    refused(&["mutate", "99"], "no member #99 in generation 1");
    refused(&["inject", "C_4_8_16"], "1 blocks are too few");
    let big = [
        "inject",
        "C_4_16_16",
        "C_4_16_16",
        "C_4_16_16",
        "C_4_16_16",
        "C_4_16_16",
        "C_4_16_16",
        "C_4_16_16",
        "C_4_16_16",
    ];
    refused(&big, "above the budget");
    // The dashboard's form of an id; a queued member is killed, and then it
    // is done: neither kill nor mutate applies to it any more.
    let o = control(&["kill", "#3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("killed queued #3"));
    refused(&["mutate", "#3"], "mutate #3: it is killed");
    refused(&["kill", "3"], "kill #3: it is killed");
    let o = control(&["kill", "#x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("'#x' is not a member id"),
        "{}",
        stderr(&o)
    );
    search.kill().unwrap();
    search.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The host name as the lock records it.
fn esr_ea_lock_host() -> String {
    esr_ea::engine::lock::host_name()
}

//! A control line that is not UTF-8 is skipped with a warning; the commands
//! after it still arrive (before, the read offset stuck on it for good).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use esr_ea::engine::control::{start_reading_at_end, watch};
use esr_ea::engine::{Command, Inbox};

#[test]
fn a_non_utf8_control_line_is_skipped_and_later_commands_arrive() {
    let dir = std::env::temp_dir().join(format!("esr-ea-ctl-bytes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("control.jsonl");
    std::fs::write(&path, b"").unwrap();
    let (tx, rx) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    // Read from the (empty) file's start, as a search does from its lock:
    // no need to wait for the watcher before writing.
    start_reading_at_end(&path);
    let watcher = watch(path.clone(), tx, Arc::clone(&done));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"{\"command\":\"pa\xffuse\"}\n").unwrap();
    file.write_all(b"{\"command\":\"pause\"}\n").unwrap();
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("message in time")
    };
    match next() {
        Inbox::Warn(w) => assert!(w.contains("not UTF-8"), "{w}"),
        other => panic!("expected a warning, got {other:?}"),
    }
    assert!(matches!(next(), Inbox::Command(Command::Pause)));
    // A later read still goes on from where the good lines ended.
    file.write_all(b"{\"command\":\"stop\"}\n").unwrap();
    assert!(matches!(next(), Inbox::Command(Command::Stop)));
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

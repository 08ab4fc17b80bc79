//! `esr-ea speed` as a user runs it: a tiny network, one step, JSON out.

use std::process::Command;

#[test]
fn speed_json_has_every_phase() {
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args([
            "speed",
            "--steps",
            "1",
            "--batch",
            "1",
            "--patch",
            "8",
            "--arch",
            "S_4_8_8",
            "--inference",
            "none",
            "--threads",
            "1",
            "--json",
        ])
        .output()
        .expect("run esr-ea");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for key in ["forward_ms", "backward_ms", "optimizer_ms", "step_ms"] {
        let s = &v[key];
        let (med, min, max) = (
            s["median"].as_f64().unwrap(),
            s["min"].as_f64().unwrap(),
            s["max"].as_f64().unwrap(),
        );
        assert!(min <= med && med <= max && min >= 0.0, "{key}: {s}");
    }
    assert_eq!(v["params"], 51_603);
    assert_eq!(v["threads"], 1);
    assert!(v["inference"].is_null());
    assert!(v["train_gflops"]["step"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_bytes"]["overall"].as_u64().unwrap() > 0);
    // Linux has /proc/loadavg: three figures; elsewhere there is none to read.
    let load = v["load_average"].as_array().map(Vec::len);
    if cfg!(target_os = "linux") {
        assert_eq!(load, Some(3), "{}", v["load_average"]);
    } else {
        assert!(v["load_average"].is_null(), "{}", v["load_average"]);
    }
}

#[test]
fn speed_rejects_bad_inference_size() {
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["speed", "--arch", "S_4_8_8", "--inference", "720p"])
        .output()
        .expect("run esr-ea");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--inference '720p'"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn speed_times_both_networks_by_default() {
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args([
            "speed",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--batch",
            "1",
            "--patch",
            "8",
            "--inference",
            "none",
            "--threads",
            "1",
            "--json",
        ])
        .output()
        .expect("run esr-ea");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON array");
    let nets = v.as_array().expect("an array of reports");
    let names: Vec<&str> = nets.iter().filter_map(|r| r["network"].as_str()).collect();
    assert_eq!(names, ["seed", "quick"]);
    let params: Vec<u64> = nets.iter().filter_map(|r| r["params"].as_u64()).collect();
    assert_eq!(params, [520_595, 68_671]);
    for r in nets {
        assert!(r["train_gflops"]["step"].as_f64().unwrap() > 0.0, "{r}");
    }
}

#[test]
fn profiling_a_step_on_the_cpu_is_refused_in_one_line() {
    for extra in [
        &["--device", "cpu"][..],
        &["--device", "cpu", "--steps", "0"][..],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
            .args(["speed", "--arch", "S_4_8_8", "--profile-last-step"])
            .args(extra)
            .output()
            .expect("run esr-ea");
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--profile-last-step"), "{err}");
        assert!(err.contains("cuda:N"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

//! `esr-ea device-check`: the CPU-only build refuses CUDA clearly, and the
//! CPU compared with itself matches exactly.

use std::process::Command;

fn esr_ea(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(args)
        .output()
        .expect("esr-ea runs")
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_device_on_a_cpu_build_is_a_clear_error() {
    let out = esr_ea(&["device-check", "--device", "cuda:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built without CUDA"), "{err}");
    assert!(err.contains("--features cuda"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn unknown_device_and_bad_size_are_refused() {
    let out = esr_ea(&["device-check", "--device", "gpu0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'gpu0'") && err.contains("cpu, cuda:N"),
        "{err}"
    );

    let out = esr_ea(&["device-check", "--device", "cpu", "--infer", "0x360"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0x360"), "{err}");
}

#[test]
fn hidden_from_the_help() {
    let out = esr_ea(&["--help"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("device-check"));
}

#[test]
#[ignore = "runs the 17-block seed network forward and backward twice (~5-15 s in a test build)"]
fn cpu_against_cpu_json_reports_zero_difference() {
    let out = esr_ea(&[
        "device-check",
        "--device",
        "cpu",
        "--json",
        "--infer",
        "16x12",
        "--repeat",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ok"], true);
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        assert_eq!(c["forward_max_abs_diff"], 0.0, "{c}");
        assert_eq!(c["grad_worst_rel"], 0.0, "{c}");
    }
    assert_eq!(v["inference"]["output"], serde_json::json!([32, 24]));
}

//! The CUDA side checked without a GPU: the kernels and the profile summary.
//!
//! `src/ops/cuda/kernels.cu` is plain CUDA C, so it also compiles for the
//! host through `tests/support/cuda_host.h`, and
//! `tests/support/cuda_kernels_host.cpp` runs each kernel over small grids
//! against loops written from the definitions. What this cannot see (the
//! launch on a real device, NVRTC) `esr-ea device-check` covers on a GPU.

use std::path::Path;
use std::process::Command;

#[test]
fn cuda_kernels_match_their_definitions_on_the_host() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let support = root.join("tests/support");
    let kernels = root.join("src/ops/cuda/kernels.cu");
    let dir = crate::support::temp_dir("cuda-kernels-host");
    let exe = dir.join("cuda_kernels_host");
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&compiler)
        .args(["-std=c++20", "-O1", "-pthread", "-ffp-contract=off"])
        .arg(format!("-DKERNELS_CU=\"{}\"", kernels.display()))
        .arg("-I")
        .arg(&support)
        .arg("-o")
        .arg(&exe)
        .arg(support.join("cuda_kernels_host.cpp"))
        .output();
    let built = match built {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped: no C++ compiler '{compiler}' (set CXX) to build the kernels for the host"
            );
            return;
        }
        Err(e) => panic!("running {compiler}: {e}"),
    };
    assert!(
        built.status.success(),
        "{compiler} could not build the kernels for the host:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&exe).output().expect("run the host build");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{out}");
    for kernel in [
        "esr_bias_act",
        "esr_channel_shuffle",
        "esr_pixel_shuffle",
        "esr_relu_grad",
        "esr_plane_sums",
    ] {
        assert!(out.contains(kernel), "{kernel} not checked:\n{out}");
    }
    assert!(out.contains("all kernels match their definitions"), "{out}");
}

/// `scripts/ncu_summary.py` (what `scripts/gpu-check.sh` makes of Nsight
/// Compute's CSV) reads both of ncu's layouts, with ncu's and the program's
/// own lines around the table, converts the units, and sums by kernel and
/// by kind of work.
#[test]
fn the_profile_summary_reads_both_ncu_layouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = crate::support::temp_dir("ncu-summary");
    let details = dir.join("details.csv");
    let head = r#""ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value""#;
    let row = |id: u32, name: &str, unit: &str, value: &str| {
        format!(
            r#""{id}","1","esr-ea","h","{name}","1","13","(256, 1, 1)","(16, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","{unit}","{value}""#
        )
    };
    std::fs::write(
        &details,
        [
            "==PROF== Connected to process 1".to_string(),
            r#"{"step_ms":{"median":1.0}}"#.to_string(),
            head.to_string(),
            row(0, "esr_bias_act", "nsecond", "1,500"),
            row(1, "ucopy_f32", "usecond", "2.5"),
            row(2, "esr_bias_act", "nsecond", "500"),
            "==PROF== Disconnected from process 1".to_string(),
        ]
        .join("\n"),
    )
    .unwrap();
    let raw = dir.join("raw.csv");
    std::fs::write(
        &raw,
        "\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\"\n\"\",\"\",\"usecond\"\n\"0\",\"sm90_xmma_fprop\",\"10\"\n",
    )
    .unwrap();
    let o = Command::new("python3")
        .arg(root.join("scripts/ncu_summary.py"))
        .arg(format!("ours={}", details.display()))
        .arg(format!("theirs={}", raw.display()))
        .arg(format!("missing={}", dir.join("none.csv").display()))
        .output();
    let o = match o {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: no python3 to run scripts/ncu_summary.py");
            return;
        }
        Err(e) => panic!("python3: {e}"),
    };
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("== ours: 3 kernel launches, 0.00 ms"), "{out}");
    assert!(
        out.contains("== theirs: 1 kernel launches, 0.01 ms"),
        "{out}"
    );
    assert!(out.contains("== missing: no profile"), "{out}");
    // esr_bias_act: 2 launches, 2.0 us; ucopy_f32 is a copy of 2.5 us.
    assert!(
        out.contains("     2    0.002 ms       1.0 us  44.4%  esr_bias_act"),
        "{out}"
    );
    let copies = out
        .lines()
        .find(|l| l.trim_start().starts_with("copies"))
        .unwrap_or_else(|| panic!("no copies line:\n{out}"));
    assert!(copies.contains("55.6%"), "{copies}");
    assert!(out.contains("side by side"), "{out}");
}

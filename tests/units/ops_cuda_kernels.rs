//! esr-ea's CUDA kernels checked without a GPU: `src/ops/cuda/kernels.cu`
//! is plain CUDA C, so it also compiles for the host through
//! `tests/support/cuda_host.h`, and `tests/support/cuda_kernels_host.cpp`
//! runs each kernel over small grids against loops written from the
//! definitions. What this cannot see (the launch on a real device, NVRTC)
//! `esr-ea device-check` covers on a GPU.

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

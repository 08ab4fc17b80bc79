//! Same seed, same bits, whatever the number of threads: the CPU kernels
//! cut every sum into pieces fixed by the shapes (issue 32).

use std::process::Command;

use esr_ea::ops::direct::Kernels;

use crate::support::temp_dir;

/// The weights after `steps` steps of `genes` trained with `threads`
/// threads (the embedded quick config: batch 8 x 24x24, seed 0).
fn trained(
    genes: &str,
    steps: &str,
    kernels: Kernels,
    threads: usize,
    dir: &std::path::Path,
) -> Vec<u8> {
    let out = dir.join(format!("{}-{threads}", kernels.name()));
    let o = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["train", "--arch", genes, "--steps", steps, "--out"])
        .arg(&out)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("ESR_EA_DIRECT", kernels.name())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out.join("model.safetensors")).unwrap()
}

/// For each kernel set this CPU runs (AVX-512, AVX2, GEMM; sets differ from
/// each other in rounding, so each is compared with itself).
#[test]
fn training_gives_the_same_weights_on_1_2_and_3_threads() {
    let sets: Vec<Kernels> = [Kernels::Avx512, Kernels::Avx2, Kernels::Gemm]
        .into_iter()
        .filter(|k| k.available())
        .collect();
    eprintln!(
        "kernel sets on this CPU: {:?} (the others are not tested here)",
        sets.iter().map(|k| k.name()).collect::<Vec<_>>()
    );
    let seed_network = esr_ea::space::SEED_GENES
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (name, genes, steps) in [
        ("toy", "G_8_16_24 C_4_16_16", "4"),
        // The seed document's 17-block network, of the paper's size.
        ("paper", seed_network.as_str(), "2"),
    ] {
        let dir = temp_dir(&format!("threads-{name}"));
        for &kernels in &sets {
            let one = trained(genes, steps, kernels, 1, &dir);
            for threads in [2, 3] {
                assert!(
                    trained(genes, steps, kernels, threads, &dir) == one,
                    "{name}, {}: the weights after {steps} steps differ between 1 and {threads} threads",
                    kernels.name()
                );
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

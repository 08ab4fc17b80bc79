//! Where the time of one ESRN training step goes, phase by phase, and a
//! profiling harness (`cargo bench --bench ops_step -- [--only train|infer]
//! [--repeats N]`; run the binary under `perf record -g` to profile).
//!
//! Same network and shapes as `esrn_baseline` (the seed's 17-block x2 net,
//! batch 16 of 32x32, inference 1x3x128x128). Set `ESR_EA_CANDLE_OPS=1` to
//! time candle's own convolutions instead of `esr_ea::ops`.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use esr_ea::model::Esrn;
use esr_ea::space::{Arch, GeneList, SEED_GENES};
use esr_ea::train::{Adam, AdamConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn seeded_rand(rng: &mut ChaCha8Rng, dims: &[usize]) -> Result<Tensor> {
    esr_ea::measure::random_tensor(rng, dims, &Device::Cpu).map_err(candle_core::Error::wrap)
}

/// Median, min and max in milliseconds.
fn stats(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "median {:>8.1} ms  min {:>8.1}  max {:>8.1}",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1]
    )
}

fn main() -> Result<()> {
    use support::arg;
    let repeats = arg("--repeats")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    let only = arg("--only").unwrap_or_default();
    let arch = Arch {
        genes: GeneList::parse_args(&[SEED_GENES]).map_err(candle_core::Error::wrap)?,
        g0: 32,
        scale: 2,
        bias: true,
    };
    let (model, varmap) = Esrn::seeded(&arch, 0, &Device::Cpu)?;
    println!(
        "ESRN step phases: {} params, {} threads, custom kernels {}",
        model.num_params(),
        candle_core::utils::get_num_threads(),
        esr_ea::ops::custom_kernels_enabled()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    if only.is_empty() || only == "infer" {
        let lr = seeded_rand(&mut rng, &[1, 3, 128, 128])?;
        let mut times = Vec::new();
        for i in 0..=repeats {
            let t = Instant::now();
            model.forward(&lr)?;
            if i > 0 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        println!("{:<28} {}", "inference 1x3x128x128", stats(times));
    }
    if only.is_empty() || only == "train" {
        let batch = seeded_rand(&mut rng, &[16, 3, 32, 32])?;
        let target = seeded_rand(&mut rng, &[16, 3, 64, 64])?;
        let mut adam = Adam::new(&varmap.data().lock().unwrap(), AdamConfig::default())?;
        let (mut fwd, mut bwd, mut step) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..=repeats {
            // Phases: forward + L1 loss, backward alone, then a whole step
            // (forward, backward, Adam) whose excess over the two is Adam.
            let t = Instant::now();
            let loss = (model.forward(&batch)? - &target)?.abs()?.mean_all()?;
            let t_fwd = t.elapsed();
            let t = Instant::now();
            let grads = loss.backward()?;
            let t_bwd = t.elapsed();
            drop(grads);
            let t = Instant::now();
            let loss = (model.forward(&batch)? - &target)?.abs()?.mean_all()?;
            adam.backward_step(&loss)?;
            let t_step = t.elapsed();
            if i > 0 {
                fwd.push(t_fwd.as_secs_f64() * 1e3);
                bwd.push(t_bwd.as_secs_f64() * 1e3);
                step.push(t_step.as_secs_f64() * 1e3);
            }
        }
        let adam_ms: Vec<f64> = (0..step.len()).map(|i| step[i] - fwd[i] - bwd[i]).collect();
        println!("{:<28} {}", "train forward + L1", stats(fwd));
        println!("{:<28} {}", "train backward", stats(bwd));
        println!("{:<28} {}", "train Adam (step - f - b)", stats(adam_ms));
        println!("{:<28} {}", "train whole step", stats(step));
    }
    Ok(())
}

//! Baseline speed of the candle ESRN (`cargo bench --bench esrn_baseline`).
//!
//! The seed's 17-block x2 network (520,595 parameters): inference on one
//! 128x128 LR image, and one training step (forward, L1, backward, AdamW) on a
//! batch of 16 LR patches of 32x32. Runs on CUDA when built with the `cuda`
//! feature and a GPU is present, else on the CPU. Optional arguments:
//! `--repeats N` (default 5).

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use esr_ea::model::Esrn;
use esr_ea::space::cost::Resolution;
use esr_ea::space::{Arch, GeneList, SEED_GENES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn seeded_rand(rng: &mut ChaCha8Rng, dims: &[usize], dev: &Device) -> candle_core::Result<Tensor> {
    esr_ea::measure::random_tensor(rng, dims, dev).map_err(candle_core::Error::wrap)
}

/// Runs `f` once to warm up, then `repeats` times; returns the durations.
fn time<F: FnMut() -> candle_core::Result<()>>(
    repeats: usize,
    dev: &Device,
    mut f: F,
) -> candle_core::Result<Vec<Duration>> {
    f()?;
    dev.synchronize()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        dev.synchronize()?;
        times.push(start.elapsed());
    }
    Ok(times)
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what:<48} median {:>9.1} ms   min {:>9.1} ms   max {:>9.1} ms   ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeats = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    let dev = Device::cuda_if_available(0)?;
    let arch = Arch {
        genes: GeneList::parse_args(&[SEED_GENES]).map_err(candle_core::Error::wrap)?,
        g0: 32,
        scale: 2,
        bias: true,
    };
    let (model, varmap) = Esrn::seeded(&arch, 0, &dev)?;
    println!(
        "ESRN baseline: {} blocks, x{}, {} params, device {:?}, {} threads",
        arch.genes.len(),
        arch.scale,
        model.num_params(),
        dev,
        candle_core::utils::get_num_threads()
    );
    // Every conv's pixel count is proportional to the LR size, so the 720p
    // Multi-Adds scale exactly to a 128x128 LR input.
    let lr_720p = Resolution::for_scale(arch.scale).lr as f64;
    let gmac = arch.cost().multi_adds as f64 * (128.0 * 128.0) / lr_720p / 1e9;
    println!("one 128x128 forward = {gmac:.2} G multiply-adds (same pixels as the 16x32x32 batch)");
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    let lr = seeded_rand(&mut rng, &[1, 3, 128, 128], &dev)?;
    let times = time(repeats, &dev, || {
        model.forward(&lr)?;
        Ok(())
    })?;
    report("forward 1x3x128x128 -> 256x256", times);

    let batch = seeded_rand(&mut rng, &[16, 3, 32, 32], &dev)?;
    let target = seeded_rand(&mut rng, &[16, 3, 64, 64], &dev)?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-4,
            ..ParamsAdamW::default()
        },
    )?;
    let times = time(repeats, &dev, || {
        let out = model.forward(&batch)?;
        let loss = (out - &target)?.abs()?.mean_all()?;
        opt.backward_step(&loss)
    })?;
    report("train step 16x3x32x32 (fwd+L1+bwd+AdamW)", times);
    Ok(())
}

//! Measuring the network on this machine: how fast it trains and infers
//! ([`speed`]) and whether a device computes what the CPU does
//! ([`device_check`]). Each returns a typed report; the command line prints
//! it as a table or JSON.

pub mod device_check;
pub mod speed;

use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Median, minimum and maximum of a set of timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
}

impl Stats {
    /// Summarises `ms`; `None` when it is empty.
    pub fn of(ms: &[f64]) -> Option<Stats> {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Uniform values in 0..1 from `rng`, as a tensor on `dev`.
pub fn random_tensor(rng: &mut ChaCha8Rng, dims: &[usize], dev: &Device) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
    Ok(Tensor::from_vec(v, dims, dev)?)
}

/// [`random_tensor`] from a generator of its own, seeded with `seed`.
pub fn seeded_tensor(seed: u64, dims: &[usize], dev: &Device) -> Result<Tensor> {
    random_tensor(&mut ChaCha8Rng::seed_from_u64(seed), dims, dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_median_min_max() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn seeded_tensors_repeat_and_lie_in_0_1() {
        let a = seeded_tensor(3, &[2, 3], &Device::Cpu).unwrap();
        let b = seeded_tensor(3, &[2, 3], &Device::Cpu).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
    }
}

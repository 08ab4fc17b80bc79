//! Seeded weight initialisation, independent of the device.
//!
//! candle's CPU generator cannot be seeded, so fresh weights are drawn here
//! from a ChaCha stream on the host and copied to the device: the same seed
//! gives the same network on CPU and CUDA.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Esrn;

/// Overwrites every parameter of `model` (held as variables in `varmap`) with
/// PyTorch's default conv init, U(±1/√fan_in) for weights and biases, drawn
/// in construction order from a generator seeded with `seed`.
pub fn reset_parameters(model: &Esrn, varmap: &VarMap, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the variable map lock is poisoned".into()))?;
    for conv in model.convs() {
        let bound = 1.0 / (conv.fan_in() as f32).sqrt();
        let mut fill = |suffix: &str, like: &Tensor| -> Result<()> {
            let name = format!("{}.{suffix}", conv.name());
            let Some(var) = vars.get(&name) else {
                candle_core::bail!("parameter '{name}' is not in the variable map");
            };
            let values: Vec<f32> = (0..like.elem_count())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            var.set(&Tensor::from_vec(values, like.shape(), like.device())?)
        };
        fill("weight", conv.weight())?;
        if let Some(b) = conv.bias() {
            fill("bias", b)?;
        }
    }
    Ok(())
}

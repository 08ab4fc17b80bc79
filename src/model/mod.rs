//! The ESRN super-resolution network in candle (spec §4, §8): blocks, the
//! whole network, seeded initialisation and self-describing checkpoints.
//!
//! Device-agnostic: everything takes the tensors' or the caller's
//! [`candle_core::Device`], so the same code runs on CPU and CUDA.

#![warn(missing_docs)]

pub mod blocks;
pub mod checkpoint;
pub mod conv;
pub mod esrn;
pub mod infer;
pub mod init;
pub mod memory;
pub mod ops;
pub mod tiled;

pub use blocks::Block;
pub use checkpoint::{
    load_model, load_weights_into, model_from_tensors, save_model, CheckpointError, FORMAT_VERSION,
};
pub use conv::{Conv, ConvKind};
pub use esrn::{check_arch, Esrn};
pub use init::reset_parameters;

/// Number of trainable values held by a variable map.
pub fn varmap_params(varmap: &candle_nn::VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}

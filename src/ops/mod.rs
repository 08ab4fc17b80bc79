//! Fast CPU tensor operations for ESRN training and inference.
//!
//! candle's generic CPU convolution is an order of magnitude slower than
//! PyTorch for the small, many-layered networks ESR_EA trains (its input
//! gradient goes through a transposed convolution, grouped convolutions are
//! split per group). [`conv2d`] and [`conv2d_relu`] are drop-in replacements
//! for the stride-1 "same" convolutions ESRN uses, with direct AVX-512 /
//! AVX2 kernels for the forward, the input gradient (a forward convolution
//! of the flipped weight) and the weight gradient (`weight_grad`), GEMM
//! kernels where those do not apply, and candle's own convolution
//! elsewhere.

pub mod alloc;
mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
mod dense;
pub mod direct;
mod fuse;
pub mod geom;
pub mod kernels;
pub mod mem;
pub mod par;
pub mod pool;
mod shuffle;
mod weight_grad;

pub use conv::{conv2d, conv2d_relu, conv2d_shuffled_relu};
pub use dense::{
    dense_group_block, dense_group_body, dense_group_features, dense_shrink_block,
    dense_shrink_body, dense_shrink_features, BlockEnds, DenseLayer, Residual,
};
pub use fuse::{accumulate_conv1x1, add_conv1x1};
pub use shuffle::{channel_shuffle, pixel_shuffle, pixel_unshuffle};

/// Sets the CPU thread counts; call it first thing in `main`, before any
/// thread exists (it writes environment variables, which candle reads once).
///
/// `threads` (when given) becomes `RAYON_NUM_THREADS`, the size of
/// [`pool`]'s pool for the convolution kernels. Unless the user set
/// `CANDLE_NUM_THREADS`, it is set to 1: candle's own element-wise CPU ops
/// (adds, copies of gradients) then run on the calling thread. They are
/// memory-bound and small, and candle's barrier pool made them the slowest
/// part of a training step on a loaded machine: its caller spins until
/// every worker has been scheduled (measured on 2 cores beside other
/// builds: 1.5-2.4 s per step instead of 2.4-4.7 s).
pub fn configure_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Whether [`conv2d_relu`] fuses the ReLU into the convolution (the default)
/// or applies candle's `relu` after it: set `ESR_EA_UNFUSED_RELU=1` to
/// measure what the fusion saves. Read once per process.
pub fn relu_fusion_enabled() -> bool {
    static UNFUSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !env_flag_once(&UNFUSED, "ESR_EA_UNFUSED_RELU")
}

/// [`env_flag`] read once per process into `cell`.
pub(crate) fn env_flag_once(cell: &std::sync::OnceLock<bool>, name: &str) -> bool {
    *cell.get_or_init(|| env_flag(name))
}

/// True when the environment variable is set to `1`, `true` or `yes`.
fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Whether [`conv2d`] and [`conv2d_relu`] use this module's CPU kernels
/// (the default) or candle's generic ops: set `ESR_EA_CANDLE_OPS=1` to compare
/// the two in the same binary. Read once per process.
pub fn custom_kernels_enabled() -> bool {
    static CANDLE_OPS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !env_flag_once(&CANDLE_OPS, "ESR_EA_CANDLE_OPS")
}

/// Whether the channel and pixel shuffles on CUDA run this crate's kernels,
/// which move whole rows and planes (the default), or candle's
/// reshape/permute copies, whose kernel works out every element's source
/// index with a 64-bit division and remainder per dimension: set
/// `ESR_EA_CUDA_CANDLE_LAYOUT=1` to compare. Read once per process.
pub fn own_layout_kernels_enabled() -> bool {
    static CANDLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !env_flag_once(&CANDLE, "ESR_EA_CUDA_CANDLE_LAYOUT")
}

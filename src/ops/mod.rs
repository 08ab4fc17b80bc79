//! Fast CPU tensor operations for ESRN training and inference.
//!
//! candle's generic CPU convolution is an order of magnitude slower than
//! PyTorch for the small, many-layered networks ESR_EA trains (its input
//! gradient goes through a transposed convolution, grouped convolutions are
//! split per group). [`conv2d`] and [`conv2d_relu`] are drop-in replacements
//! for the stride-1 "same" convolutions ESRN uses, with GEMM-based forward
//! and backward kernels on the CPU and candle's own convolution elsewhere.

pub mod alloc;
mod conv;
pub mod geom;
pub mod kernels;
pub mod mem;
pub mod par;

pub use conv::{conv2d, conv2d_relu};

/// Whether [`conv2d_relu`] fuses the ReLU into the convolution (the default)
/// or applies candle's `relu` after it: set `ESR_EA_UNFUSED_RELU=1` to
/// measure what the fusion saves. Read once per process.
pub fn relu_fusion_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| !env_flag("ESR_EA_UNFUSED_RELU"))
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
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| !env_flag("ESR_EA_CANDLE_OPS"))
}

//! Fast CPU tensor operations for ESRN training and inference.
//!
//! candle's generic CPU convolution is an order of magnitude slower than
//! PyTorch for the small, many-layered networks ESR_EA trains (its input
//! gradient goes through a transposed convolution, grouped convolutions are
//! split per group). [`conv2d`] and [`conv2d_relu`] are drop-in replacements
//! for the stride-1 "same" convolutions ESRN uses, with GEMM-based forward
//! and backward kernels on the CPU and candle's own convolution elsewhere.

mod conv;
pub mod geom;
pub mod kernels;
pub mod par;

pub use conv::{conv2d, conv2d_relu};

//! The CUDA side of the network's operations (built with `--features cuda`).
//!
//! candle 0.11's CUDA convolution is slow where training spends its time:
//! its input gradient is a naive transposed convolution, its weight gradient
//! a direct kernel on a non-contiguous filter, grouped convolutions run one
//! conv per group, and none of it uses cuDNN (candle PR #3905 is open
//! upstream). With the `cudnn` feature [`conv`] runs the forward, the input
//! gradient and the weight and bias gradients of [`super::conv2d`] through
//! cuDNN, each with the algorithm benchmarked once per shape and cached for
//! the process. [`kernels`] holds the small element-wise kernels around it
//! (bias + ReLU, the ReLU's gradient) and the fused Adam of
//! [`crate::train::Adam`]: three launches a step for all variables together
//! instead of about ten kernels a variable.
//!
//! Precision: plain f32 by default (what the CPU computes, what device-check
//! compares). TF32 tensor cores (PyTorch's default for convolutions) are
//! an explicit choice: [`set_tf32`], `--tf32` or `ESR_EA_TF32=1`.

#[cfg(feature = "cudnn")]
pub mod conv;
pub mod kernels;

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{CudaSlice, DevicePtr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape, Storage, Tensor};

/// 0: not decided yet (read `ESR_EA_TF32` on first use), 1: off, 2: on.
static TF32: AtomicU8 = AtomicU8::new(0);

/// Allows (or forbids) TF32 tensor cores for the f32 convolutions and
/// matrix products on CUDA, for the whole process. Call it before the first
/// CUDA convolution: algorithms are chosen and cached per setting.
pub fn set_tf32(on: bool) {
    TF32.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    candle_core::cuda::set_gemm_reduced_precision_f32(on);
}

/// Whether TF32 is allowed (default: no, unless `ESR_EA_TF32=1`).
pub fn tf32() -> bool {
    match TF32.load(Ordering::Relaxed) {
        0 => {
            let on = super::env_flag("ESR_EA_TF32");
            set_tf32(on);
            on
        }
        v => v == 2,
    }
}

/// The device address of element `layout.start_offset()` of a contiguous
/// f32 CUDA storage.
pub(crate) fn f32_ptr(s: &CudaStorage, l: &Layout, what: &str) -> Result<u64> {
    let Some((start, _)) = l.contiguous_offsets() else {
        bail!("CUDA op: {what} must be contiguous");
    };
    let slice = s.as_cuda_slice::<f32>()?;
    let stream = s.device().cuda_stream();
    let (ptr, _sync) = slice.device_ptr(&stream);
    Ok(ptr + (start * std::mem::size_of::<f32>()) as u64)
}

/// The device address of a contiguous f32 CUDA tensor's first element.
///
/// The address stays valid while the tensor lives. Writing through it (the
/// fused Adam updates variables in place) is sound because every kernel of
/// a candle CUDA device runs on that device's one stream, in order.
pub(crate) fn tensor_ptr(t: &Tensor, what: &str) -> Result<u64> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cuda(s) => f32_ptr(s, layout, what),
        _ => bail!("CUDA op: {what} is not on a CUDA device"),
    }
}

/// A new f32 buffer of `n` elements and its device address, for a kernel
/// or library call that writes every element before anything reads it.
pub(crate) fn new_output(dev: &CudaDevice, n: usize) -> Result<(CudaSlice<f32>, u64)> {
    // SAFETY: the caller's kernel writes every element before it is read.
    let out = unsafe { dev.alloc::<f32>(n)? };
    let stream = dev.cuda_stream();
    let ptr = {
        let (p, _sync) = out.device_ptr(&stream);
        p
    };
    Ok((out, ptr))
}

/// A channel or pixel shuffle of a contiguous f32 CUDA tensor into a new
/// one of the same size, by `launch(device, (src, dst))`.
pub(crate) fn permuted(
    s: &CudaStorage,
    l: &Layout,
    out_shape: Shape,
    launch: impl FnOnce(&CudaDevice, (u64, u64)) -> Result<()>,
) -> Result<(CudaStorage, Shape)> {
    let dev = s.device().clone();
    let src = f32_ptr(s, l, "shuffle input")?;
    let (out, dst) = new_output(&dev, l.shape().elem_count())?;
    launch(&dev, (src, dst))?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), out_shape))
}

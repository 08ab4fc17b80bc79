//! Small CUDA kernels of the project, compiled once per process with NVRTC
//! (the library candle already links) and loaded once per device.
//!
//! Why by hand: the bias + ReLU after a cuDNN convolution and the ReLU's
//! gradient are one memory pass each here instead of two or three candle
//! kernels, and Adam over all variables is three launches a step (sum of
//! squared gradients per variable, their sum in a fixed order, the update)
//! instead of about ten element-wise kernels a variable. No library offers
//! these on candle's tensors.

use std::sync::OnceLock;

use candle_core::cuda::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::{bail, CudaDevice, Result};

const MODULE: &str = "esr_ea_kernels";

/// Threads per block of every kernel here (the reductions assume 256).
const THREADS: u32 = 256;

/// The kernels' source (plain CUDA C, no includes).
const SOURCE: &str = include_str!("kernels.cu");

/// The PTX of [`SOURCE`], compiled on first use.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let ptx = PTX.get_or_init(|| {
        let opts = CompileOptions {
            // No fused multiply-add contraction: the same roundings as the
            // CPU's Adam and ReLU code (these kernels are memory-bound).
            fmad: Some(false),
            name: Some("esr_ea_kernels.cu".into()),
            ..Default::default()
        };
        compile_ptx_with_opts(SOURCE, opts)
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    });
    match ptx {
        Ok(p) => Ok(p.as_str()),
        Err(e) => bail!("esr-ea's CUDA kernels do not compile with this NVRTC: {e}"),
    }
}

/// A launch over `n` elements: 256 threads a block, at most 4096 blocks
/// (the kernels loop over the rest).
fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 4096) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A launch over `planes` rows of `plane` elements (see the kernels'
/// source): 256 threads a block, blocks over each row's elements in x (at
/// most 1024) and over the rows in y (at most 65535; the kernels loop over
/// the rest).
fn over_planes(plane: usize, planes: usize) -> LaunchConfig {
    let x = plane.div_ceil(THREADS as usize).clamp(1, 1024) as u32;
    let y = planes.clamp(1, 65535) as u32;
    LaunchConfig {
        grid_dim: (x, y, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `y = act(y + bias)` in place over `[batch, channels, plane]` (bias may be
/// absent: pass `None`); `planes` = batch · channels.
pub fn bias_act(
    dev: &CudaDevice,
    y: u64,
    bias: Option<u64>,
    channels: usize,
    (plane, planes): (usize, usize),
    relu: bool,
) -> Result<()> {
    if bias.is_none() && !relu {
        return Ok(());
    }
    let f = dev.get_or_load_custom_func("esr_bias_act", MODULE, ptx()?)?;
    let mut b = f.builder();
    let (bias_ptr, has_bias) = (bias.unwrap_or(0), i32::from(bias.is_some()));
    let (channels_i, plane_i, planes_i, relu) = (
        channels as i32,
        plane as i64,
        planes as i64,
        i32::from(relu),
    );
    b.arg(&y)
        .arg(&bias_ptr)
        .arg(&has_bias)
        .arg(&channels_i)
        .arg(&plane_i)
        .arg(&planes_i)
        .arg(&relu);
    // SAFETY: the pointers address live f32 buffers of planes·plane (y) and
    // `channels` (bias) elements on this device, as the callers guarantee.
    unsafe { b.launch(over_planes(plane, planes)) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}

/// ShuffleNet's channel shuffle by `groups` of `[batch, channels, plane]`
/// from `src` into `dst` (distinct buffers), whole planes at a time.
pub fn channel_shuffle(
    dev: &CudaDevice,
    (src, dst): (u64, u64),
    (batch, channels, plane): (usize, usize, usize),
    groups: usize,
) -> Result<()> {
    if groups == 0 || channels % groups != 0 {
        bail!("channel shuffle: {channels} channels in {groups} groups");
    }
    let planes = batch * channels;
    let f = dev.get_or_load_custom_func("esr_channel_shuffle", MODULE, ptx()?)?;
    let mut b = f.builder();
    let (c_i, s_i, plane_i, planes_i) =
        (channels as i32, groups as i32, plane as i64, planes as i64);
    b.arg(&src)
        .arg(&dst)
        .arg(&c_i)
        .arg(&s_i)
        .arg(&plane_i)
        .arg(&planes_i);
    // SAFETY: src and dst hold planes·plane f32 each on this device.
    unsafe { b.launch(over_planes(plane, planes)) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}

/// PyTorch's pixel shuffle by `r` from `src` into `dst`, or (`inverse`) its
/// unshuffle, with `[batch, channels, h, w]` the big layout's dims.
pub fn pixel_shuffle(
    dev: &CudaDevice,
    (src, dst): (u64, u64),
    [batch, channels, h, w]: [usize; 4],
    r: usize,
    inverse: bool,
) -> Result<()> {
    if r == 0 || h % r != 0 || w % r != 0 || h > i32::MAX as usize || w > i32::MAX as usize {
        bail!("pixel shuffle by {r}: a {h}x{w} plane");
    }
    let rows = batch * channels * h;
    let f = dev.get_or_load_custom_func("esr_pixel_shuffle", MODULE, ptx()?)?;
    let mut b = f.builder();
    let (r_i, h_i, w_i, rows_i, inv) = (
        r as i32,
        h as i32,
        w as i32,
        rows as i64,
        i32::from(inverse),
    );
    b.arg(&src)
        .arg(&dst)
        .arg(&r_i)
        .arg(&h_i)
        .arg(&w_i)
        .arg(&rows_i)
        .arg(&inv);
    // SAFETY: src and dst hold batch·channels·h·w f32 each on this device.
    unsafe { b.launch(over_planes(w, rows)) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}

/// `out = y > 0 ? g : 0` over `n` elements.
pub fn relu_grad(dev: &CudaDevice, g: u64, y: u64, out: u64, n: usize) -> Result<()> {
    let f = dev.get_or_load_custom_func("esr_relu_grad", MODULE, ptx()?)?;
    let mut b = f.builder();
    let n_i = n as i64;
    b.arg(&g).arg(&y).arg(&out).arg(&n_i);
    // SAFETY: three live f32 buffers of n elements on this device.
    unsafe { b.launch(elementwise(n)) }.map_err(candle_core::Error::wrap)?;
    Ok(())
}

/// `out[c] = Σ_{b, i} dy[b, c, i]` over `dy` `[batch, channels, plane]`:
/// a convolution's bias gradient. One block per (channel, image) sums its
/// plane by a fixed tree, then one thread per channel adds the images in
/// order, in double: the same result every run.
pub fn channel_sums(
    dev: &CudaDevice,
    dy: u64,
    out: u64,
    (batch, channels, plane): (usize, usize, usize),
) -> Result<()> {
    if batch > 65535 {
        bail!("bias gradient: batch {batch}, at most 65535");
    }
    if channels == 0 || batch == 0 {
        return Ok(());
    }
    let stream = dev.cuda_stream();
    let w = candle_core::Error::wrap;
    // SAFETY: every slot is written by esr_plane_sums before it is read.
    let mut partial = unsafe { stream.alloc::<f64>(channels * batch) }.map_err(w)?;
    let f = dev.get_or_load_custom_func("esr_plane_sums", MODULE, ptx()?)?;
    let mut b = f.builder();
    let plane_i = plane as i64;
    b.arg(&dy).arg(&plane_i).arg(&mut partial);
    let cfg = LaunchConfig {
        grid_dim: (channels as u32, batch as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: dy holds batch·channels·plane f32 on this device; partial
    // has channels·batch slots, one per block.
    unsafe { b.launch(cfg) }.map_err(w)?;
    let f = dev.get_or_load_custom_func("esr_row_sums", MODULE, ptx()?)?;
    let mut b = f.builder();
    let (rows, cols) = (channels as i32, batch as i32);
    b.arg(&partial).arg(&rows).arg(&cols).arg(&out);
    // SAFETY: partial holds channels·batch doubles, out `channels` f32.
    unsafe { b.launch(elementwise(channels)) }.map_err(w)?;
    Ok(())
}

/// One Adam step's constants.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
    /// Denominator guard.
    pub eps: f32,
    /// Clip the gradients' global norm to this, when set.
    pub max_grad_norm: Option<f64>,
}

/// One variable for [`adam`]: device addresses of its weights, gradient and
/// two moments (all f32, contiguous, `len` elements).
#[derive(Debug, Clone, Copy)]
pub struct AdamTensor {
    /// Weights, updated in place.
    pub w: u64,
    /// Gradient (read only).
    pub g: u64,
    /// First moment, updated in place.
    pub m: u64,
    /// Second moment, updated in place.
    pub v: u64,
    /// Elements.
    pub len: usize,
}

/// Adam over every tensor at once; returns the gradients' global L2 norm
/// (before clipping), the one value read back from the device.
pub fn adam(dev: &CudaDevice, tensors: &[AdamTensor], step: AdamStep) -> Result<f64> {
    if tensors.is_empty() {
        return Ok(0.0);
    }
    if tensors.len() > 65535 {
        bail!("fused Adam: {} tensors, at most 65535", tensors.len());
    }
    let stream = dev.cuda_stream();
    let ptrs: Vec<u64> = tensors.iter().flat_map(|t| [t.w, t.g, t.m, t.v]).collect();
    let grads: Vec<u64> = tensors.iter().map(|t| t.g).collect();
    let lens: Vec<i64> = tensors.iter().map(|t| t.len as i64).collect();
    let w = candle_core::Error::wrap;
    let ptrs_d = stream.clone_htod(&ptrs).map_err(w)?;
    let grads_d = stream.clone_htod(&grads).map_err(w)?;
    let lens_d = stream.clone_htod(&lens).map_err(w)?;
    let mut partial = stream.alloc_zeros::<f64>(tensors.len()).map_err(w)?;
    let mut sum_sq = stream.alloc_zeros::<f64>(1).map_err(w)?;
    let count = tensors.len() as i32;

    let f = dev.get_or_load_custom_func("esr_sum_squares", MODULE, ptx()?)?;
    let mut b = f.builder();
    b.arg(&grads_d).arg(&lens_d).arg(&mut partial);
    let cfg = LaunchConfig {
        grid_dim: (tensors.len() as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: each gradient address holds lens[t] f32; partial has one slot a tensor.
    unsafe { b.launch(cfg) }.map_err(w)?;

    let f = dev.get_or_load_custom_func("esr_sum_in_order", MODULE, ptx()?)?;
    let mut b = f.builder();
    b.arg(&partial).arg(&count).arg(&mut sum_sq);
    // SAFETY: partial holds `count` doubles, sum_sq one.
    unsafe { b.launch(LaunchConfig::for_num_elems(1)) }.map_err(w)?;

    let longest = tensors.iter().map(|t| t.len).max().unwrap_or(1);
    let blocks_x = longest.div_ceil(THREADS as usize).clamp(1, 256) as u32;
    let f = dev.get_or_load_custom_func("esr_adam", MODULE, ptx()?)?;
    let mut b = f.builder();
    let clip = i32::from(step.max_grad_norm.is_some());
    let max_norm = step.max_grad_norm.unwrap_or(0.0);
    b.arg(&ptrs_d)
        .arg(&lens_d)
        .arg(&sum_sq)
        .arg(&clip)
        .arg(&max_norm)
        .arg(&step.step_size)
        .arg(&step.beta1)
        .arg(&step.beta2)
        .arg(&step.bc2_sqrt)
        .arg(&step.eps);
    let cfg = LaunchConfig {
        grid_dim: (blocks_x, tensors.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: every address holds lens[t] f32 on this device; w, m and v
    // are distinct buffers (variables and their moments), g is read only.
    unsafe { b.launch(cfg) }.map_err(w)?;

    let host = stream.clone_dtoh(&sum_sq).map_err(w)?;
    Ok(host[0].sqrt())
}

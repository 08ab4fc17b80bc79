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

const SOURCE: &str = r#"
typedef long long i64;
typedef unsigned long long u64;

// y[i] = act(y[i] + bias[channel(i)]) in place, NCHW.
extern "C" __global__ void esr_bias_act(float* y, const float* bias, int has_bias,
                                        int channels, i64 plane, i64 n, int relu) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        float v = y[i];
        if (has_bias) v += bias[(i / plane) % channels];
        if (relu) v = v > 0.0f ? v : 0.0f;
        y[i] = v;
    }
}

// out[i] = y[i] > 0 ? g[i] : 0, the gradient through a ReLU whose output was y.
extern "C" __global__ void esr_relu_grad(const float* g, const float* y, float* out, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        out[i] = y[i] > 0.0f ? g[i] : 0.0f;
    }
}

// One block per tensor: partial[t] = sum of g_t[i]^2 in double, reduced by a
// fixed tree (the same result every run).
extern "C" __global__ void esr_sum_squares(const u64* grads, const i64* lens, double* partial) {
    __shared__ double sh[256];
    const float* g = (const float*)grads[blockIdx.x];
    i64 n = lens[blockIdx.x];
    double s = 0.0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
        double x = (double)g[i];
        s += x * x;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// *out = partial[0] + partial[1] + ... in that order.
extern "C" __global__ void esr_sum_in_order(const double* partial, int count, double* out) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double s = 0.0;
        for (int i = 0; i < count; ++i) s += partial[i];
        *out = s;
    }
}

// Adam, PyTorch's formulation, for tensor blockIdx.y (pointers w, g, m, v):
// w -= step_size * m / (sqrt(v) / bc2_sqrt + eps), the gradient first scaled
// down so the global norm sqrt(*sum_sq) is at most max_norm when clip is set.
extern "C" __global__ void esr_adam(const u64* ptrs, const i64* lens, const double* sum_sq,
                                    int clip, double max_norm, float step_size, float b1,
                                    float b2, float bc2_sqrt, float eps) {
    int t = blockIdx.y;
    float* w = (float*)ptrs[4 * t];
    const float* g = (const float*)ptrs[4 * t + 1];
    float* m = (float*)ptrs[4 * t + 2];
    float* v = (float*)ptrs[4 * t + 3];
    i64 n = lens[t];
    float scale = 1.0f;
    if (clip) {
        double norm = sqrt(*sum_sq);
        if (norm > max_norm) scale = (float)(max_norm / (norm + 1e-6));
    }
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        float gi = g[i] * scale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
"#;

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

/// `y = act(y + bias)` in place over `[batch, channels, plane]` (bias may be
/// absent: pass 0 and `has_bias = false`).
pub fn bias_act(
    dev: &CudaDevice,
    y: u64,
    bias: Option<u64>,
    channels: usize,
    plane: usize,
    n: usize,
    relu: bool,
) -> Result<()> {
    if bias.is_none() && !relu {
        return Ok(());
    }
    let f = dev.get_or_load_custom_func("esr_bias_act", MODULE, ptx()?)?;
    let mut b = f.builder();
    let (bias_ptr, has_bias) = (bias.unwrap_or(0), i32::from(bias.is_some()));
    let (channels, plane, n_i, relu) = (channels as i32, plane as i64, n as i64, i32::from(relu));
    b.arg(&y)
        .arg(&bias_ptr)
        .arg(&has_bias)
        .arg(&channels)
        .arg(&plane)
        .arg(&n_i)
        .arg(&relu);
    // SAFETY: the pointers address live f32 buffers of n (y) and `channels`
    // (bias) elements on this device, as the callers guarantee.
    unsafe { b.launch(elementwise(n)) }.map_err(candle_core::Error::wrap)?;
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

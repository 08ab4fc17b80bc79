//! 2-D convolution (stride 1, "same" padding, odd square kernels, any groups)
//! as a candle custom op with its own CPU forward and backward.
//!
//! Why: candle's CPU conv2d computes the input gradient through a slow
//! transposed convolution and runs grouped convolutions as one conv per group
//! plus a concat. Here the forward, the input gradient and the weight/bias
//! gradient are each a few single-threaded GEMMs per (image, row tile), spread
//! over candle's worker threads (see [`super::kernels`]). On CUDA with the
//! `cudnn` feature the same ops run cuDNN ([`super::cuda::conv`]); on other
//! devices and dtypes the functions fall back to candle's conv2d.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use super::geom::ConvGeom;
use super::kernels::{self, Elem};

/// `conv2d(x, weight) + bias` with stride 1 and padding `(k-1)/2`.
///
/// `x` is `[B, C, H, W]`, `weight` `[O, C/groups, k, k]` with `k` odd, `bias`
/// `[O]`; the result is `[B, O, H, W]`. Differentiable with respect to all
/// three. On the CPU (f32/f64) it runs this module's kernels; elsewhere it is
/// candle's own `Tensor::conv2d`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, groups: usize) -> Result<Tensor> {
    conv2d_impl(x, weight, bias, groups, 1, false)
}

/// `relu(conv2d(x, weight, bias, groups))` in one op: on the CPU the ReLU is
/// applied to each output tile while it is still in cache, and its backward
/// is folded into the convolution's.
pub fn conv2d_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
) -> Result<Tensor> {
    conv2d_shuffled_relu(x, weight, bias, groups, 1)
}

/// `relu(conv2d(channel_shuffle(x, shuffle), weight, bias, groups))`: the
/// dense layer of a G block. `channel_shuffle` is ShuffleNet's (view
/// `[B, s, C/s, H, W]`, swap axes 1 and 2, view back); on the CPU it is
/// folded into the convolution's input reads, so the shuffled copy of `x`
/// and of its gradient are never made.
pub fn conv2d_shuffled_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
    shuffle: usize,
) -> Result<Tensor> {
    if !super::relu_fusion_enabled() {
        return conv2d_impl(x, weight, bias, groups, shuffle, false)?.relu();
    }
    conv2d_impl(x, weight, bias, groups, shuffle, true)
}

fn conv2d_impl(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
    shuffle: usize,
    relu: bool,
) -> Result<Tensor> {
    let mut geom = ConvGeom::new(x, weight, bias, groups)?;
    if shuffle == 0 || geom.c_in % shuffle != 0 {
        bail!(
            "conv2d: channel shuffle with {shuffle} groups needs a channel count divisible by it, got {}",
            geom.c_in
        );
    }
    let on_cpu = x.device().is_cpu() && weight.device().is_cpu();
    let cpu_kernels =
        on_cpu && matches!(x.dtype(), DType::F32 | DType::F64) && !(shuffle > 1 && geom.k == 1);
    let cudnn = cudnn_supported(x, weight);
    if !super::custom_kernels_enabled() || !(cpu_kernels || cudnn) {
        return candle_conv2d(
            &super::channel_shuffle(x, shuffle)?,
            weight,
            bias,
            &geom,
            relu,
        );
    }
    let x = if cudnn {
        // cuDNN cannot fold the shuffle into its reads: one shuffled copy.
        super::channel_shuffle(x, shuffle)?
    } else {
        geom.shuffle = shuffle;
        super::alloc::tune_allocator();
        x.clone()
    };
    let op = ConvOp { geom, relu };
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op),
        None => x.apply_op2(&weight, op),
    }
}

/// Whether the convolution runs on cuDNN: f32 on a CUDA device in a build
/// with the `cudnn` feature.
fn cudnn_supported(x: &Tensor, weight: &Tensor) -> bool {
    cfg!(feature = "cudnn")
        && x.device().is_cuda()
        && weight.device().same_device(x.device())
        && x.dtype() == DType::F32
}

/// The same convolution with candle's own ops (any device).
fn candle_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geom: &ConvGeom,
    relu: bool,
) -> Result<Tensor> {
    let mut y = x.conv2d(weight, geom.pad(), 1, 1, geom.groups)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape((1, geom.c_out, 1, 1))?)?;
    }
    if relu {
        y = y.relu()?;
    }
    Ok(y)
}

/// Borrows a contiguous tensor's elements.
fn as_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("conv2d: {what} must be contiguous"),
    }
}

/// Runs `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($s:expr, $f:ident($($arg:expr),*)) => {
        match $s.dtype() {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            d => bail!("conv2d: the CPU kernel handles f32 and f64, got {d:?}"),
        }
    };
}

/// The forward op; arguments `(x, weight[, bias])`.
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    geom: ConvGeom,
    relu: bool,
}

fn forward<T: Elem>(
    op: &ConvOp,
    (x, lx): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let x = as_slice::<T>(x, lx, "input")?;
    let w = as_slice::<T>(w, lw, "weight")?;
    let b = match bias {
        Some((b, lb)) => Some(as_slice::<T>(b, lb, "bias")?),
        None => None,
    };
    let g = &op.geom;
    let y = kernels::conv_forward(x, w, b, g, op.relu);
    Ok((
        T::to_cpu_storage_owned(y),
        Shape::from((g.batch, g.c_out, g.h, g.w)),
    ))
}

impl ConvOp {
    /// Gradients of `(x, weight, bias)`; `None` where the argument needs none.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geom;
        let grad = grad.contiguous()?;
        let grad = if self.relu {
            grad.apply_op2_no_bwd(&res.contiguous()?, &ReluGradOp)?
        } else {
            grad
        };
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &GradInputOp { geom: g })?)
        } else {
            None
        };
        let want_bias = bias.is_some_and(|b| b.track_op());
        if !w.track_op() && !want_bias {
            return Ok((dx, None, None));
        }
        let flat = x.apply_op2_no_bwd(
            &grad,
            &GradWeightOp {
                geom: g,
                with_bias: want_bias,
            },
        )?;
        let w_len = g.w_len();
        let dw = flat.narrow(0, 0, w_len)?.reshape(w.shape())?;
        let db = if want_bias {
            Some(flat.narrow(0, w_len, g.c_out)?)
        } else {
            None
        };
        Ok((dx, w.track_op().then_some(dw), db))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "esr-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, forward(self, (s1, l1), (s2, l2), None))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv::forward(&self.geom, self.relu, (s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "esr-conv2d-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, forward(self, (s1, l1), (s2, l2), Some((s3, l3))))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv::forward(&self.geom, self.relu, (s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, w, Some(b), res, grad)
    }
}

/// The input and weight gradients of a convolution without bias or ReLU
/// (each only when its tensor records gradients), through the same helper
/// ops as [`conv2d`]'s backward: for ops that contain a convolution.
pub(super) fn conv_grads(
    geom: ConvGeom,
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let op = ConvOp { geom, relu: false };
    // `res` is read only for the ReLU's mask, which this op has not.
    let (dx, dw, _) = op.backward(x, w, None, grad, grad)?;
    Ok((dx, dw))
}

/// Backward helper: `(grad, relu_output) → grad · [relu_output > 0]`.
struct ReluGradOp;

fn relu_grad<T: Elem>(
    (g, lg): (&CpuStorage, &Layout),
    (y, ly): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let out = kernels::relu_grad(
        as_slice::<T>(g, lg, "gradient")?,
        as_slice::<T>(y, ly, "output")?,
    );
    Ok((T::to_cpu_storage_owned(out), lg.shape().clone()))
}

impl CustomOp2 for ReluGradOp {
    fn name(&self) -> &'static str {
        "esr-conv2d-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, relu_grad((s1, l1), (s2, l2)))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv::relu_grad((s1, l1), (s2, l2))
    }
}

/// Backward helper: `(grad, weight) → input gradient`.
struct GradInputOp {
    geom: ConvGeom,
}

fn grad_input<T: Elem>(
    g: &ConvGeom,
    (d, ld): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let dx = kernels::conv_grad_input(
        as_slice::<T>(d, ld, "gradient")?,
        as_slice::<T>(w, lw, "weight")?,
        g,
    );
    Ok((
        T::to_cpu_storage_owned(dx),
        Shape::from((g.batch, g.c_in, g.h, g.w)),
    ))
}

impl CustomOp2 for GradInputOp {
    fn name(&self) -> &'static str {
        "esr-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, grad_input(&self.geom, (s1, l1), (s2, l2)))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv::grad_input(&self.geom, (s1, l1), (s2, l2))
    }
}

/// Backward helper: `(x, grad) → [weight gradient, then bias gradient]`, flat.
struct GradWeightOp {
    geom: ConvGeom,
    with_bias: bool,
}

fn grad_weight<T: Elem>(
    op: &GradWeightOp,
    (x, lx): (&CpuStorage, &Layout),
    (d, ld): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let flat = kernels::conv_grad_weight(
        as_slice::<T>(x, lx, "input")?,
        as_slice::<T>(d, ld, "gradient")?,
        &op.geom,
        op.with_bias,
    );
    let n = flat.len();
    Ok((T::to_cpu_storage_owned(flat), Shape::from(n)))
}

impl CustomOp2 for GradWeightOp {
    fn name(&self) -> &'static str {
        "esr-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, grad_weight(self, (s1, l1), (s2, l2)))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv::grad_weight(&self.geom, self.with_bias, (s1, l1), (s2, l2))
    }
}

//! A 1x1 convolution added in place into an existing tensor, for
//! inference without the concatenation the convolution would read.
//!
//! Why: ESRN's global fusion is a 1x1 convolution over the concatenation
//! of every block's output (at 1280x720 the seed network's is 400 channels
//! of 640x360, 370 MB, built from 370 MB of kept outputs). A 1x1
//! convolution over a concatenation is the sum of the convolutions of its
//! pieces by the matching slices of the weight, so an inference can add
//! each block's share as soon as the block is done and drop its output:
//! no concatenation copy, and a peak memory of one fused map instead of
//! every block output twice. [`add_conv1x1`] does that in place, for
//! inference; [`accumulate_conv1x1`] returns a new sum and has gradients,
//! for training, where the concatenation cost a 30 MB copy in the forward
//! and, in the backward, a 30 MB gradient (zeroed, then added to by candle
//! on one thread) cut back into one strided piece per block.

use candle_core::{bail, CpuStorage, CustomOp3, DType, InplaceOp3, Layout, Result, Shape, Tensor};

use super::geom::ConvGeom;
use super::kernels::{self, Elem, OutBuf, Planes};
use super::par::SendPtr;

/// Returns `acc + conv1x1(x, weight)` (no bias) as a new tensor, with
/// gradients for all three: `acc` `[B, O, H, W]`, `x` `[B, C, H, W]`,
/// `weight` `[O, C, 1, 1]`. On the CPU (f32/f64, custom kernels on) one
/// op: `acc` copied, the convolution added onto the copy by the direct
/// kernels; its backward passes `acc`'s gradient through and computes the
/// others as [`super::conv2d`]'s does. Elsewhere candle's add of a
/// convolution.
pub fn accumulate_conv1x1(acc: &Tensor, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let geom = checked_geom("accumulate_conv1x1", acc, x, weight)?;
    let here = [acc, x, weight].iter().all(|t| t.device().is_cpu())
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && acc.dtype() == x.dtype()
        && super::custom_kernels_enabled();
    if !here {
        return acc + super::conv2d(x, weight, None, 1)?;
    }
    acc.contiguous()?.apply_op3(
        &x.contiguous()?,
        &weight.contiguous()?,
        AccumulateConv { geom },
    )
}

/// The geometry of a 1x1 convolution of `x` by `weight` whose output has
/// `acc`'s shape, or an error naming `what`.
fn checked_geom(what: &str, acc: &Tensor, x: &Tensor, weight: &Tensor) -> Result<ConvGeom> {
    let geom = ConvGeom::new(x, weight, None, 1)?;
    if geom.k != 1 || acc.dims() != [geom.batch, geom.c_out, geom.h, geom.w] {
        bail!(
            "{what}: a [{}, {}, {}, {}] sum cannot take a {}x{} convolution of {:?} by {:?}",
            geom.batch,
            geom.c_out,
            geom.h,
            geom.w,
            geom.k,
            geom.k,
            x.dims(),
            weight.dims()
        );
    }
    Ok(geom)
}

/// `acc + conv1x1(x, w)` in a new buffer: written by the direct kernels
/// starting from `acc` where they apply, else `acc` copied and the
/// convolution added onto the copy.
fn accumulate<T: Elem>(
    g: &ConvGeom,
    (acc, la): (&CpuStorage, &Layout),
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
) -> Result<Vec<T>> {
    let Some((start, end)) = la.contiguous_offsets() else {
        bail!("accumulate_conv1x1: the sum must be contiguous");
    };
    let acc = &T::cpu_storage_as_slice(acc)?[start..end];
    let (xp, x_len) = contiguous::<T>(x)?;
    let (wp, w_len) = contiguous::<T>(w)?;
    if x_len != g.x_len() || w_len != g.w_len() || acc.len() != g.y_len() {
        bail!("accumulate_conv1x1: operand sizes do not match the convolution");
    }
    let mut out = OutBuf::<T>::new(acc.len());
    let planes = Planes {
        x_batch: g.c_in * g.hw(),
        y_batch: g.c_out * g.hw(),
    };
    // SAFETY: `x`, `acc` and `out` are dense buffers of the convolution's
    // input and output; `out` is this function's own; the weight slice is
    // live for `w_len` elements.
    unsafe {
        let weight = std::slice::from_raw_parts(wp, w_len);
        if T::direct_forward_onto(xp, weight, g, acc.as_ptr(), out.ptr(), planes) {
            // The kernels wrote every element.
            return Ok(out.assume_init());
        }
    }
    let mut out = acc.to_vec();
    let dense = Layout::contiguous(la.shape());
    add_conv(g, (&mut out, &dense), x, w)?;
    Ok(out)
}

/// The start and length of a contiguous operand.
fn contiguous<T: Elem>((s, l): (&CpuStorage, &Layout)) -> Result<(*const T, usize)> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok((data[start..end].as_ptr(), end - start)),
        None => bail!("accumulate_conv1x1: operands must be contiguous"),
    }
}

/// The op of [`accumulate_conv1x1`]: `(acc, x, weight)`.
struct AccumulateConv {
    geom: ConvGeom,
}

impl CustomOp3 for AccumulateConv {
    fn name(&self) -> &'static str {
        "esr-accumulate-conv1x1"
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
        let shape = l1.shape().clone();
        let out = match s1 {
            CpuStorage::F32(_) => {
                CpuStorage::F32(accumulate(&self.geom, (s1, l1), (s2, l2), (s3, l3))?)
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(accumulate(&self.geom, (s1, l1), (s2, l2), (s3, l3))?)
            }
            _ => bail!("accumulate_conv1x1: the CPU kernel handles f32 and f64"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        acc: &Tensor,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (dx, dw) = super::conv::conv_grads(self.geom, x, weight, &grad)?;
        Ok((acc.track_op().then_some(grad), dx, dw))
    }
}

/// Returns `acc + conv1x1(x, weight)` (no bias), `acc` `[B, O, H, W]`, `x`
/// `[B, C, H, W]`, `weight` `[O, C, 1, 1]`. On the CPU (f32/f64, custom
/// kernels on) the sum is written into `acc`'s own storage, which must then
/// not be shared with any other tensor (a freshly computed one); elsewhere
/// it is a new tensor. Records no gradient: for inference only.
pub fn add_conv1x1(acc: Tensor, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let geom = checked_geom("add_conv1x1", &acc, x, weight)?;
    let in_place = [&acc, x, weight].iter().all(|t| t.device().is_cpu())
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && acc.dtype() == x.dtype()
        && acc.is_contiguous()
        && super::custom_kernels_enabled();
    if !in_place {
        return acc + super::conv2d(x, weight, None, 1)?;
    }
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    acc.inplace_op3(&x, &weight, &AddConv { geom })?;
    Ok(acc)
}

/// The in-place op: `(acc; x, weight)`.
struct AddConv {
    geom: ConvGeom,
}

fn add_conv<T: Elem>(
    g: &ConvGeom,
    (acc, la): (&mut [T], &Layout),
    (x, lx): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
) -> Result<()> {
    let slice = |s: &'_ CpuStorage, l: &Layout| -> Result<(*const T, usize)> {
        let data = T::cpu_storage_as_slice(s)?;
        match l.contiguous_offsets() {
            Some((start, end)) => Ok((data[start..end].as_ptr(), end - start)),
            None => bail!("add_conv1x1: operands must be contiguous"),
        }
    };
    let (xp, x_len) = slice(x, lx)?;
    let (wp, w_len) = slice(w, lw)?;
    let Some((start, end)) = la.contiguous_offsets() else {
        bail!("add_conv1x1: the sum must be contiguous");
    };
    if x_len != g.x_len() || w_len != g.w_len() || end - start != g.y_len() {
        bail!("add_conv1x1: operand sizes do not match the convolution");
    }
    let dst = &mut acc[start..end];
    // SAFETY: a live weight slice of w_len elements.
    let weight = unsafe { std::slice::from_raw_parts(wp, w_len) };
    let planes = Planes {
        x_batch: g.c_in * g.hw(),
        y_batch: g.c_out * g.hw(),
    };
    // SAFETY: `x` and `dst` are dense buffers of the convolution's input
    // and output; `dst` is borrowed mutably, so nothing else touches it.
    unsafe {
        kernels::conv_forward_into(
            xp,
            weight,
            None,
            g,
            false,
            SendPtr(dst.as_mut_ptr()),
            planes,
            true,
        )
    };
    Ok(())
}

impl InplaceOp3 for AddConv {
    fn name(&self) -> &'static str {
        "esr-add-conv1x1"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        match s1 {
            CpuStorage::F32(acc) => add_conv::<f32>(&self.geom, (acc, l1), (s2, l2), (s3, l3)),
            CpuStorage::F64(acc) => add_conv::<f64>(&self.geom, (acc, l1), (s2, l2), (s3, l3)),
            _ => bail!("add_conv1x1: the CPU kernel handles f32 and f64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn ramp(dims: &[usize], seed: f64) -> Tensor {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.61 + seed).sin()).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn adds_the_convolution_of_each_piece() -> Result<()> {
        // conv1x1(cat(a, b), W) = conv1x1(a, W[:, ..3]) + conv1x1(b, W[:, 3..]).
        let (a, b) = (ramp(&[2, 3, 4, 5], 0.1), ramp(&[2, 2, 4, 5], 0.2));
        let w = ramp(&[6, 5, 1, 1], 0.3);
        let want = super::super::conv2d(&Tensor::cat(&[&a, &b], 1)?, &w, None, 1)?;
        let first = super::super::conv2d(&a, &w.narrow(1, 0, 3)?.contiguous()?, None, 1)?;
        let got = add_conv1x1(first, &b, &w.narrow(1, 3, 2)?)?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{diff}");
        Ok(())
    }

    /// The differentiable sum equals candle's `acc + conv2d(x, w)`, and so
    /// do the gradients of a weighted sum of it for all three operands.
    #[test]
    fn accumulated_convolution_and_its_gradients_match_candle() -> Result<()> {
        use candle_core::Var;
        let acc = Var::from_tensor(&ramp(&[2, 4, 3, 5], 0.1))?;
        let x = Var::from_tensor(&ramp(&[2, 6, 3, 5], 0.2))?;
        let w = Var::from_tensor(&ramp(&[4, 6, 1, 1], 0.3))?;
        let weights = ramp(&[2, 4, 3, 5], 0.4);
        let ours = accumulate_conv1x1(&acc, &x, &w)?;
        let theirs = (acc.as_tensor() + x.conv2d(&w, 0, 1, 1, 1)?)?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "sum: {diff}");
        let g_ours = (ours * &weights)?.sum_all()?.backward()?;
        let g_theirs = (theirs * &weights)?.sum_all()?.backward()?;
        for (name, v) in [("acc", &acc), ("x", &x), ("weight", &w)] {
            let (Some(a), Some(b)) = (g_ours.get(v.as_tensor()), g_theirs.get(v.as_tensor()))
            else {
                panic!("{name}: no gradient");
            };
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(diff < 1e-12, "{name} gradient: {diff}");
        }
        let e = accumulate_conv1x1(&ramp(&[2, 5, 3, 5], 0.0), &x, &w)
            .unwrap_err()
            .to_string();
        assert!(e.contains("accumulate_conv1x1"), "{e}");
        Ok(())
    }

    /// In f32 the sum is written by the direct kernels starting from `acc`
    /// (where the CPU has them), which is left as it was.
    #[test]
    fn accumulated_convolution_in_f32_starts_from_acc_and_leaves_it() -> Result<()> {
        use candle_core::DType;
        for (acc_dims, c_in) in [([2, 4, 3, 5], 6), ([3, 9, 4, 16], 13)] {
            let f32s = |t: Tensor| t.to_dtype(DType::F32);
            let acc = f32s(ramp(&acc_dims, 0.5))?;
            let x = f32s(ramp(&[acc_dims[0], c_in, acc_dims[2], acc_dims[3]], 0.6))?;
            let w = f32s(ramp(&[acc_dims[1], c_in, 1, 1], 0.7))?;
            let before = acc.flatten_all()?.to_vec1::<f32>()?;
            let got = accumulate_conv1x1(&acc, &x, &w)?.to_dtype(DType::F64)?;
            let want = (acc.to_dtype(DType::F64)?
                + x.to_dtype(DType::F64)?
                    .conv2d(&w.to_dtype(DType::F64)?, 0, 1, 1, 1)?)?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(diff < 1e-4, "{acc_dims:?}: {diff}");
            assert_eq!(acc.flatten_all()?.to_vec1::<f32>()?, before);
        }
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_rejected() {
        let acc = ramp(&[1, 4, 2, 2], 0.0);
        let e = add_conv1x1(acc, &ramp(&[1, 3, 2, 2], 0.0), &ramp(&[5, 3, 1, 1], 0.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("add_conv1x1"), "{e}");
    }
}

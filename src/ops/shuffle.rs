//! Pixel shuffle, its inverse and the channel shuffle as one copy each.
//!
//! Why: candle has no pixel shuffle, and the reshape/permute/reshape that
//! expresses it is a strided copy on the calling thread, in the forward and
//! again in the backward. ESRN shuffles in every C block and in the
//! upsampler (the seed network's: 96 channels of the whole image), where
//! that copy was 5% of a training step's forward on 2 cores. On CUDA the
//! same strided copy (and the channel shuffle of every G-block layer, which
//! the CPU folds into its convolution) runs candle's generic copy kernel,
//! which works out each element's source index with a 64-bit division and
//! remainder per dimension; here one kernel moves whole rows or planes
//! ([`super::cuda::kernels`]).

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use super::kernels::{Elem, OutBuf};
use super::par;

/// PyTorch's `PixelShuffle(r)`: `[B, C·r², H, W] → [B, C, H·r, W·r]`, with
/// `out[b, c, h·r + i, w·r + j] = in[b, c·r² + i·r + j, h, w]`.
/// Differentiable; on the CPU (f32/f64, custom kernels on) one parallel
/// copy, elsewhere candle's reshape/permute/reshape.
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if r == 0 || c % (r * r) != 0 {
        bail!("pixel shuffle by {r} needs a channel count divisible by {r}², got {c}");
    }
    if runs_here(x) {
        return x
            .contiguous()?
            .apply_op1(Permute(Shuffle { r, inverse: false }));
    }
    let oc = c / (r * r);
    x.reshape((b, oc, r, r, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((b, oc, h * r, w * r))
}

/// The inverse of [`pixel_shuffle`] (PyTorch's `PixelUnshuffle(r)`):
/// `[B, C, H·r, W·r] → [B, C·r², H, W]`. Differentiable, like it.
pub fn pixel_unshuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if r == 0 || h % r != 0 || w % r != 0 {
        bail!("pixel unshuffle by {r} needs a height and width divisible by {r}, got {h}x{w}");
    }
    if runs_here(x) {
        return x
            .contiguous()?
            .apply_op1(Permute(Shuffle { r, inverse: true }));
    }
    x.reshape((b, c, h / r, r, w / r, r))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((b, c * r * r, h / r, w / r))
}

/// Whether the shuffles run this module's ops: on the CPU in f32/f64 with
/// the custom kernels on, on CUDA in f32 with the layout kernels on.
fn runs_here(x: &Tensor) -> bool {
    let cpu = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
    let cuda = cfg!(feature = "cuda")
        && x.device().is_cuda()
        && x.dtype() == DType::F32
        && super::own_layout_kernels_enabled();
    (cpu || cuda) && super::custom_kernels_enabled()
}

/// A shuffle: a permutation of a contiguous 4-d tensor's elements, run as
/// a candle op by [`Permute`].
trait Permutation: Send + Sync {
    fn name(&self) -> &'static str;
    fn out_dims(&self, dims: [usize; 4]) -> [usize; 4];
    /// The CPU body.
    fn run<T: Elem>(&self, x: &[T], dims: [usize; 4]) -> Vec<T>;
    /// The CUDA body, from the input buffer into the output's, for input dims.
    #[cfg(feature = "cuda")]
    fn launch(
        &self,
        dev: &candle_core::CudaDevice,
        ptrs: (u64, u64),
        dims: [usize; 4],
    ) -> Result<()>;
    /// The gradient of the input from the output's: the inverse permutation.
    fn grad(&self, arg: &Tensor, grad: &Tensor) -> Result<Tensor>;
}

/// A [`Permutation`] as a candle op.
struct Permute<P>(P);

impl<P: Permutation> CustomOp1 for Permute<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (dims, start, end) = dims4_contiguous(p.name(), l)?;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(p.run(&v[start..end], dims)),
            CpuStorage::F64(v) => CpuStorage::F64(p.run(&v[start..end], dims)),
            _ => bail!("{}: the CPU body handles f32 and f64", p.name()),
        };
        Ok((out, Shape::from(p.out_dims(dims).to_vec())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (dims, _, _) = dims4_contiguous(self.0.name(), l)?;
        let out = Shape::from(self.0.out_dims(dims).to_vec());
        super::cuda::permuted(s, l, out, |dev, ptrs| self.0.launch(dev, ptrs, dims))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.0.grad(arg, grad_res)?))
    }
}

/// ShuffleNet's channel shuffle by `groups`: view `[B, groups, C/groups, H,
/// W]`, swap axes 1 and 2, view back; output channel `k` is input channel
/// `(k % groups)·(C/groups) + k / groups`. Differentiable (the gradient is
/// the shuffle by `C/groups`). On the CPU (f32/f64) and CUDA (f32) one copy
/// of whole planes, elsewhere candle's reshape/transpose/reshape.
pub fn channel_shuffle(x: &Tensor, groups: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if groups == 0 || c % groups != 0 {
        bail!(
            "channel shuffle with {groups} groups needs a channel count divisible by it, got {c}"
        );
    }
    if groups == 1 {
        return Ok(x.clone());
    }
    if runs_here(x) {
        return x
            .contiguous()?
            .apply_op1(Permute(ChannelShuffle { groups }));
    }
    x.reshape((b, groups, c / groups, h, w))?
        .transpose(1, 2)?
        .reshape((b, c, h, w))
}

/// The op of [`channel_shuffle`].
struct ChannelShuffle {
    groups: usize,
}

impl Permutation for ChannelShuffle {
    fn name(&self) -> &'static str {
        "esr-channel-shuffle"
    }

    fn out_dims(&self, dims: [usize; 4]) -> [usize; 4] {
        dims
    }

    #[cfg(feature = "cuda")]
    fn launch(
        &self,
        dev: &candle_core::CudaDevice,
        ptrs: (u64, u64),
        [b, c, h, w]: [usize; 4],
    ) -> Result<()> {
        super::cuda::kernels::channel_shuffle(dev, ptrs, (b, c, h * w), self.groups)
    }

    fn grad(&self, arg: &Tensor, grad: &Tensor) -> Result<Tensor> {
        // The shuffle by the other factor of the channel count.
        channel_shuffle(grad, arg.dim(1)? / self.groups)
    }

    fn run<T: Elem>(&self, x: &[T], [b, c, h, w]: [usize; 4]) -> Vec<T> {
        let (plane, per_group) = (h * w, c / self.groups);
        let mut out = Vec::with_capacity(x.len());
        for image in 0..b {
            for k in 0..c {
                let src = (image * c + (k % self.groups) * per_group + k / self.groups) * plane;
                out.extend_from_slice(&x[src..src + plane]);
            }
        }
        out
    }
}

/// The dims of a contiguous 4-d input, or an error naming the op.
fn dims4_contiguous(name: &str, l: &Layout) -> Result<([usize; 4], usize, usize)> {
    let Ok(dims) = <[usize; 4]>::try_from(l.dims()) else {
        bail!("{name}: a 4-d tensor is needed, got {:?}", l.dims());
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{name}: the input must be contiguous");
    };
    Ok((dims, start, end))
}

/// The op: a shuffle by `r`, or (`inverse`) an unshuffle.
struct Shuffle {
    r: usize,
    inverse: bool,
}

impl Permutation for Shuffle {
    fn name(&self) -> &'static str {
        if self.inverse {
            "esr-pixel-unshuffle"
        } else {
            "esr-pixel-shuffle"
        }
    }

    #[cfg(feature = "cuda")]
    fn launch(
        &self,
        dev: &candle_core::CudaDevice,
        ptrs: (u64, u64),
        dims: [usize; 4],
    ) -> Result<()> {
        // The kernel's rows are those of the big (shuffled) layout.
        let big = if self.inverse {
            dims
        } else {
            self.out_dims(dims)
        };
        super::cuda::kernels::pixel_shuffle(dev, ptrs, big, self.r, self.inverse)
    }

    fn grad(&self, _arg: &Tensor, grad: &Tensor) -> Result<Tensor> {
        if self.inverse {
            pixel_shuffle(grad, self.r)
        } else {
            pixel_unshuffle(grad, self.r)
        }
    }

    /// The output dims for input dims `[b, c, h, w]`.
    fn out_dims(&self, [b, c, h, w]: [usize; 4]) -> [usize; 4] {
        let r = self.r;
        if self.inverse {
            [b, c * r * r, h / r, w / r]
        } else {
            [b, c / (r * r), h * r, w * r]
        }
    }

    fn run<T: Elem>(&self, x: &[T], dims: [usize; 4]) -> Vec<T> {
        let r = self.r;
        let mut out = OutBuf::<T>::new(x.len());
        let dst = out.ptr();
        // In the shuffled layout's terms: `c` planes of `h x w` pixels,
        // each from `r²` planes of the other layout.
        let [b, c, h, w] = if self.inverse {
            dims
        } else {
            self.out_dims(dims)
        };
        let (sh, sw) = (h / r, w / r);
        let small = sh * sw;
        par::for_each(
            b * c,
            || (),
            |_, item| {
                // Plane `item` of the shuffled layout and planes
                // `item·r² ..` of the other one: this item's alone. Row
                // `y·r + i` of the big plane interleaves row `y` of the
                // small planes `i·r + j`, `j` in `0..r`.
                let (big, small_planes) = (item * h * w, item * r * r * small);
                for y in 0..sh {
                    for i in 0..r {
                        let row = big + (y * r + i) * w;
                        for j in 0..r {
                            let from = small_planes + (i * r + j) * small + y * sw;
                            for x0 in 0..sw {
                                let (at_big, at_small) = (row + x0 * r + j, from + x0);
                                // SAFETY: both indices are inside this
                                // item's planes, which no other item
                                // touches; `x` and `out` hold `b·c·h·w`.
                                unsafe {
                                    if self.inverse {
                                        dst.add(at_small).write(*x.get_unchecked(at_big));
                                    } else {
                                        dst.add(at_big).write(*x.get_unchecked(at_small));
                                    }
                                }
                            }
                        }
                    }
                }
            },
        );
        // SAFETY: the items cover every plane, and each writes every
        // element of its planes.
        unsafe { out.assume_init() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn ramp(dims: &[usize], seed: f64) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37 + seed).sin()).collect();
        Tensor::from_vec(v, dims, &Device::Cpu)
    }

    /// candle's reshape/permute/reshape, the definition.
    fn reference(x: &Tensor, r: usize) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        x.reshape((b, c / (r * r), r, r, h, w))?
            .permute((0, 1, 4, 2, 5, 3))?
            .reshape((b, c / (r * r), h * r, w * r))
    }

    /// The op equals the reshape/permute definition in both directions and
    /// both dtypes, unshuffling undoes it, and the gradient of a weighted
    /// sum through it is the weights unshuffled.
    #[test]
    fn shuffle_matches_the_definition_and_its_gradient_unshuffles() -> Result<()> {
        for (dims, r) in [([2, 12, 3, 5], 2), ([1, 18, 4, 2], 3), ([2, 8, 1, 1], 2)] {
            let x = ramp(&dims, 0.2)?;
            let got = pixel_shuffle(&x, r)?;
            let want = reference(&x, r)?;
            assert_eq!(got.dims(), want.dims());
            assert_eq!(got.to_vec1_flat()?, want.to_vec1_flat()?, "{dims:?} by {r}");
            assert_eq!(pixel_unshuffle(&got, r)?.to_vec1_flat()?, x.to_vec1_flat()?);
            let x32 = x.to_dtype(DType::F32)?;
            assert_eq!(
                pixel_shuffle(&x32, r)?.to_vec1_flat()?,
                reference(&x32, r)?.to_vec1_flat()?
            );

            let v = Var::from_tensor(&x)?;
            let weights = ramp(want.dims(), 1.7)?;
            let loss = (pixel_shuffle(v.as_tensor(), r)? * &weights)?.sum_all()?;
            let grad = loss.backward()?.get(v.as_tensor()).cloned();
            let Some(grad) = grad else {
                panic!("no gradient reached the input");
            };
            assert_eq!(grad.dims(), x.dims());
            // d/dx Σ shuffle(x)·W = unshuffle(W), computed by candle's ops.
            let (b, c, h, w) = weights.dims4()?;
            let unshuffled = weights
                .reshape((b, c, h / r, r, w / r, r))?
                .permute((0, 1, 3, 5, 2, 4))?
                .reshape(x.dims())?;
            assert_eq!(grad.to_vec1_flat()?, unshuffled.to_vec1_flat()?);
        }
        Ok(())
    }

    /// The channel shuffle's op equals candle's reshape/transpose definition
    /// in both dtypes, for every group count of the channels, and its
    /// gradient equals the definition's gradient (the inverse shuffle).
    #[test]
    fn channel_shuffle_matches_the_definition_and_its_gradient() -> Result<()> {
        fn definition(x: &Tensor, s: usize) -> Result<Tensor> {
            let (b, c, h, w) = x.dims4()?;
            x.reshape((b, s, c / s, h, w))?
                .transpose(1, 2)?
                .reshape((b, c, h, w))
        }
        for dims in [[2, 12, 3, 5], [1, 6, 1, 1], [3, 8, 2, 2]] {
            let c = dims[1];
            for s in (2..=c).filter(|s| c % s == 0) {
                let x = ramp(&dims, 0.3)?;
                for x in [x.clone(), x.to_dtype(DType::F32)?] {
                    let got = channel_shuffle(&x, s)?;
                    assert_eq!(got.dims(), x.dims());
                    assert_eq!(
                        got.to_vec1_flat()?,
                        definition(&x, s)?.to_vec1_flat()?,
                        "{dims:?} in {s} groups"
                    );
                }
                let weights = ramp(&dims, 2.1)?;
                let grad_of = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<Vec<f64>> {
                    let v = Var::from_tensor(&x)?;
                    let loss = (f(v.as_tensor())? * &weights)?.sum_all()?;
                    match loss.backward()?.get(v.as_tensor()) {
                        Some(g) => g.to_vec1_flat(),
                        None => panic!("no gradient reached the input"),
                    }
                };
                assert_eq!(
                    grad_of(&|t| channel_shuffle(t, s))?,
                    grad_of(&|t| definition(t, s))?,
                    "gradient, {dims:?} in {s} groups"
                );
            }
        }
        let e = channel_shuffle(&ramp(&[1, 6, 1, 1], 0.0)?, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 groups") && e.contains("got 6"), "{e}");
        Ok(())
    }

    #[test]
    fn indivisible_shapes_are_rejected() -> Result<()> {
        let e = pixel_shuffle(&ramp(&[1, 6, 2, 2], 0.0)?, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("divisible by 2"), "{e}");
        let e = pixel_unshuffle(&ramp(&[1, 1, 3, 2], 0.0)?, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3x2"), "{e}");
        Ok(())
    }

    trait Flat {
        fn to_vec1_flat(&self) -> Result<Vec<f64>>;
    }

    impl Flat for Tensor {
        fn to_vec1_flat(&self) -> Result<Vec<f64>> {
            self.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
        }
    }
}

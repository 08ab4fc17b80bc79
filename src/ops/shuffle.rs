//! Pixel shuffle and its inverse as one parallel copy each on the CPU.
//!
//! Why: candle has no pixel shuffle, and the reshape/permute/reshape that
//! expresses it is a strided copy on the calling thread, in the forward and
//! again in the backward. ESRN shuffles in every C block and in the
//! upsampler (the seed network's: 96 channels of the whole image), where
//! that copy was 5% of a training step's forward on 2 cores.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

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
        return x.contiguous()?.apply_op1(Shuffle { r, inverse: false });
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
        return x.contiguous()?.apply_op1(Shuffle { r, inverse: true });
    }
    x.reshape((b, c, h / r, r, w / r, r))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((b, c * r * r, h / r, w / r))
}

fn runs_here(x: &Tensor) -> bool {
    x.device().is_cpu()
        && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
        && super::custom_kernels_enabled()
}

/// The op: a shuffle by `r`, or (`inverse`) an unshuffle.
struct Shuffle {
    r: usize,
    inverse: bool,
}

impl Shuffle {
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

impl CustomOp1 for Shuffle {
    fn name(&self) -> &'static str {
        if self.inverse {
            "esr-pixel-unshuffle"
        } else {
            "esr-pixel-shuffle"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Ok(dims) = <[usize; 4]>::try_from(l.dims()) else {
            bail!(
                "{}: a 4-d tensor is needed, got {:?}",
                self.name(),
                l.dims()
            );
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            bail!("{}: the input must be contiguous", self.name());
        };
        let shape = Shape::from(self.out_dims(dims).to_vec());
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(self.run(&v[start..end], dims)),
            CpuStorage::F64(v) => CpuStorage::F64(self.run(&v[start..end], dims)),
            _ => bail!("{}: the CPU kernel handles f32 and f64", self.name()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // A permutation: its gradient is the inverse permutation.
        Ok(Some(if self.inverse {
            pixel_shuffle(grad_res, self.r)?
        } else {
            pixel_unshuffle(grad_res, self.r)?
        }))
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

//! The tensor operations ESRN is made of, one function per kind.
//!
//! Every convolution of the network goes through [`conv3x3`], [`conv1x1`] or
//! [`grouped_conv3x3`], and every reshuffle through [`pixel_shuffle`],
//! [`channel_shuffle`] or [`avg_pool2x2`]. The convolutions run
//! [`crate::ops::conv2d`] (GEMM kernels on the CPU, cuDNN on CUDA, candle's
//! conv2d elsewhere); the shuffles [`crate::ops::pixel_shuffle`] and
//! [`crate::ops::channel_shuffle`], the pooling candle's op.
//! All of them are device-agnostic and differentiable.

use candle_core::{bail, Result, Tensor};

/// 3x3 convolution, stride 1, padding 1 (same size); weight `[out, in, 3, 3]`.
pub fn conv3x3(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::ops::conv2d(x, weight, bias, 1)
}

/// `relu(conv3x3(x, weight, bias))`, fused.
pub fn conv3x3_relu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::ops::conv2d_relu(x, weight, bias, 1)
}

/// 1x1 convolution (a per-pixel linear map of the channels); weight `[out, in, 1, 1]`.
pub fn conv1x1(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::ops::conv2d(x, weight, bias, 1)
}

/// Grouped 3x3 convolution, stride 1, padding 1; weight `[out, in/groups, 3, 3]`.
pub fn grouped_conv3x3(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
) -> Result<Tensor> {
    crate::ops::conv2d(x, weight, bias, groups)
}

/// `relu(grouped_conv3x3(x, weight, bias, groups))`, fused.
pub fn grouped_conv3x3_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
) -> Result<Tensor> {
    crate::ops::conv2d_relu(x, weight, bias, groups)
}

/// Sub-pixel rearrangement as PyTorch's `PixelShuffle(r)`:
/// `[B, C·r², H, W] → [B, C, H·r, W·r]`, with
/// `out[b, c, h·r + i, w·r + j] = in[b, c·r² + i·r + j, h, w]`
/// ([`crate::ops::pixel_shuffle`]: one copy on the CPU and CUDA, candle's
/// reshape/permute/reshape elsewhere).
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    crate::ops::pixel_shuffle(x, r)
}

/// ShuffleNet channel shuffle with `groups` groups: view `[B, g, C/g, H, W]`,
/// swap axes 1 and 2, view back ([`crate::ops::channel_shuffle`]). One
/// group is the identity.
pub fn channel_shuffle(x: &Tensor, groups: usize) -> Result<Tensor> {
    if groups <= 1 {
        return Ok(x.clone());
    }
    crate::ops::channel_shuffle(x, groups)
}

/// 2x2 average pooling with stride 2; height and width must be even.
pub fn avg_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        bail!("2x2 average pooling needs even height and width, got {h}x{w}");
    }
    x.avg_pool2d(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn arange(dims: &[usize]) -> Tensor {
        let n: usize = dims.iter().product();
        Tensor::arange(0f32, n as f32, &Device::Cpu)
            .unwrap()
            .reshape(dims)
            .unwrap()
    }

    #[test]
    fn pixel_shuffle_matches_pytorch_layout() {
        // 1 output channel, r = 2: channel k = i*2 + j lands at (h*2+i, w*2+j).
        let x = arange(&[1, 4, 1, 2]);
        let y = pixel_shuffle(&x, 2).unwrap();
        assert_eq!(y.dims(), &[1, 1, 2, 4]);
        let v: Vec<Vec<f32>> = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        // in[c, 0, w] = c*2 + w
        assert_eq!(v, vec![vec![0., 2., 1., 3.], vec![4., 6., 5., 7.]]);
        assert!(pixel_shuffle(&arange(&[1, 6, 1, 1]), 2).is_err());
    }

    #[test]
    fn pixel_shuffle_by_three() {
        let x = arange(&[1, 18, 1, 1]);
        let y = pixel_shuffle(&x, 3).unwrap();
        assert_eq!(y.dims(), &[1, 2, 3, 3]);
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, (0..18).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn channel_shuffle_interleaves_groups() {
        let x = arange(&[1, 6, 1, 1]);
        let y = channel_shuffle(&x, 2).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![0., 3., 1., 4., 2., 5.]);
        let y = channel_shuffle(&x, 3).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![0., 2., 4., 1., 3., 5.]);
        assert!(channel_shuffle(&x, 4).is_err());
    }

    #[test]
    fn avg_pool_halves_and_rejects_odd() {
        let x = arange(&[1, 1, 2, 4]);
        let y = avg_pool2x2(&x).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![2.5, 4.5]);
        assert!(avg_pool2x2(&arange(&[1, 1, 3, 4])).is_err());
    }

    #[test]
    fn one_by_one_conv_is_a_channel_map_with_bias() {
        let x = arange(&[1, 2, 1, 2]); // channels [0,1] and [2,3]
        let w = Tensor::new(&[[[[1f32]], [[10f32]]]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let y = conv1x1(&x, &w, Some(&b)).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![20.5, 31.5]);
    }
}

//! Whole-image inference: an image in, its super-resolved image out, in
//! tiles whose memory is bounded by a plan ([`super::tiled`]), whatever the
//! image size. What validation, the benchmarks, `bench` and `upscale` run.

use candle_core::{Device, Tensor};

use super::tiled::{default_memory_budget_on, forward_tiled, Rect, Tile, TilePlan};
use super::Esrn;
use crate::data::{DataError, RgbImage};

/// Why an image could not be super-resolved.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// A tensor operation failed (e.g. out of memory).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The output is not a valid image.
    #[error("{0}")]
    Data(#[from] DataError),
    /// The output would not fit in memory's address range.
    #[error("a {width}x{height} image is too large to upscale x{scale}")]
    TooLarge {
        /// Input width.
        width: usize,
        /// Input height.
        height: usize,
        /// Upscaling factor.
        scale: usize,
    },
}

/// Converts an image (0..255, CHW) into a `[1, 3, H, W]` tensor in 0..1.
pub fn image_to_tensor(img: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let data: Vec<f32> = img.data.iter().map(|v| v / 255.0).collect();
    Tensor::from_vec(data, (1, 3, img.height, img.width), device)
}

/// Converts a `[1, 3, H, W]` tensor in 0..1 into an image (0..255, not yet quantised).
pub fn tensor_to_image(t: &Tensor) -> Result<RgbImage, InferError> {
    let (_, _, h, w) = t.dims4()?;
    let data: Vec<f32> = (t.squeeze(0)?.to_device(&Device::Cpu)? * 255.0)?
        .flatten_all()?
        .to_vec1()?;
    Ok(RgbImage::new(h, w, data)?)
}

/// Super-resolves one image with a network (any size), in tiles within the
/// default memory budget of the device ([`crate::model::tiled::default_memory_budget_on`]).
pub fn upscale_image(model: &Esrn, lr: &RgbImage, device: &Device) -> Result<RgbImage, InferError> {
    let plan = TilePlan::for_image(
        model.arch(),
        default_memory_budget_on(device),
        lr.height,
        lr.width,
    )?;
    upscale_image_tiled(model, lr, device, &plan, |_, _| {})
}

/// Super-resolves one image tile by tile ([`crate::model::tiled`]): the
/// network's memory is bounded by the plan, whatever the image size, and
/// the output equals the untiled one to float rounding. `progress(done,
/// total)` follows the tiles.
pub fn upscale_image_tiled(
    model: &Esrn,
    lr: &RgbImage,
    device: &Device,
    plan: &TilePlan,
    progress: impl FnMut(usize, usize),
) -> Result<RgbImage, InferError> {
    // No gradient graph: activations are freed as the pass goes.
    let model = &model.inference_copy()?;
    let s = model.arch().scale;
    let (h, w) = (lr.height, lr.width);
    let (out_h, out_w) = (
        h.checked_mul(s).filter(|v| v.checked_mul(3).is_some()),
        w.checked_mul(s),
    );
    let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
        return Err(InferError::TooLarge {
            width: w,
            height: h,
            scale: s,
        });
    };
    let mut out = RgbImage::filled(out_h, out_w, 0.0);
    let plane = out_h * out_w;
    // Rows and columns beyond the image replicate its last one, as Esrn::forward pads.
    let fetch = |r: &Rect| -> candle_core::Result<Tensor> {
        let mut data = Vec::with_capacity(3 * r.h * r.w);
        for c in 0..3 {
            for y in r.y..r.y + r.h {
                let row = &lr.plane(c)[y.min(h - 1) * w..][..w];
                data.extend((r.x..r.x + r.w).map(|x| row[x.min(w - 1)] / 255.0));
            }
        }
        Tensor::from_vec(data, (1, 3, r.h, r.w), device)
    };
    let store = |tile: &Tile, t: &Tensor| -> candle_core::Result<()> {
        let t = (t.clamp(0.0, 1.0)? * 255.0)?.to_device(&Device::Cpu)?;
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let (th, tw) = (s * tile.core.h, s * tile.core.w);
        let (y0, x0) = (s * tile.core.y, s * tile.core.x);
        let rows = th.min(out_h.saturating_sub(y0));
        let cols = tw.min(out_w.saturating_sub(x0));
        for c in 0..3 {
            for dy in 0..rows {
                let src = &values[c * th * tw + dy * tw..][..cols];
                let dst = c * plane + (y0 + dy) * out_w + x0;
                out.data[dst..dst + cols].copy_from_slice(src);
            }
        }
        Ok(())
    };
    forward_tiled(model, h, w, plan, fetch, store, progress)?;
    Ok(out)
}

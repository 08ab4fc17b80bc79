//! Images as datasets hold them: 8-bit samples, in memory or mapped from a
//! decoded cache file ([`super::cache`]).
//!
//! A dataset of DIV2K's 800 training images is ~34 GB as `f32` but ~8 GB as
//! bytes (x2: HR 8.3 MB + LR 2.1 MB an image), and a mapped cache shares
//! those bytes through the page cache between every worker and every process
//! on a node. Samples become `f32` only per patch ([`super::patches`]) or per
//! scored image ([`Image8::to_rgb`]).

use std::fmt;
use std::sync::Arc;

use memmap2::Mmap;

use super::image::quantize;
use super::RgbImage;

/// Where an [`Image8`]'s samples live.
#[derive(Clone)]
enum Samples {
    /// Its own buffer (the embedded images, a dataset kept in memory).
    Owned(Vec<u8>),
    /// A window of a mapped cache file, shared by every image in it.
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

/// An RGB image as `u8` samples, channel-major (CHW) like [`RgbImage`]:
/// sample `(c, y, x)` at `[(c * height + y) * width + x]`.
#[derive(Clone)]
pub struct Image8 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    samples: Samples,
}

impl Image8 {
    /// The image as 8-bit files store it: every sample clipped to 0..255 and
    /// rounded half away from zero ([`quantize`]); exact for images decoded
    /// from 8-bit files and for LR made by [`super::downscale`], which rounds.
    pub fn from_rgb(img: &RgbImage) -> Image8 {
        Image8 {
            height: img.height,
            width: img.width,
            samples: Samples::Owned(img.data.iter().map(|&v| quantize(v)).collect()),
        }
    }

    /// The `height` x `width` image whose CHW samples are
    /// `map[start..start + 3 * height * width]`; `None` when that window is
    /// not inside the map.
    pub fn mapped(height: usize, width: usize, map: Arc<Mmap>, start: usize) -> Option<Image8> {
        let len = 3usize.checked_mul(height)?.checked_mul(width)?;
        (start.checked_add(len)? <= map.len()).then_some(Image8 {
            height,
            width,
            samples: Samples::Mapped { map, start, len },
        })
    }

    /// Every sample, channel-major.
    pub fn samples(&self) -> &[u8] {
        match &self.samples {
            Samples::Owned(v) => v,
            Samples::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }

    /// The samples of channel `c` (0 red, 1 green, 2 blue), row-major.
    pub fn plane(&self, c: usize) -> &[u8] {
        let n = self.height * self.width;
        &self.samples()[c * n..(c + 1) * n]
    }

    /// The image as `f32` samples on the 0..255 scale (for scoring and
    /// whole-image inference: one image at a time).
    pub fn to_rgb(&self) -> RgbImage {
        RgbImage {
            height: self.height,
            width: self.width,
            data: self.samples().iter().map(|&v| f32::from(v)).collect(),
        }
    }

    /// The `h` x `w` window at `(top, left)`, clipped to the image, as an
    /// image of its own.
    pub fn crop(&self, top: usize, left: usize, h: usize, w: usize) -> Image8 {
        let (top, left) = (top.min(self.height), left.min(self.width));
        let (h, w) = (h.min(self.height - top), w.min(self.width - left));
        let mut out = Vec::with_capacity(3 * h * w);
        for c in 0..3 {
            let plane = self.plane(c);
            for y in top..top + h {
                out.extend_from_slice(&plane[y * self.width + left..y * self.width + left + w]);
            }
        }
        Image8 {
            height: h,
            width: w,
            samples: Samples::Owned(out),
        }
    }

    /// Bytes its samples take.
    pub fn byte_len(&self) -> usize {
        3 * self.height * self.width
    }
}

impl PartialEq for Image8 {
    fn eq(&self, other: &Image8) -> bool {
        (self.height, self.width) == (other.height, other.width)
            && self.samples() == other.samples()
    }
}

impl fmt::Debug for Image8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.samples {
            Samples::Owned(_) => "in memory",
            Samples::Mapped { .. } => "mapped",
        };
        write!(f, "Image8({}x{}, {place})", self.height, self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_integer_samples_is_exact() {
        let img = RgbImage::new(2, 3, (0..18).map(|v| (v * 14) as f32).collect()).unwrap();
        let bytes = Image8::from_rgb(&img);
        assert_eq!(bytes.to_rgb(), img);
        assert_eq!(bytes.plane(1), &[84, 98, 112, 126, 140, 154]);
    }

    #[test]
    fn crop_takes_the_window_from_every_channel() {
        let img = RgbImage::new(3, 3, (0..27).map(|v| v as f32).collect()).unwrap();
        let window = Image8::from_rgb(&img).crop(1, 1, 2, 5);
        assert_eq!((window.height, window.width), (2, 2));
        assert_eq!(window.to_rgb(), img.crop(1, 1, 2, 2).unwrap());
    }

    #[test]
    fn samples_are_rounded_and_clipped() {
        let img = RgbImage::new(1, 1, vec![-3.0, 127.5, 300.0]).unwrap();
        assert_eq!(Image8::from_rgb(&img).samples(), &[0, 128, 255]);
    }
}

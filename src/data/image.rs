//! The in-memory RGB image and PNG/JPEG/BMP input/output.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageEncoder};

use super::DataError;

/// An RGB image as `f32` samples, **channel-major (CHW)**: all red samples row
/// by row, then all green, then all blue. Sample `(c, y, x)` lives at
/// `data[(c * height + y) * width + x]`. Values are on the 0..255 scale but are
/// not required to be integers or inside that range (resizing overshoots);
/// [`RgbImage::quantized`] rounds and clips them.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `3 * height * width` samples, channel-major.
    pub data: Vec<f32>,
}

impl RgbImage {
    /// An image from its CHW samples; errors if `data.len() != 3 * height * width`.
    pub fn new(height: usize, width: usize, data: Vec<f32>) -> Result<RgbImage, DataError> {
        if data.len() != 3 * height * width {
            return Err(DataError::invalid(
                "image buffer length",
                data.len(),
                "must be 3 * height * width (CHW RGB)",
            ));
        }
        Ok(RgbImage {
            height,
            width,
            data,
        })
    }

    /// An image of the given size with every sample equal to `value`.
    pub fn filled(height: usize, width: usize, value: f32) -> RgbImage {
        RgbImage {
            height,
            width,
            data: vec![value; 3 * height * width],
        }
    }

    /// Samples per channel (`height * width`).
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// The samples of channel `c` (0 red, 1 green, 2 blue), row-major.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    /// Sample `(c, y, x)`; panics when out of bounds, like slice indexing.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// The `h` x `w` window whose top-left corner is `(top, left)`; errors when
    /// it does not fit inside the image.
    pub fn crop(&self, top: usize, left: usize, h: usize, w: usize) -> Result<RgbImage, DataError> {
        if top + h > self.height || left + w > self.width {
            return Err(DataError::invalid(
                "crop window",
                format!(
                    "{h}x{w} at ({top},{left}) in a {}x{} image",
                    self.height, self.width
                ),
                "must lie inside the image",
            ));
        }
        let mut data = Vec::with_capacity(3 * h * w);
        for c in 0..3 {
            for y in top..top + h {
                let start = (c * self.height + y) * self.width + left;
                data.extend_from_slice(&self.data[start..start + w]);
            }
        }
        Ok(RgbImage {
            height: h,
            width: w,
            data,
        })
    }

    /// Every sample multiplied by `factor` (e.g. `1.0 / 255.0` to get 0..1).
    pub fn scaled(&self, factor: f32) -> RgbImage {
        RgbImage {
            height: self.height,
            width: self.width,
            data: self.data.iter().map(|v| v * factor).collect(),
        }
    }

    /// The image as 8-bit values would store it: every sample clipped to
    /// 0..255 and rounded half away from zero (MATLAB's `uint8()`).
    pub fn quantized(&self) -> RgbImage {
        RgbImage {
            height: self.height,
            width: self.width,
            data: self.data.iter().map(|&v| quantize(v) as f32).collect(),
        }
    }

    /// Interleaved 8-bit RGB (rounded and clipped), as image files store it.
    pub fn to_rgb8(&self) -> image::RgbImage {
        let n = self.plane_len();
        let mut raw = Vec::with_capacity(3 * n);
        for i in 0..n {
            for c in 0..3 {
                raw.push(quantize(self.data[c * n + i]));
            }
        }
        image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .expect("buffer is exactly 3 * width * height")
    }

    /// An image from interleaved 8-bit RGB.
    pub fn from_rgb8(img: &image::RgbImage) -> RgbImage {
        let (width, height) = (img.width() as usize, img.height() as usize);
        let n = width * height;
        let mut data = vec![0.0f32; 3 * n];
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                data[c * n + i] = f32::from(px[c]);
            }
        }
        RgbImage {
            height,
            width,
            data,
        }
    }

    /// An image from any decoded image: gray is replicated to RGB, alpha is
    /// dropped, 16-bit values are mapped exactly to 0..255 (`v / 65535 * 255`),
    /// float images are multiplied by 255.
    pub fn from_dynamic(img: &DynamicImage) -> RgbImage {
        match img {
            DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_) => RgbImage::from_rgb8(&img.to_rgb8()),
            DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_) => {
                let rgb = img.to_rgb16();
                from_interleaved(rgb.width(), rgb.height(), rgb.as_raw(), |v| {
                    (f64::from(v) / 65535.0 * 255.0) as f32
                })
            }
            // Float images (and any future variant): 0..1 floats scaled up.
            _ => {
                let rgb = img.to_rgb32f();
                from_interleaved(rgb.width(), rgb.height(), rgb.as_raw(), |v| v * 255.0)
            }
        }
    }
}

/// CHW image from interleaved RGB samples of any type.
fn from_interleaved<T: Copy>(width: u32, height: u32, raw: &[T], f: impl Fn(T) -> f32) -> RgbImage {
    let (width, height) = (width as usize, height as usize);
    let n = width * height;
    let mut data = vec![0.0f32; 3 * n];
    for (i, px) in raw.chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * n + i] = f(px[c]);
        }
    }
    RgbImage {
        height,
        width,
        data,
    }
}

/// A sample as `uint8`: clip to 0..255, round half away from zero.
pub fn quantize(v: f32) -> u8 {
    // NaN maps to 0 through the `as` cast; infinities clip.
    v.clamp(0.0, 255.0).round() as u8
}

/// Decode the image file at `path` (PNG, JPEG or BMP; 8- or 16-bit; gray,
/// gray+alpha, RGB or RGBA) into RGB. The format is detected from the file's
/// contents, not its extension.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, &e))?;
    decode(&bytes, path)
}

/// Decode an in-memory image file (as [`load_rgb`]); `name` is used in errors.
pub fn load_rgb_from_memory(bytes: &[u8], name: &str) -> Result<RgbImage, DataError> {
    decode(bytes, Path::new(name))
}

fn decode(bytes: &[u8], path: &Path) -> Result<RgbImage, DataError> {
    let decode_error = |reason: String| DataError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let format = image::guess_format(bytes).map_err(|e| decode_error(e.to_string()))?;
    if !matches!(
        format,
        image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::Bmp
    ) {
        return Err(decode_error(format!("{format:?} files are not supported")));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| decode_error(e.to_string()))?;
    Ok(RgbImage::from_dynamic(&img))
}

/// Write `img` as an 8-bit RGB PNG (samples rounded and clipped to 0..255).
///
/// The file is written to a temporary name beside `path` and then renamed, so
/// a reader never sees a half-written PNG and a crash leaves any old file intact.
pub fn save_rgb_png(img: &RgbImage, path: impl AsRef<Path>) -> Result<(), DataError> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    let result = write_png(img, path, &tmp)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, &e)));
    if result.is_err() {
        // Best effort: do not leave the temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `img` in the format its extension names (png, jpg/jpeg, bmp),
/// 8-bit, atomically (encoded in memory, then temp file + rename).
pub fn save_rgb(img: &RgbImage, path: impl AsRef<Path>) -> Result<(), DataError> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let format = match ext.as_str() {
        "png" => image::ImageFormat::Png,
        "jpg" | "jpeg" => image::ImageFormat::Jpeg,
        "bmp" => image::ImageFormat::Bmp,
        other => {
            return Err(DataError::Encode {
                path: path.to_path_buf(),
                reason: format!("unsupported extension '{other}' (allowed: png, jpg, jpeg, bmp)"),
            })
        }
    };
    if img.width == 0 || img.height == 0 {
        return Err(DataError::Encode {
            path: path.to_path_buf(),
            reason: format!("image is {}x{}, needs at least 1x1", img.height, img.width),
        });
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.to_rgb8()
        .write_to(&mut bytes, format)
        .map_err(|e| DataError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    crate::fsutil::atomic_write(path, bytes.get_ref()).map_err(|e| DataError::io(path, &e))
}

fn write_png(img: &RgbImage, path: &Path, tmp: &Path) -> Result<(), DataError> {
    let encode_error = |reason: String| DataError::Encode {
        path: path.to_path_buf(),
        reason,
    };
    if img.width == 0 || img.height == 0 {
        return Err(encode_error(format!(
            "image is {}x{}, PNG needs at least 1x1",
            img.height, img.width
        )));
    }
    let rgb = img.to_rgb8();
    let file = std::fs::File::create(tmp).map_err(|e| DataError::io(tmp, &e))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::png::PngEncoder::new(&mut writer)
        .write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| encode_error(e.to_string()))?;
    let file = writer
        .into_inner()
        .map_err(|e| DataError::io(tmp, e.error()))?;
    file.sync_all().map_err(|e| DataError::io(tmp, &e))
}

/// `dir/.name.tmp-<pid>`: same folder (so the rename is atomic), hidden, and
/// unique per process.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image.png".to_string());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_channel_major() {
        let img = RgbImage::new(2, 3, (0..18).map(|v| v as f32).collect()).unwrap();
        assert_eq!(img.get(0, 0, 0), 0.0);
        assert_eq!(img.get(0, 1, 2), 5.0);
        assert_eq!(img.get(1, 0, 0), 6.0);
        assert_eq!(img.get(2, 1, 1), 16.0);
        assert_eq!(img.plane(1), &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn wrong_buffer_length_is_an_error() {
        assert!(RgbImage::new(2, 2, vec![0.0; 11]).is_err());
    }

    #[test]
    fn crop_takes_the_window_from_every_channel() {
        let img = RgbImage::new(3, 3, (0..27).map(|v| v as f32).collect()).unwrap();
        let c = img.crop(1, 1, 2, 2).unwrap();
        assert_eq!(
            c.data,
            vec![4., 5., 7., 8., 13., 14., 16., 17., 22., 23., 25., 26.]
        );
        assert!(img.crop(2, 0, 2, 1).is_err());
    }

    #[test]
    fn quantize_clips_and_rounds_half_away_from_zero() {
        assert_eq!(quantize(-3.0), 0);
        assert_eq!(quantize(300.0), 255);
        assert_eq!(quantize(2.5), 3);
        assert_eq!(quantize(2.49), 2);
        assert_eq!(quantize(f32::NAN), 0);
    }

    #[test]
    fn rgb8_round_trip() {
        let img = RgbImage::new(1, 2, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let back = RgbImage::from_rgb8(&img.to_rgb8());
        assert_eq!(back, img);
        assert_eq!(img.to_rgb8().as_raw(), &vec![1, 3, 5, 2, 4, 6]);
    }
}

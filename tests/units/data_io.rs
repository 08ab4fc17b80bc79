//! Image loading in every supported pixel layout, saving, and error messages.

use crate::support;

use std::path::Path;

use esr_ea::data::{load_rgb, load_rgb_from_memory, save_rgb_png, DataError, RgbImage};
use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
use support::temp_dir as scratch;

fn rgb_at(img: &RgbImage, y: usize, x: usize) -> [f32; 3] {
    [img.get(0, y, x), img.get(1, y, x), img.get(2, y, x)]
}

#[test]
fn rgb8_png_with_odd_size_loads_exactly() {
    let dir = scratch("rgb8");
    let path = dir.join("odd.png");
    let buf = ImageBuffer::from_fn(5, 3, |x, y| Rgb([x as u8 * 10, y as u8 * 20, 7]));
    buf.save(&path).unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!((img.height, img.width), (3, 5));
    assert_eq!(rgb_at(&img, 2, 4), [40.0, 40.0, 7.0]);
    assert_eq!(rgb_at(&img, 1, 3), [30.0, 20.0, 7.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gray_and_gray_alpha_are_replicated_and_alpha_dropped() {
    let dir = scratch("gray");
    let gray = dir.join("gray.png");
    ImageBuffer::from_fn(3, 2, |x, y| Luma([(x + 3 * y) as u8 * 40]))
        .save(&gray)
        .unwrap();
    let img = load_rgb(&gray).unwrap();
    assert_eq!(rgb_at(&img, 1, 2), [200.0; 3]);

    let gray_alpha = dir.join("gray_alpha.png");
    ImageBuffer::from_fn(3, 2, |x, _| LumaA([x as u8 * 50, 0]))
        .save(&gray_alpha)
        .unwrap();
    let img = load_rgb(&gray_alpha).unwrap();
    // Fully transparent pixels keep their colour: alpha is ignored.
    assert_eq!(rgb_at(&img, 0, 2), [100.0; 3]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rgba_drops_alpha() {
    let dir = scratch("rgba");
    let path = dir.join("rgba.png");
    ImageBuffer::from_fn(2, 2, |x, y| Rgba([1 + x as u8, 2 + y as u8, 3, 17]))
        .save(&path)
        .unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!(rgb_at(&img, 1, 1), [2.0, 3.0, 3.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sixteen_bit_is_scaled_exactly_to_0_255() {
    let dir = scratch("sixteen");
    let rgb16 = dir.join("rgb16.png");
    let values = [0u16, 257, 1000, 65535];
    ImageBuffer::from_fn(4, 1, |x, _| Rgb([values[x as usize], 65535, 0]))
        .save(&rgb16)
        .unwrap();
    let img = load_rgb(&rgb16).unwrap();
    for (x, &v) in values.iter().enumerate() {
        let want = (f64::from(v) / 65535.0 * 255.0) as f32;
        assert_eq!(img.get(0, 0, x), want);
        assert_eq!(img.get(1, 0, x), 255.0);
    }
    assert_eq!(img.get(0, 0, 1), 1.0);

    let gray16 = dir.join("gray16.png");
    ImageBuffer::from_fn(1, 1, |_, _| Luma([32768u16]))
        .save(&gray16)
        .unwrap();
    let img = load_rgb(&gray16).unwrap();
    assert_eq!(rgb_at(&img, 0, 0), [(32768.0 / 65535.0 * 255.0) as f32; 3]);

    let gray_alpha16 = dir.join("gray_alpha16.png");
    ImageBuffer::from_fn(1, 1, |_, _| LumaA([65535u16, 0]))
        .save(&gray_alpha16)
        .unwrap();
    assert_eq!(rgb_at(&load_rgb(&gray_alpha16).unwrap(), 0, 0), [255.0; 3]);

    let rgba16 = dir.join("rgba16.png");
    ImageBuffer::from_fn(1, 1, |_, _| Rgba([0u16, 65535, 257, 9]))
        .save(&rgba16)
        .unwrap();
    assert_eq!(rgb_at(&load_rgb(&rgba16).unwrap(), 0, 0), [0.0, 255.0, 1.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn jpeg_and_bmp_load() {
    let dir = scratch("formats");
    let buf = ImageBuffer::from_fn(8, 6, |_, _| Rgb([120u8, 60, 200]));
    let jpg = dir.join("a.JPG");
    buf.save_with_format(&jpg, image::ImageFormat::Jpeg)
        .unwrap();
    let img = load_rgb(&jpg).unwrap();
    assert_eq!((img.height, img.width), (6, 8));
    // Lossy: a flat colour survives to within a few levels.
    assert!((img.get(2, 3, 3) - 200.0).abs() <= 4.0);

    let bmp = dir.join("b.bmp");
    buf.save_with_format(&bmp, image::ImageFormat::Bmp).unwrap();
    assert_eq!(rgb_at(&load_rgb(&bmp).unwrap(), 5, 7), [120.0, 60.0, 200.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn save_rounds_clips_and_round_trips() {
    let dir = scratch("save");
    let path = dir.join("out.png");
    let img = RgbImage::new(
        1,
        3,
        vec![-5.0, 12.4, 300.0, 0.5, 1.49, 254.6, 7.0, 8.0, 9.0],
    )
    .unwrap();
    save_rgb_png(&img, &path).unwrap();
    let back = load_rgb(&path).unwrap();
    assert_eq!(
        back.data,
        vec![0.0, 12.0, 255.0, 1.0, 1.0, 255.0, 7.0, 8.0, 9.0]
    );
    // Overwriting works and leaves no temporary file behind.
    save_rgb_png(&back, &path).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.png")]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn save_into_a_missing_folder_names_the_file() {
    let dir = scratch("save_missing");
    let path = dir.join("no/such/folder/out.png");
    let err = save_rgb_png(&RgbImage::filled(2, 2, 1.0), &path).unwrap_err();
    assert!(err.to_string().contains("out.png"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unreadable_and_unsupported_files_are_clear_errors() {
    let dir = scratch("errors");
    let missing = dir.join("missing.png");
    let err = load_rgb(&missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("missing.png"), "{err}");

    let text = dir.join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let err = load_rgb(&text).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("notes.png") && msg.contains("PNG, JPEG, BMP"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));

    // A GIF header is recognised, and refused by name.
    let err = load_rgb_from_memory(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "anim.gif").unwrap_err();
    assert!(err.to_string().contains("anim.gif"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn truncated_png_is_a_decode_error() {
    let dir = scratch("truncated");
    let path = dir.join("cut.png");
    ImageBuffer::from_fn(16, 16, |x, y| Rgb([x as u8, y as u8, 0]))
        .save(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_rgb(Path::new(&path)).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

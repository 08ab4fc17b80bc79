//! Dataset folders: pairing by name, LR layouts, on-the-fly LR and errors.

use crate::support;

use std::path::Path;

use esr_ea::data::{downscale, save_rgb_png, DataError, Dataset, RgbImage};
use support::temp_dir as scratch;

/// A deterministic textured image whose content depends on `seed`.
fn texture(h: usize, w: usize, seed: usize) -> RgbImage {
    let data = (0..3 * h * w)
        .map(|i| ((i * 31 + seed * 97) % 256) as f32)
        .collect();
    RgbImage::new(h, w, data).unwrap()
}

fn write(dir: &Path, name: &str, img: &RgbImage) {
    std::fs::create_dir_all(dir).unwrap();
    save_rgb_png(img, dir.join(name)).unwrap();
}

#[test]
fn div2k_flat_layout_pairs_by_name_not_position() {
    let root = scratch("div2k");
    let (hr_dir, lr_dir) = (root.join("hr"), root.join("lr"));
    for (i, name) in ["0001", "0002", "0003"].iter().enumerate() {
        let hr = texture(12, 16, i);
        write(&hr_dir, &format!("{name}.png"), &hr);
        write(
            &lr_dir,
            &format!("{name}x2.png"),
            &downscale(&hr, 2).unwrap(),
        );
    }
    // A stray non-image file changes nothing.
    std::fs::write(lr_dir.join("README.txt"), "notes").unwrap();
    let ds = Dataset::load(&hr_dir, Some(&lr_dir), 2).unwrap();
    assert_eq!(ds.len(), 3);
    let names: Vec<&str> = ds.pairs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["0001.png", "0002.png", "0003.png"]);
    for (i, pair) in ds.pairs.iter().enumerate() {
        assert_eq!(pair.hr.to_rgb(), texture(12, 16, i));
        assert_eq!(pair.lr.to_rgb(), downscale(&texture(12, 16, i), 2).unwrap());
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn same_name_lr_and_scale_subfolder_are_accepted() {
    let root = scratch("layouts");
    let hr_dir = root.join("hr");
    let hr = texture(9, 12, 1);
    write(&hr_dir, "baby.png", &hr);
    let lr = downscale(&hr, 3).unwrap();
    // Same-name LR in a flat folder.
    write(&root.join("flat"), "baby.png", &lr);
    let ds = Dataset::load(&hr_dir, Some(&root.join("flat")), 3).unwrap();
    assert_eq!(ds.pairs[0].lr.to_rgb(), lr);
    // DIV2K's `X3/` subfolder, upper-case extension.
    write(&root.join("sub/X3"), "babyx3.PNG", &lr);
    let ds = Dataset::load(&hr_dir, Some(&root.join("sub")), 3).unwrap();
    assert_eq!(ds.pairs[0].lr.to_rgb(), lr);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hr_is_modcropped_and_lr_checked_against_it() {
    let root = scratch("modcrop");
    let hr = texture(13, 17, 2);
    write(&root.join("hr"), "a.png", &hr);
    // floor(13/4) x floor(17/4) = 3 x 4.
    write(&root.join("lr"), "ax4.png", &texture(3, 4, 5));
    let ds = Dataset::load(&root.join("hr"), Some(&root.join("lr")), 4).unwrap();
    assert_eq!((ds.pairs[0].hr.height, ds.pairs[0].hr.width), (12, 16));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn wrong_lr_size_names_the_file_and_both_sizes() {
    let root = scratch("mismatch");
    write(&root.join("hr"), "0001.png", &texture(12, 16, 0));
    write(&root.join("lr"), "0001x2.png", &texture(6, 7, 0));
    let err = Dataset::load(&root.join("hr"), Some(&root.join("lr")), 2).unwrap_err();
    assert!(matches!(err, DataError::LrSizeMismatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains("0001x2.png"), "{msg}");
    assert!(
        msg.contains("6x7") && msg.contains("12x16") && msg.contains("6x8"),
        "{msg}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn unpaired_files_are_listed_in_both_directions() {
    let root = scratch("unpaired");
    for i in 0..8 {
        write(&root.join("hr"), &format!("h{i}.png"), &texture(4, 4, i));
    }
    write(&root.join("lr"), "h0x2.png", &texture(2, 2, 0));
    write(&root.join("lr"), "stray.png", &texture(2, 2, 0));
    let err = Dataset::load(&root.join("hr"), Some(&root.join("lr")), 2).unwrap_err();
    match &err {
        DataError::Unpaired {
            hr_only, lr_only, ..
        } => {
            assert_eq!(hr_only.len(), 7);
            assert_eq!(lr_only, &vec!["stray.png".to_string()]);
        }
        other => panic!("expected Unpaired, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("7 HR image(s)") && msg.contains("h1.png"),
        "{msg}"
    );
    assert!(msg.contains("and 2 more"), "{msg}");
    assert!(
        msg.contains("1 LR image(s)") && msg.contains("stray.png"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn two_lr_files_for_one_hr_are_an_error() {
    let root = scratch("duplicate");
    write(&root.join("hr"), "a.png", &texture(4, 4, 0));
    write(&root.join("lr"), "a.png", &texture(2, 2, 0));
    write(&root.join("lr"), "ax2.png", &texture(2, 2, 0));
    let err = Dataset::load(&root.join("hr"), Some(&root.join("lr")), 2).unwrap_err();
    assert!(matches!(err, DataError::DuplicateName { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("a.png") && msg.contains("ax2.png"), "{msg}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn empty_and_missing_folders_are_errors() {
    let root = scratch("empty");
    std::fs::create_dir_all(root.join("hr")).unwrap();
    std::fs::write(root.join("hr/notes.txt"), "no images").unwrap();
    let err = Dataset::load(&root.join("hr"), None, 2).unwrap_err();
    assert!(matches!(err, DataError::EmptyDir { .. }));
    assert!(err.to_string().contains("hr"), "{err}");

    let err = Dataset::load(&root.join("nope"), None, 2).unwrap_err();
    assert!(matches!(err, DataError::MissingDir { .. }));
    assert!(err.to_string().contains("nope"), "{err}");

    write(&root.join("hr2"), "a.png", &texture(4, 4, 0));
    let err = Dataset::load(&root.join("hr2"), Some(&root.join("missing_lr")), 2).unwrap_err();
    assert!(err.to_string().contains("missing_lr"), "{err}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hr_only_folder_makes_lr_on_the_fly() {
    let root = scratch("hr_only");
    let b = texture(14, 10, 3);
    let a = texture(9, 9, 4);
    write(&root, "b.png", &b);
    write(&root, "A.BMP.png", &a);
    let ds = Dataset::load(&root, None, 3).unwrap();
    // Sorted by file name: "A.BMP.png" < "b.png".
    assert_eq!(ds.pairs[0].name, "A.BMP.png");
    let pair = &ds.pairs[1];
    assert_eq!((pair.hr.height, pair.hr.width), (12, 9));
    assert_eq!(
        pair.lr.to_rgb(),
        downscale(&b.crop(0, 0, 12, 9).unwrap(), 3).unwrap()
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hr_smaller_than_the_scale_is_an_error() {
    let root = scratch("tiny");
    write(&root, "tiny.png", &texture(1, 5, 0));
    let err = Dataset::load(&root, None, 2).unwrap_err();
    assert!(err.to_string().contains("tiny.png"), "{err}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn scale_zero_is_rejected() {
    let err = Dataset::load(Path::new("."), None, 0).unwrap_err();
    assert!(err.to_string().contains("scale"), "{err}");
}

#[test]
fn pairing_survives_names_whose_sorted_orders_differ() {
    // HR order: a.png < a_b.png; LR order: a_bx2.png < ax2.png. Pairing by
    // position would swap them (and fail on size); by name it is right.
    let root = scratch("order");
    let (a, ab) = (texture(8, 8, 1), texture(10, 6, 2));
    write(&root.join("hr"), "a.png", &a);
    write(&root.join("hr"), "a_b.png", &ab);
    write(&root.join("lr"), "ax2.png", &downscale(&a, 2).unwrap());
    write(&root.join("lr"), "a_bx2.png", &downscale(&ab, 2).unwrap());
    let ds = Dataset::load(&root.join("hr"), Some(&root.join("lr")), 2).unwrap();
    assert_eq!(ds.pairs[0].name, "a.png");
    assert_eq!(ds.pairs[0].lr.to_rgb(), downscale(&a, 2).unwrap());
    assert_eq!(ds.pairs[1].name, "a_b.png");
    assert_eq!(ds.pairs[1].lr.to_rgb(), downscale(&ab, 2).unwrap());
    std::fs::remove_dir_all(root).unwrap();
}

//! Patch sampling: reproducibility, LR/HR alignment, augmentations, resume.

use std::sync::Arc;

use esr_ea::data::{
    default_train, downscale, Augment, Batch, Dataset, Image8, ImagePair, PatchSampler, RgbImage,
    SamplerState,
};

/// A deterministic pseudo-random texture.
fn texture(h: usize, w: usize, seed: u64) -> RgbImage {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data = (0..3 * h * w)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 256) as f32
        })
        .collect();
    RgbImage::new(h, w, data).unwrap()
}

/// Nearest-neighbour upscale: every LR pixel becomes an `s` x `s` block, so
/// the HR patch of an aligned crop is exactly the upscaled LR patch.
fn nearest_up(img: &RgbImage, s: usize) -> RgbImage {
    let (h, w) = (img.height * s, img.width * s);
    let mut data = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                data.push(img.get(c, y / s, x / s));
            }
        }
    }
    RgbImage::new(h, w, data).unwrap()
}

/// A dataset whose HR images are nearest-neighbour upscales of random LRs.
fn blocky_dataset(scale: usize) -> Arc<Dataset> {
    let pairs = [(20, 24), (17, 30), (25, 19)]
        .iter()
        .enumerate()
        .map(|(i, &(h, w))| {
            let lr = texture(h, w, i as u64 + 1);
            ImagePair {
                name: format!("img{i}"),
                hr: Image8::from_rgb(&nearest_up(&lr, scale)),
                lr: Image8::from_rgb(&lr),
            }
        })
        .collect();
    Arc::new(Dataset {
        pairs,
        scale,
        source: "test".to_string(),
    })
}

/// Patch `b` of a batch buffer as an image (values back on 0..255).
fn patch(buf: &[f32], b: usize, side: usize) -> RgbImage {
    let len = 3 * side * side;
    let data = buf[b * len..(b + 1) * len]
        .iter()
        .map(|v| v * 255.0)
        .collect();
    RgbImage::new(side, side, data).unwrap()
}

fn close(a: &RgbImage, b: &RgbImage, tol: f32) -> bool {
    a.data
        .iter()
        .zip(&b.data)
        .all(|(x, y)| (x - y).abs() <= tol)
}

/// The 8 orientations of a square image.
fn orientations(img: &RgbImage) -> Vec<RgbImage> {
    let n = img.height;
    let map = |f: &dyn Fn(usize, usize) -> (usize, usize)| {
        let mut data = Vec::with_capacity(img.data.len());
        for c in 0..3 {
            for y in 0..n {
                for x in 0..n {
                    let (sy, sx) = f(y, x);
                    data.push(img.get(c, sy, sx));
                }
            }
        }
        RgbImage::new(n, n, data).unwrap()
    };
    let l = n - 1;
    vec![
        map(&|y, x| (y, x)),
        map(&|y, x| (y, l - x)),
        map(&|y, x| (l - y, x)),
        map(&|y, x| (l - y, l - x)),
        map(&|y, x| (x, y)),
        map(&|y, x| (x, l - y)),
        map(&|y, x| (l - x, y)),
        map(&|y, x| (l - x, l - y)),
    ]
}

#[test]
fn batches_have_the_documented_shapes() {
    let mut sampler = PatchSampler::new(blocky_dataset(3), 8, 5, Augment::ALL, 1).unwrap();
    let batch: Batch = sampler.next_batch();
    assert_eq!(batch.lr_shape(), [5, 3, 8, 8]);
    assert_eq!(batch.hr_shape(), [5, 3, 24, 24]);
    assert_eq!(batch.lr.len(), 5 * 3 * 8 * 8);
    assert_eq!(batch.hr.len(), 5 * 3 * 24 * 24);
    assert!(batch
        .lr
        .iter()
        .chain(&batch.hr)
        .all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn same_seed_same_batches_other_seed_other_batches() {
    let ds = blocky_dataset(2);
    let mut a = PatchSampler::new(ds.clone(), 6, 4, Augment::ALL, 42).unwrap();
    let mut b = PatchSampler::new(ds.clone(), 6, 4, Augment::ALL, 42).unwrap();
    let mut c = PatchSampler::new(ds, 6, 4, Augment::ALL, 43).unwrap();
    for _ in 0..5 {
        let (x, y, z) = (a.next_batch(), b.next_batch(), c.next_batch());
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
    assert_eq!(a.state().batches_drawn, 5);
}

#[test]
fn hr_patches_are_aligned_with_lr_patches_under_every_augmentation() {
    for scale in [2, 3, 4] {
        let ds = blocky_dataset(scale);
        for augment in [Augment::NONE, Augment::ALL] {
            let mut sampler = PatchSampler::new(ds.clone(), 7, 16, augment, 7).unwrap();
            for _ in 0..4 {
                let batch = sampler.next_batch();
                for b in 0..batch.batch {
                    let lr = patch(&batch.lr, b, 7);
                    let hr = patch(&batch.hr, b, 7 * scale);
                    assert!(
                        close(&nearest_up(&lr, scale), &hr, 1e-3),
                        "x{scale} {augment:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn on_the_fly_lr_is_the_downscaled_hr_patch() {
    // Away from the patch border (where cropping cuts the kernel's support),
    // downscaling the HR patch gives the LR patch back.
    let ds = Arc::new(default_train(2).unwrap());
    let mut sampler = PatchSampler::new(ds, 16, 8, Augment::ALL, 3).unwrap();
    let batch = sampler.next_batch();
    for b in 0..batch.batch {
        let lr = patch(&batch.lr, b, 16);
        let hr = patch(&batch.hr, b, 32);
        let down = downscale(&hr, 2).unwrap();
        let (inner_lr, inner_down) = (
            lr.crop(3, 3, 10, 10).unwrap(),
            down.crop(3, 3, 10, 10).unwrap(),
        );
        assert!(close(&inner_lr, &inner_down, 1.01), "patch {b}");
    }
}

#[test]
fn augmentations_are_transforms_of_the_unaugmented_crop() {
    // Crop positions do not depend on the augmentation switches, so the same
    // seed yields the same windows, transformed or not.
    let ds = blocky_dataset(2);
    let mut plain = PatchSampler::new(ds.clone(), 6, 64, Augment::NONE, 11).unwrap();
    let mut all = PatchSampler::new(ds.clone(), 6, 64, Augment::ALL, 11).unwrap();
    let hflip_only = Augment {
        hflip: true,
        ..Augment::NONE
    };
    let mut hflip = PatchSampler::new(ds, 6, 64, hflip_only, 11).unwrap();
    let (p, a, h) = (plain.next_batch(), all.next_batch(), hflip.next_batch());
    let mut seen = [0usize; 8];
    let mut flipped = 0;
    for b in 0..64 {
        let options = orientations(&patch(&p.lr, b, 6));
        let got = patch(&a.lr, b, 6);
        let which = options
            .iter()
            .position(|o| close(o, &got, 1e-4))
            .expect("an orientation");
        seen[which] += 1;
        let got_h = patch(&h.lr, b, 6);
        if close(&options[1], &got_h, 1e-4) && !close(&options[0], &got_h, 1e-4) {
            flipped += 1;
        } else {
            assert!(
                close(&options[0], &got_h, 1e-4),
                "hflip-only must be identity or mirror"
            );
        }
    }
    assert!(seen.iter().filter(|&&n| n > 0).count() >= 6, "{seen:?}");
    assert!((16..=48).contains(&flipped), "{flipped} of 64 mirrored");
}

#[test]
fn state_round_trips_through_json_and_resumes_exactly() {
    let ds = blocky_dataset(2);
    let mut sampler = PatchSampler::new(ds.clone(), 5, 3, Augment::ALL, 99).unwrap();
    sampler.next_batch();
    let saved = serde_json::to_string(sampler.state()).unwrap();
    let expected: Vec<Batch> = (0..3).map(|_| sampler.next_batch()).collect();
    let state: SamplerState = serde_json::from_str(&saved).unwrap();
    assert_eq!(state.batches_drawn, 1);
    let mut resumed = PatchSampler::resume(ds, state).unwrap();
    let got: Vec<Batch> = (0..3).map(|_| resumed.next_batch()).collect();
    assert_eq!(got, expected);
}

#[test]
fn images_smaller_than_the_crop_are_named() {
    let err = PatchSampler::new(blocky_dataset(2), 18, 4, Augment::ALL, 0).unwrap_err();
    let msg = err.to_string();
    // img1 is 17 LR rows high.
    assert!(msg.contains("img1") && msg.contains("17x30"), "{msg}");
}

#[test]
fn bad_arguments_are_errors() {
    assert!(PatchSampler::new(blocky_dataset(2), 0, 4, Augment::ALL, 0).is_err());
    assert!(PatchSampler::new(blocky_dataset(2), 4, 0, Augment::ALL, 0).is_err());
    let empty = Arc::new(Dataset {
        pairs: vec![],
        scale: 2,
        source: "nothing".to_string(),
    });
    assert!(PatchSampler::new(empty, 4, 4, Augment::ALL, 0).is_err());
    let mut ds = (*blocky_dataset(2)).clone();
    ds.pairs[0].hr = Image8::from_rgb(&ds.pairs[0].hr.to_rgb().crop(0, 0, 10, 10).unwrap());
    let err = PatchSampler::new(Arc::new(ds), 4, 4, Augment::ALL, 0).unwrap_err();
    assert!(err.to_string().contains("img0"), "{err}");
}

/// How long a typical batch takes (16 patches of 32x32 LR, x2); prints it.
#[test]
#[ignore = "timing measurement; run with --ignored --nocapture"]
fn time_next_batch() {
    let ds = Arc::new(default_train(2).unwrap());
    let mut sampler = PatchSampler::new(ds, 32, 16, Augment::ALL, 0).unwrap();
    let rounds = 2000;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(sampler.next_batch());
    }
    let per = start.elapsed() / rounds;
    println!("next_batch(16 x 32x32, x2): {per:?}");
}

//! DIV2K-sized data in bounded memory: what preparing and opening the decoded
//! cache costs, what a process holds afterwards, and how many training
//! patches one core draws per second (issue 27).
//!
//! `cargo bench --bench data_patches -- [--dir HR_FOLDER] [--images N]
//! [--batches N] [--make DIR]`: without `--dir`, N (default 8) DIV2K-sized
//! (2040x1356) PNGs are made in a temporary folder (in DIR, and kept, with
//! `--make`). Patches: batch 16 x 64x64 LR at x2
//! with flips and rotations, the reference's training batch, drawn on one
//! thread; one H200 consumes about 215 a second at PyTorch's step.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use esr_ea::data::{save_rgb_png, Augment, CachePlace, DataCache, Dataset, PatchSampler, RgbImage};

/// `VmRSS`, `RssAnon` and `RssFile` of this process, in MB.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or("?".to_string(), |kb| format!("{:.0} MB", kb / 1024.0))
    };
    format!(
        "resident {} (anonymous {}, mapped files {})",
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:")
    )
}

/// A photo-like test image: smooth gradients with some texture, so that
/// PNG compresses it about as much as a photograph.
fn photo_like(h: usize, w: usize, seed: usize) -> RgbImage {
    let mut data = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let smooth = ((x * (c + 1) + y * (seed + 2)) / 16) % 200;
                let grain = (x * 7 + y * 13 + seed * 31 + c * 5) % 23;
                data.push((smooth + grain) as f32);
            }
        }
    }
    RgbImage::new(h, w, data).expect("3 * h * w samples")
}

fn main() {
    use support::arg;
    let images: usize = arg("--images").and_then(|v| v.parse().ok()).unwrap_or(8);
    let batches: usize = arg("--batches").and_then(|v| v.parse().ok()).unwrap_or(300);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("cpu: {cpu}; load average at start: {}", load.trim());
    let (dir, made) = match arg("--dir") {
        Some(d) => (PathBuf::from(d), false),
        None => {
            // `--make DIR`: the images are made there and kept.
            let kept = arg("--make").map(PathBuf::from);
            let dir = kept.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("esr-ea-div2k-bench-{}", std::process::id()))
            });
            std::fs::create_dir_all(&dir).expect("temporary folder");
            let start = Instant::now();
            for i in 0..images {
                save_rgb_png(
                    &photo_like(1356, 2040, i),
                    dir.join(format!("{:04}.png", i + 1)),
                )
                .expect("write PNG");
            }
            println!(
                "made {images} DIV2K-sized PNGs (2040x1356) in {} in {:.1} s",
                dir.display(),
                start.elapsed().as_secs_f64()
            );
            (dir, kept.is_none())
        }
    };
    let place = CachePlace::Dir(dir.join(".bench-cache"));
    let _ = std::fs::remove_dir_all(dir.join(".bench-cache"));
    println!("before loading: {}", memory());
    let cache = DataCache::new(place.clone(), |_| {});
    let start = Instant::now();
    let set = Dataset::load_checked(&dir, None, 2, &cache, &|_| None).expect("load");
    let cold = start.elapsed().as_secs_f64();
    let bytes: usize = set
        .pairs
        .iter()
        .map(|p| p.hr.byte_len() + p.lr.byte_len())
        .sum();
    println!(
        "cold (decode, make LR x2, write the cache): {} images in {cold:.2} s, {:.2} s an image with {} threads; {:.1} MB of samples ({:.1} MB an image; as f32 {:.1} MB)",
        set.len(),
        cold / set.len() as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / set.len() as f64,
        4.0 * bytes as f64 / 1e6 / set.len() as f64
    );
    println!("after the cold load: {}", memory());
    drop(set);
    let start = Instant::now();
    let set = Arc::new(Dataset::load_checked(&dir, None, 2, &cache, &|_| None).expect("load"));
    println!(
        "warm (map and check every image's CRC): {:.3} s; {}",
        start.elapsed().as_secs_f64(),
        memory()
    );
    let mut sampler =
        PatchSampler::new(Arc::clone(&set), 64, 16, Augment::ALL, 1).expect("sampler");
    for _ in 0..10 {
        sampler.next_batch();
    }
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..batches {
            std::hint::black_box(sampler.next_batch());
        }
        rounds.push(16.0 * batches as f64 / start.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "patches (16 x 64x64 LR + 128x128 HR, flips and rotations, one thread): median {:.0} /s (min {:.0}, max {:.0}; 3 rounds of {batches} batches) = {:.0}x the ~215 /s one H200 consumes",
        rounds[1],
        rounds[0],
        rounds[2],
        rounds[1] / 215.0
    );
    println!("after sampling: {}", memory());
    if made {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        let _ = std::fs::remove_dir_all(dir.join(".bench-cache"));
    }
}

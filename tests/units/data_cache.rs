//! The decoded image cache: made once, mapped afterwards, redone for what
//! changed, rebuilt when damaged, prepared by one of two at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use esr_ea::data::{
    save_rgb_png, CacheEvent, CachePlace, DataCache, Dataset, PatchSampler, RgbImage,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn texture(h: usize, w: usize, seed: u64) -> RgbImage {
    let data = (0..3 * h * w)
        .map(|i| ((i as u64 * 37 + seed * 101) % 256) as f32)
        .collect();
    RgbImage::new(h, w, data).unwrap()
}

/// `count` textured PNGs `0.png`, `1.png`, ... of `h` x `w` in `dir`.
fn write_images(dir: &Path, count: u64, h: usize, w: usize) {
    for i in 0..count {
        save_rgb_png(&texture(h, w, i), dir.join(format!("{i}.png"))).unwrap();
    }
}

/// A cache at `place` that records what it reports.
fn recording(place: CachePlace) -> (DataCache, Arc<Mutex<Vec<CacheEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let cache = DataCache::new(place, move |e| sink.lock().unwrap().push(e.clone()));
    (cache, events)
}

/// (images in the cache, images decoded now) of the last `Ready`.
fn ready(events: &Mutex<Vec<CacheEvent>>) -> (usize, usize) {
    events
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| match e {
            CacheEvent::Ready {
                images, decoded, ..
            } => Some((*images, *decoded)),
            _ => None,
        })
        .expect("a Ready event")
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "u8cache"));
    files.sort();
    files
}

fn load(hr: &Path, cache: &DataCache) -> Dataset {
    Dataset::load_checked(hr, None, 2, cache, &|_| None).unwrap()
}

#[test]
fn first_use_decodes_later_uses_map_the_same_images() {
    let root = scratch("reuse");
    write_images(&root, 3, 20, 24);
    let in_memory = Dataset::load(&root, None, 2).unwrap();
    let (cache, events) = recording(CachePlace::BesideData);
    let first = load(&root, &cache);
    assert_eq!(ready(&events), (3, 3));
    let files = cache_files(&root.join(".esr-ea-cache"));
    assert_eq!(files.len(), 1, "one cache file beside the data");
    let second = load(&root, &cache);
    assert_eq!(ready(&events), (3, 0), "nothing decoded the second time");
    assert_eq!(first, in_memory);
    assert_eq!(second, in_memory);
    assert!(format!("{:?}", second.pairs[0].hr).contains("mapped"));
    // Patches come from the mapped bytes exactly as from memory.
    let mut a = PatchSampler::new(Arc::new(second), 6, 4, Default::default(), 9).unwrap();
    let mut b = PatchSampler::new(Arc::new(in_memory), 6, 4, Default::default(), 9).unwrap();
    assert_eq!(a.next_batch(), b.next_batch());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_changed_or_added_image_is_redone_and_only_it() {
    let root = scratch("changed");
    let place = scratch("changed-cache");
    write_images(&root, 3, 20, 24);
    let (cache, events) = recording(CachePlace::Dir(place.clone()));
    load(&root, &cache);
    // Another size makes another file size, whatever the clock's resolution.
    save_rgb_png(&texture(22, 24, 7), root.join("1.png")).unwrap();
    let changed = load(&root, &cache);
    assert_eq!(ready(&events), (3, 1));
    assert_eq!(changed.pairs[1].hr.to_rgb(), texture(22, 24, 7));
    save_rgb_png(&texture(20, 20, 8), root.join("3.png")).unwrap();
    let added = load(&root, &cache);
    assert_eq!(ready(&events), (4, 1));
    assert_eq!(added, Dataset::load(&root, None, 2).unwrap());
    std::fs::remove_file(root.join("0.png")).unwrap();
    let removed = load(&root, &cache);
    assert_eq!(ready(&events), (3, 0));
    assert_eq!(removed.len(), 3);
    assert_eq!(
        cache_files(&place).len(),
        1,
        "the file is replaced, not added to"
    );
    std::fs::remove_dir_all(root).unwrap();
    std::fs::remove_dir_all(place).unwrap();
}

#[test]
fn a_truncated_or_corrupt_cache_is_rebuilt_saying_so() {
    let root = scratch("damaged");
    let place = scratch("damaged-cache");
    write_images(&root, 2, 16, 16);
    let (cache, _) = recording(CachePlace::Dir(place.clone()));
    load(&root, &cache);
    // Compared with images in memory: the damage below is done to the file
    // in place, under any mapping of it (esr-ea itself only ever renames).
    let good = Dataset::load(&root, None, 2).unwrap();
    let file = cache_files(&place).remove(0);
    let bytes = std::fs::read(&file).unwrap();
    let rebuilt_because = |events: &Mutex<Vec<CacheEvent>>| {
        events.lock().unwrap().iter().find_map(|e| match e {
            CacheEvent::Rebuilding { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    };
    // Truncated (a copy cut short).
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let (cache, events) = recording(CachePlace::Dir(place.clone()));
    assert_eq!(load(&root, &cache), good);
    let reason = rebuilt_because(&events).expect("a rebuild");
    assert!(reason.contains("truncated"), "{reason}");
    assert_eq!(ready(&events), (2, 2));
    // One flipped byte in an image.
    let mut flipped = bytes.clone();
    flipped[100] ^= 0x55;
    std::fs::write(&file, &flipped).unwrap();
    let (cache, events) = recording(CachePlace::Dir(place.clone()));
    assert_eq!(load(&root, &cache), good);
    let reason = rebuilt_because(&events).expect("a rebuild");
    assert!(reason.contains("corrupt"), "{reason}");
    std::fs::remove_dir_all(root).unwrap();
    std::fs::remove_dir_all(place).unwrap();
}

#[test]
fn a_killed_preparation_leaves_nothing_read_as_valid() {
    let root = scratch("killed");
    let place = scratch("killed-cache");
    save_rgb_png(&texture(16, 16, 1), root.join("a.png")).unwrap();
    let (cache, events) = recording(CachePlace::Dir(place.clone()));
    load(&root, &cache);
    let file = cache_files(&place).remove(0);
    // What a preparation killed half-way leaves: its temporary file only.
    let temp = PathBuf::from(format!("{}.tmp99999", file.display()));
    std::fs::write(&temp, b"ESRU8IMG half written").unwrap();
    std::fs::remove_file(&file).unwrap();
    let (cache2, events2) = recording(CachePlace::Dir(place.clone()));
    load(&root, &cache2);
    assert_eq!(
        ready(&events2),
        (1, 1),
        "made again, not read from the leftover"
    );
    assert!(!temp.exists(), "the leftover is cleared");
    drop((cache, events));
    std::fs::remove_dir_all(root).unwrap();
    std::fs::remove_dir_all(place).unwrap();
}

#[test]
fn of_two_preparing_at_once_one_decodes_the_other_reads() {
    // flock(2) locks belong to open files, so two threads with their own
    // opens contend as two processes would.
    let root = scratch("race");
    let place = scratch("race-cache");
    write_images(&root, 6, 40, 40);
    let runs: Vec<(Dataset, (usize, usize))> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (root, place) = (&root, &place);
                s.spawn(move || {
                    let (cache, events) = recording(CachePlace::Dir(place.clone()));
                    let d = load(root, &cache);
                    (d, ready(&events))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(runs[0].0, runs[1].0);
    let decoded: usize = runs.iter().map(|r| (r.1).1).sum();
    assert_eq!(decoded, 6, "the images were decoded once in all");
    std::fs::remove_dir_all(root).unwrap();
    std::fs::remove_dir_all(place).unwrap();
}

#[test]
fn a_config_names_where_the_cache_lives() {
    let base = Path::new("/data/run");
    assert_eq!(CachePlace::parse("memory", base), CachePlace::Memory);
    assert_eq!(
        CachePlace::parse("beside_data", base),
        CachePlace::BesideData
    );
    assert_eq!(
        CachePlace::parse("cache", base),
        CachePlace::Dir(PathBuf::from("/data/run/cache"))
    );
    assert_eq!(
        CachePlace::parse("/scratch/esr", base),
        CachePlace::Dir(PathBuf::from("/scratch/esr"))
    );
}

/// Paper size: DIV2K-sized images (2040x1356) go through the cache as 8-bit
/// samples (10.4 MB an image at x2, not 41 MB as f32) and give the batches
/// of the reference's training (16 x 64 px LR).
#[test]
fn div2k_sized_images_are_cached_as_bytes() {
    let root = scratch("div2k");
    for i in 0..2 {
        save_rgb_png(&texture(1356, 2040, i), root.join(format!("08{i:02}.png"))).unwrap();
    }
    let (cache, events) = recording(CachePlace::BesideData);
    let set = load(&root, &cache);
    assert_eq!((set.pairs[0].lr.height, set.pairs[0].lr.width), (678, 1020));
    let bytes = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            CacheEvent::Ready { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .unwrap();
    let per_image = 3 * (1356 * 2040 + 678 * 1020) as u64;
    assert!(
        bytes >= 2 * per_image && bytes < 2 * per_image + 4096,
        "{bytes}"
    );
    let mut sampler = PatchSampler::new(Arc::new(set), 64, 16, Default::default(), 1).unwrap();
    let batch = sampler.next_batch();
    assert_eq!(batch.hr_shape(), [16, 3, 128, 128]);
    std::fs::remove_dir_all(root).unwrap();
}

/// `val_crop`: every validation image scored on the same centred window.
#[test]
fn validation_on_centred_crops_is_fixed() {
    use esr_ea::config::DataSplit;
    use esr_ea::train::datasets::{load_for, Role};
    let root = scratch("valcrop");
    save_rgb_png(&texture(60, 80, 3), root.join("a.png")).unwrap();
    let mut split = DataSplit::test_defaults(root.clone(), 2);
    let whole = load_for(&split, 2, Role::Scoring, &DataCache::in_memory()).unwrap();
    split.val_crop = 12;
    let cropped = load_for(&split, 2, Role::Scoring, &DataCache::in_memory()).unwrap();
    let (lr, hr) = (&cropped.pairs[0].lr, &cropped.pairs[0].hr);
    assert_eq!((lr.height, lr.width, hr.height, hr.width), (12, 12, 24, 24));
    // Centred: LR rows 9..21 of 30, columns 14..26 of 40; HR twice that.
    let full_lr = whole.pairs[0].lr.to_rgb();
    assert_eq!(lr.to_rgb(), full_lr.crop(9, 14, 12, 12).unwrap());
    let full_hr = whole.pairs[0].hr.to_rgb();
    assert_eq!(hr.to_rgb(), full_hr.crop(18, 28, 24, 24).unwrap());
    // Too small to score (SSIM's window after the shave) is refused by name.
    split.val_crop = 3;
    let err = load_for(&split, 2, Role::Scoring, &DataCache::in_memory()).unwrap_err();
    assert!(err.to_string().contains("val_crop"), "{err}");
    std::fs::remove_dir_all(root).unwrap();
}

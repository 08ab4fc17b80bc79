//! The decoded image cache: a folder's images decoded once (and their LR made
//! once per scale) into one file of 8-bit samples that every later use maps.
//!
//! Decoding DIV2K's 800 PNGs and making their LR takes about a minute, and as
//! `f32` the set would not fit a 24 GB machine; mapped bytes cost neither
//! again, and the worker threads of a run, several runs and the Slurm jobs on
//! one node share one copy through the page cache.
//!
//! One cache file holds one (HR folder, LR folder or bicubic, scale) and is
//! named by a hash of those and of [`FORMAT_VERSION`] and
//! [`super::resize::DOWNSCALER_VERSION`]. Inside, every image is keyed by its
//! files' paths, sizes and modification times: a changed, added or removed
//! image makes a new file in which only that image is decoded again.
//!
//! Layout: `MAGIC`, the images' samples (HR then LR, CHW), the JSON index,
//! then a footer (index length, its CRC-32, `END_MAGIC`). Every image has its
//! CRC-32 in the index and all are checked when the file is opened: a
//! truncated or corrupt file is rebuilt, saying so in one line. A file is
//! written under a temporary name and renamed into place, so a killed
//! preparation leaves nothing that is read as valid; a lock file lets one
//! process prepare while another waits, then reads.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Instant, UNIX_EPOCH};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::image8::Image8;
use super::resize::DOWNSCALER_VERSION;
use super::{DataError, ImagePair};

/// Version of the file layout; part of every cache file's name.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"ESRU8IMG";
const END_MAGIC: &[u8; 8] = b"ESRU8END";
/// Index length (u64), index CRC-32 (u32), 4 zero bytes, `END_MAGIC`.
const FOOTER_LEN: usize = 24;
/// Folder made inside the HR folder when the cache lives beside the data.
pub const BESIDE_DATA_DIR: &str = ".esr-ea-cache";
/// Environment variable naming the cache folder (overrides the config).
pub const CACHE_DIR_ENV: &str = "ESR_EA_DATA_CACHE";

/// Where decoded images are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CachePlace {
    /// In `<HR folder>/.esr-ea-cache/` when that can be written, else in the
    /// user's cache folder (`$XDG_CACHE_HOME/esr-ea`, `~/.cache/esr-ea`).
    #[default]
    BesideData,
    /// In this folder (e.g. a cluster's shared storage), made if missing.
    Dir(PathBuf),
    /// Nowhere: every image is decoded into this process's memory.
    Memory,
}

impl CachePlace {
    /// `memory`, `beside_data`, or a folder (relative to `base`).
    pub fn parse(text: &str, base: &Path) -> CachePlace {
        match text {
            "memory" => CachePlace::Memory,
            "beside_data" => CachePlace::BesideData,
            dir => CachePlace::Dir(base.join(dir)),
        }
    }

    /// The place `ESR_EA_DATA_CACHE` names when it is set, else this one.
    pub fn unless_environment_says(self) -> CachePlace {
        match std::env::var(CACHE_DIR_ENV) {
            Ok(v) if !v.trim().is_empty() => CachePlace::parse(v.trim(), Path::new("")),
            _ => self,
        }
    }
}

impl std::fmt::Display for CachePlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CachePlace::BesideData => f.write_str("beside_data"),
            CachePlace::Memory => f.write_str("memory"),
            CachePlace::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// What preparing a dataset's cache tells the user.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheEvent {
    /// Another process is preparing the same cache; this one waits for it.
    Waiting {
        /// The cache file.
        path: PathBuf,
    },
    /// The cache file cannot be used and is made again.
    Rebuilding {
        /// The cache file.
        path: PathBuf,
        /// Why (truncated, corrupt, unreadable).
        reason: String,
    },
    /// Images decoded so far into a new cache file.
    Preparing {
        /// The cache file.
        path: PathBuf,
        /// Images done.
        done: usize,
        /// Images to decode in all.
        total: usize,
    },
    /// The cache file is in use.
    Ready {
        /// The cache file.
        path: PathBuf,
        /// Images in it.
        images: usize,
        /// Of which decoded by this process now.
        decoded: usize,
        /// Its size.
        bytes: u64,
        /// Seconds spent checking (and preparing) it.
        seconds: f64,
    },
    /// No cache folder could be written: the images are held in memory.
    InMemory {
        /// Why.
        reason: String,
    },
}

/// Where to cache and whom to tell.
#[derive(Clone)]
pub struct DataCache {
    /// Where decoded images are kept.
    pub place: CachePlace,
    report: Arc<dyn Fn(&CacheEvent) + Send + Sync>,
}

impl DataCache {
    /// A cache at `place` that reports to `report`.
    pub fn new(
        place: CachePlace,
        report: impl Fn(&CacheEvent) + Send + Sync + 'static,
    ) -> DataCache {
        DataCache {
            place,
            report: Arc::new(report),
        }
    }

    /// No cache file, nothing reported (tests, small in-memory sets).
    pub fn in_memory() -> DataCache {
        DataCache::new(CachePlace::Memory, |_| {})
    }
}

/// One image of a folder: its name and the files it is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The HR file name (`0001.png`).
    pub name: String,
    /// The HR file.
    pub hr: PathBuf,
    /// The LR file, when the dataset has an LR folder.
    pub lr: Option<PathBuf>,
}

/// A file's identity for the cache: path, size, modification time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    path: PathBuf,
    size: u64,
    modified_ns: u64,
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, DataError> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, &e))?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Stamp {
            path: path.to_path_buf(),
            size: meta.len(),
            modified_ns,
        })
    }
}

/// Where one image's samples lie in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    height: usize,
    width: usize,
    offset: u64,
    crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    name: String,
    hr_file: Stamp,
    lr_file: Option<Stamp>,
    hr: Window,
    lr: Window,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Index {
    format: u32,
    downscaler: u32,
    scale: usize,
    key: String,
    entries: Vec<Entry>,
}

/// A source with its files' stamps, as the cache keys it.
struct Stamped<'a> {
    source: &'a Source,
    hr: Stamp,
    lr: Option<Stamp>,
}

impl Stamped<'_> {
    fn matches(&self, e: &Entry) -> bool {
        e.name == self.source.name && e.hr_file == self.hr && e.lr_file == self.lr
    }
}

/// Makes one pair from its files (decode, modcrop, downscale or check).
pub type MakePair<'a> = &'a (dyn Fn(&Source) -> Result<ImagePair, DataError> + Sync);

/// The pairs of `sources` (in their order) from the cache of the dataset
/// (`hr_dir`, `lr_dir`, `scale`), preparing what is missing with `make`;
/// each source that cannot be made gives its error in its place.
pub fn pairs_of(
    sources: &[Source],
    hr_dir: &Path,
    lr_dir: Option<&Path>,
    scale: usize,
    cache: &DataCache,
    make: MakePair,
) -> Result<Vec<Result<ImagePair, DataError>>, DataError> {
    let key = cache_key(hr_dir, lr_dir, scale);
    let path = match cache_file(&cache.place, hr_dir, &key, scale) {
        Ok(Some(path)) => path,
        Ok(None) => return Ok(make_all(sources, make)),
        Err(reason) => {
            (cache.report)(&CacheEvent::InMemory { reason });
            return Ok(make_all(sources, make));
        }
    };
    let start = Instant::now();
    let stamped = sources
        .iter()
        .map(|source| {
            Ok(Stamped {
                source,
                hr: Stamp::of(&source.hr)?,
                lr: source.lr.as_deref().map(Stamp::of).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    // Readers share the lock; whoever must write waits for them and for any
    // other writer, then looks again: the other may have made it already.
    let lock = Lock::open(&path);
    lock.take(false, &|| {
        (cache.report)(&CacheEvent::Waiting { path: path.clone() })
    });
    // The pairs when the cache file holds exactly these images, as they are now.
    let current = |opened: &Option<(Arc<Mmap>, Index)>| {
        let (map, index) = opened.as_ref()?;
        let pairs = complete(&stamped, map, index)?;
        (cache.report)(&ready(&path, pairs.len(), 0, start));
        Some(pairs.into_iter().map(Ok).collect::<Vec<_>>())
    };
    if let Some(pairs) = open(&path, &key, scale).ok().and_then(|o| current(&o)) {
        return Ok(pairs);
    }
    lock.release();
    lock.take(true, &|| {
        (cache.report)(&CacheEvent::Waiting { path: path.clone() })
    });
    let old = match open(&path, &key, scale) {
        Ok(old) => old,
        Err(reason) => {
            (cache.report)(&CacheEvent::Rebuilding {
                path: path.clone(),
                reason,
            });
            None
        }
    };
    if let Some(pairs) = current(&old) {
        return Ok(pairs);
    }
    remove_stale_temporaries(&path);
    let (index, problems, decoded) =
        write(&path, &key, scale, &stamped, old.as_ref(), cache, make)?;
    let map = Arc::new(map_file(&path)?);
    let mut by_name = std::collections::BTreeMap::new();
    for entry in &index.entries {
        by_name.insert(entry.name.clone(), pair_of(entry, &map)?);
    }
    drop(lock);
    (cache.report)(&ready(&path, index.entries.len(), decoded, start));
    Ok(sources
        .iter()
        .zip(problems)
        .map(|(source, problem)| match problem {
            Some(e) => Err(e),
            None => Ok(by_name
                .remove(&source.name)
                .expect("every made pair is indexed")),
        })
        .collect())
}

fn ready(path: &Path, images: usize, decoded: usize, start: Instant) -> CacheEvent {
    CacheEvent::Ready {
        path: path.to_path_buf(),
        images,
        decoded,
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// What names one dataset's cache: its folders, scale and the versions of
/// the layout and of the downscaler that made its LR.
fn cache_key(hr_dir: &Path, lr_dir: Option<&Path>, scale: usize) -> String {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let lr = lr_dir.map_or("bicubic".to_string(), |d| absolute(d).display().to_string());
    format!(
        "format {FORMAT_VERSION}; downscaler {DOWNSCALER_VERSION}; x{scale}; HR {}; LR {lr}",
        absolute(hr_dir).display()
    )
}

/// 64-bit FNV-1a: a file name that stays the same across builds (std's
/// hasher may change between Rust releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The cache file for `key` at `place`; `None` for [`CachePlace::Memory`];
/// an error (a reason) when no folder can be written.
fn cache_file(
    place: &CachePlace,
    hr_dir: &Path,
    key: &str,
    scale: usize,
) -> Result<Option<PathBuf>, String> {
    let folder_name = hr_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "images".into());
    let name = format!("{folder_name}-x{scale}-{:016x}.u8cache", fnv1a(key));
    let dirs: Vec<PathBuf> = match place {
        CachePlace::Memory => return Ok(None),
        CachePlace::Dir(dir) => vec![dir.clone()],
        CachePlace::BesideData => {
            let mut dirs = vec![hr_dir.join(BESIDE_DATA_DIR)];
            dirs.extend(user_cache_dir());
            dirs
        }
    };
    let mut reasons = Vec::new();
    for dir in &dirs {
        match writable(dir) {
            Ok(()) => return Ok(Some(dir.join(&name))),
            Err(e) => reasons.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!(
        "no cache folder can be written ({})",
        reasons.join("; ")
    ))
}

/// `$XDG_CACHE_HOME/esr-ea`, else `$HOME/.cache/esr-ea`.
fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("esr-ea"))
}

/// Makes `dir` and checks that a file can be created in it.
fn writable(dir: &Path) -> std::io::Result<()> {
    // A name of its own per call: two threads of one process probing the
    // same folder at once (two workers loading their data) must not
    // remove each other's probe (the loser would fall back to memory).
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".probe-{}-{n}", std::process::id()));
    File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// `<cache file>.lock`, taken shared to read and exclusive to write. Where
/// it cannot be made or locked (a read-only cache folder prepared by
/// someone else, a file system without `flock`), the cache is used unlocked:
/// files are still only ever renamed into place, so a reader never sees a
/// half-written one, at worst two processes both prepare it.
struct Lock(Option<File>);

impl Lock {
    fn open(path: &Path) -> Lock {
        Lock(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(with_suffix(path, ".lock"))
                .ok(),
        )
    }

    /// Takes the lock (exclusive or shared), calling `waiting` first when
    /// another process holds it.
    fn take(&self, exclusive: bool, waiting: &dyn Fn()) {
        let Some(file) = &self.0 else { return };
        let tried = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        if let Err(std::fs::TryLockError::WouldBlock) = tried {
            waiting();
            let _ = if exclusive {
                file.lock()
            } else {
                file.lock_shared()
            };
        }
    }

    fn release(&self) {
        if let Some(file) = &self.0 {
            let _ = file.unlock();
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Temporary files of preparations that were killed (only called under the
/// exclusive lock, so no other process is writing one).
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.tmp", name.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn map_file(path: &Path) -> Result<Mmap, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, &e))?;
    // SAFETY: cache files are never changed in place: a new version is
    // written under another name and renamed over this one, which leaves
    // this mapping's pages as they were.
    unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, &e))
}

/// The cache file at `path` with its index, every image checked; `Ok(None)`
/// when there is none; `Err(reason)` when it cannot be used.
fn open(path: &Path, key: &str, scale: usize) -> Result<Option<(Arc<Mmap>, Index)>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let map = map_file(path).map_err(|e| e.to_string())?;
    let n = map.len();
    if n < MAGIC.len() + FOOTER_LEN || &map[..MAGIC.len()] != MAGIC {
        return Err(format!("not a cache file or truncated ({n} bytes)"));
    }
    let footer = &map[n - FOOTER_LEN..];
    if &footer[16..] != END_MAGIC {
        return Err(format!("truncated: no end marker ({n} bytes)"));
    }
    let index_len = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes")) as usize;
    let index_crc = u32::from_le_bytes(footer[8..12].try_into().expect("4 bytes"));
    let payload_end = (n - FOOTER_LEN)
        .checked_sub(index_len)
        .filter(|&end| end >= MAGIC.len())
        .ok_or_else(|| format!("index length {index_len} does not fit the file"))?;
    let index_bytes = &map[payload_end..n - FOOTER_LEN];
    if crc32fast::hash(index_bytes) != index_crc {
        return Err("the index's checksum does not match".into());
    }
    let index: Index =
        serde_json::from_slice(index_bytes).map_err(|e| format!("unreadable index: {e}"))?;
    if index.format != FORMAT_VERSION
        || index.downscaler != DOWNSCALER_VERSION
        || index.scale != scale
        || index.key != key
    {
        return Err(format!("made for other settings ({})", index.key));
    }
    let payload = MAGIC.len()..payload_end;
    let bad = AtomicUsize::new(usize::MAX);
    let windows: Vec<(usize, &Window)> = index
        .entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| [(i, &e.hr), (i, &e.lr)])
        .collect();
    let check = |(i, w): &(usize, &Window)| {
        let start = w.offset as usize;
        let end = start.saturating_add(3 * w.height * w.width);
        if start < payload.start
            || end > payload.end
            || crc32fast::hash(&map[start..end]) != w.crc32
        {
            bad.fetch_min(*i, Ordering::Relaxed);
        }
    };
    in_parallel(&windows, check);
    let bad = bad.into_inner();
    if bad != usize::MAX {
        return Err(format!(
            "image {:?} is corrupt (checksum or place)",
            index.entries[bad].name
        ));
    }
    Ok(Some((Arc::new(map), index)))
}

/// Runs `work` on every item, spread over the cores.
fn in_parallel<T: Sync>(items: &[T], work: impl Fn(&T) + Sync) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                work(item);
            });
        }
    });
}

/// The pairs of `stamped` when the cache holds exactly these images, as
/// they are now; `None` when anything was changed, added or removed.
fn complete(stamped: &[Stamped], map: &Arc<Mmap>, index: &Index) -> Option<Vec<ImagePair>> {
    if stamped.len() != index.entries.len() {
        return None;
    }
    let by_name: std::collections::BTreeMap<&str, &Entry> =
        index.entries.iter().map(|e| (e.name.as_str(), e)).collect();
    stamped
        .iter()
        .map(|s| {
            let entry = by_name.get(s.source.name.as_str())?;
            s.matches(entry).then(|| pair_of(entry, map).ok()).flatten()
        })
        .collect()
}

fn pair_of(entry: &Entry, map: &Arc<Mmap>) -> Result<ImagePair, DataError> {
    let image = |w: &Window| {
        Image8::mapped(w.height, w.width, Arc::clone(map), w.offset as usize).ok_or_else(|| {
            DataError::invalid(
                "cache window",
                entry.name.clone(),
                "must lie inside the cache file",
            )
        })
    };
    Ok(ImagePair {
        name: entry.name.clone(),
        hr: image(&entry.hr)?,
        lr: image(&entry.lr)?,
    })
}

/// Every source made in memory, spread over the cores.
fn make_all(sources: &[Source], make: MakePair) -> Vec<Result<ImagePair, DataError>> {
    let slots: Vec<std::sync::Mutex<Option<Result<ImagePair, DataError>>>> = sources
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let items: Vec<usize> = (0..sources.len()).collect();
    in_parallel(&items, |&i| {
        *slots[i].lock().expect("not poisoned") = Some(make(&sources[i]));
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("not poisoned")
                .expect("every source made")
        })
        .collect()
}

/// Writes a new cache file for `stamped` (images of `old` that are still
/// current copied, the others made), renamed into place at the end.
/// Returns its index, the problem of each source (in order) and how many
/// images were decoded.
#[allow(clippy::type_complexity)]
fn write(
    path: &Path,
    key: &str,
    scale: usize,
    stamped: &[Stamped],
    old: Option<&(Arc<Mmap>, Index)>,
    cache: &DataCache,
    make: MakePair,
) -> Result<(Index, Vec<Option<DataError>>, usize), DataError> {
    let temp = with_suffix(path, &format!(".tmp{}", std::process::id()));
    let file = File::create(&temp).map_err(|e| DataError::io(&temp, &e))?;
    let io = |e: std::io::Error| DataError::io(&temp, &e);
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC).map_err(io)?;
    let mut offset = MAGIC.len() as u64;
    let mut entries: Vec<Option<Entry>> = vec![None; stamped.len()];
    let mut problems: Vec<Option<DataError>> = (0..stamped.len()).map(|_| None).collect();
    let mut to_make = Vec::new();
    let mut put =
        |out: &mut BufWriter<File>, hr: &[u8], lr: &[u8]| -> std::io::Result<(u64, u64)> {
            let at = offset;
            out.write_all(hr)?;
            out.write_all(lr)?;
            offset += (hr.len() + lr.len()) as u64;
            Ok((at, at + hr.len() as u64))
        };
    for (i, s) in stamped.iter().enumerate() {
        let reused = old.and_then(|(map, index)| {
            let entry = index.entries.iter().find(|e| s.matches(e))?;
            Some((pair_of(entry, map).ok()?, entry))
        });
        match reused {
            Some((pair, entry)) => {
                let (hr_at, lr_at) =
                    put(&mut out, pair.hr.samples(), pair.lr.samples()).map_err(io)?;
                let mut entry = entry.clone();
                entry.hr.offset = hr_at;
                entry.lr.offset = lr_at;
                entries[i] = Some(entry);
            }
            None => to_make.push(i),
        }
    }
    let total = to_make.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(total.max(1));
    let next = AtomicUsize::new(0);
    // Bounded: at most a few decoded images wait for the writer at a time.
    let (sender, receiver) = mpsc::sync_channel::<(usize, Result<ImagePair, DataError>)>(workers);
    let mut write_error = None;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, to_make) = (&next, &to_make);
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = to_make.get(k) else { break };
                if sender.send((i, make(stamped[i].source))).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        for (done, (i, made)) in (1..).zip(receiver) {
            match made {
                Err(e) => problems[i] = Some(e),
                Ok(pair) if write_error.is_none() => {
                    match put(&mut out, pair.hr.samples(), pair.lr.samples()) {
                        Ok((hr_at, lr_at)) => {
                            let window = |img: &Image8, offset| Window {
                                height: img.height,
                                width: img.width,
                                offset,
                                crc32: crc32fast::hash(img.samples()),
                            };
                            entries[i] = Some(Entry {
                                name: stamped[i].source.name.clone(),
                                hr_file: stamped[i].hr.clone(),
                                lr_file: stamped[i].lr.clone(),
                                hr: window(&pair.hr, hr_at),
                                lr: window(&pair.lr, lr_at),
                            });
                        }
                        Err(e) => write_error = Some(io(e)),
                    }
                }
                Ok(_) => {}
            }
            (cache.report)(&CacheEvent::Preparing {
                path: path.to_path_buf(),
                done,
                total,
            });
        }
    });
    let finish = || -> Result<Index, DataError> {
        if let Some(e) = write_error {
            return Err(e);
        }
        let index = Index {
            format: FORMAT_VERSION,
            downscaler: DOWNSCALER_VERSION,
            scale,
            key: key.to_string(),
            entries: entries.into_iter().flatten().collect(),
        };
        let json = serde_json::to_vec(&index).expect("plain data");
        out.write_all(&json).map_err(io)?;
        out.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&crc32fast::hash(&json).to_le_bytes())
            .map_err(io)?;
        out.write_all(&[0; 4]).map_err(io)?;
        out.write_all(END_MAGIC).map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp, path).map_err(|e| DataError::io(path, &e))?;
        Ok(index)
    };
    match finish() {
        Ok(index) => Ok((index, problems, total)),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_stable() {
        // The hash names files that other builds must find again.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}

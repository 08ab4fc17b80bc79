//! Peak host memory of this process, read from `/proc` (Linux), for the
//! `speed` command's per-phase figures.
//!
//! `VmHWM` in `/proc/self/status` is the resident-set high-water mark; writing
//! `5` to `/proc/self/clear_refs` resets it to the current resident size, so a
//! phase's peak is the mark read after it when it was reset before it. Memory
//! the allocator keeps for reuse (see [`super::alloc`]) stays resident, so a
//! later phase's peak includes what earlier phases left in the heap.

/// Current and peak resident memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rss {
    /// Resident now (`VmRSS`).
    pub current: u64,
    /// High-water mark since start or the last [`reset_peak`] (`VmHWM`).
    pub peak: u64,
}

/// Reads `VmRSS` and `VmHWM`; `None` where `/proc/self/status` is missing
/// (not Linux) or lacks them.
pub fn rss() -> Option<Rss> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(Rss {
        current: status_kib(&status, "VmRSS:")? * 1024,
        peak: status_kib(&status, "VmHWM:")? * 1024,
    })
}

/// Resets the peak to the current resident size. Returns false where the
/// kernel does not allow it (then [`rss`]'s peak keeps counting from start).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The value in KiB of a `Name:   1234 kB` line of `/proc/self/status`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(s, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(s, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(s, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_is_at_least_current() {
        let r = rss().expect("linux has /proc/self/status");
        assert!(r.current > 0 && r.peak >= r.current, "{r:?}");
    }
}

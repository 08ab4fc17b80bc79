//! Keeping freed memory in the process for the next training step.
//!
//! A training step allocates and frees hundreds of megabytes of activations
//! and gradients. With glibc's defaults the top of the heap is trimmed back
//! to the kernel on free and big blocks are `mmap`ed, so every step faults
//! the same pages in again and the kernel zeroes each one: a third of a
//! step's CPU time went to `clear_page` before this. Raising the trim and
//! mmap thresholds keeps the memory in the heap for reuse; peak memory is
//! unchanged (the same blocks are needed at the peak either way).

/// Tunes the allocator once per process (glibc on Linux only; elsewhere a
/// no-op). Called by the CPU convolution on first use, so training and
/// inference get it without the caller's help.
pub fn tune_allocator() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        glibc::keep_freed_memory();
    });
}

/// Hands the memory freed so far back to the kernel (glibc's
/// `malloc_trim`; elsewhere a no-op), so that the next measurement's
/// resident-set peak starts from what is in use, not from what an earlier
/// network left in the heap. Costs page faults on the next allocations:
/// call it between measurements, not inside one.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    pub fn trim() {
        // SAFETY: malloc_trim only returns free pages to the kernel.
        unsafe {
            malloc_trim(0);
        }
    }

    /// `M_TRIM_THRESHOLD` from glibc's `malloc.h`.
    const M_TRIM_THRESHOLD: c_int = -1;
    /// `M_MMAP_THRESHOLD` from glibc's `malloc.h`.
    const M_MMAP_THRESHOLD: c_int = -3;
    /// `M_MMAP_MAX` from glibc's `malloc.h`.
    const M_MMAP_MAX: c_int = -4;
    /// The largest mmap threshold glibc accepts on 64-bit targets (32 MiB):
    /// only blocks above it (none in ESRN training) still go to `mmap`.
    const MMAP_THRESHOLD_MAX: c_int = 32 * 1024 * 1024;

    pub fn keep_freed_memory() {
        // SAFETY: mallopt only changes allocator parameters; it is safe to call
        // at any time. A rejected value (return 0) leaves the default.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX);
            mallopt(M_TRIM_THRESHOLD, c_int::MAX);
            // Blocks above the largest threshold (an inference's feature
            // maps: a 640x360 map of 96 channels is 88 MB) would still be
            // mmapped and their pages faulted in and zeroed by the kernel on
            // every use: a quarter of a 1280x720 inference's time. With no
            // mmap at all they come from the heap and are reused.
            mallopt(M_MMAP_MAX, 0);
        }
    }
}

//! Splitting a kernel's work over worker threads.
//!
//! The kernels run on [`super::pool`], whose caller never waits for a worker
//! that has not started (candle's barrier pool does, which made 2 threads
//! slower than 1 on a loaded machine). Every inner GEMM runs single-threaded:
//! the parallelism is over independent work items (image × row tile), which
//! keeps small matrices efficient and results independent of scheduling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::pool::pool;

/// Number of threads a kernel can use (the pool's workers plus the caller).
pub fn threads() -> usize {
    pool().threads()
}

/// Runs `f(&mut scratch, item)` once for every item in `0..n_items`, items
/// handed out dynamically. Each thread builds its scratch state with `init`
/// once, on its first item. Items must write disjoint outputs.
pub fn for_each<S, I, F>(n_items: usize, init: I, f: F)
where
    I: Fn() -> S + Sync,
    F: Fn(&mut S, usize) + Sync,
{
    if n_items == 0 {
        return;
    }
    if n_items == 1 || threads() == 1 {
        let mut s = init();
        (0..n_items).for_each(|i| f(&mut s, i));
        return;
    }
    let cursor = AtomicUsize::new(0);
    pool().broadcast(&|| {
        let mut scratch: Option<S> = None;
        loop {
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            if i >= n_items {
                break;
            }
            f(scratch.get_or_insert_with(&init), i);
        }
    });
}

/// Computes `f(c)` for every chunk `c` in `0..n_chunks` in parallel and
/// returns the results in chunk order, whatever thread ran them: a reduction
/// over the returned values is then deterministic.
pub fn map<R, F>(n_chunks: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    map_with(n_chunks, || (), |_, c| f(c))
}

/// [`map`] with `f(&mut scratch, c)`: each thread builds its scratch state
/// with `init` once, on its first chunk, and keeps it for the others.
pub fn map_with<R, S, I, F>(n_chunks: usize, init: I, f: F) -> Vec<R>
where
    R: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, usize) -> R + Sync,
{
    if n_chunks <= 1 || threads() == 1 {
        let mut s = init();
        return (0..n_chunks).map(|c| f(&mut s, c)).collect();
    }
    let slots: Vec<Mutex<Option<R>>> = (0..n_chunks).map(|_| Mutex::new(None)).collect();
    let cursor = AtomicUsize::new(0);
    pool().broadcast(&|| {
        let mut scratch: Option<S> = None;
        loop {
            let c = cursor.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break;
            }
            let r = f(scratch.get_or_insert_with(&init), c);
            *slots[c].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every chunk ran")
        })
        .collect()
}

/// Pieces a parallel sum over work items is cut into (each summed by one
/// thread into its own buffer, then added in order): fixed, so that results
/// do not depend on the number of threads.
pub const SUM_PIECES: usize = 8;

/// `Σ_item add(item)` into a buffer of `len` elements starting at `zero`:
/// the items `0..n_items` are cut into `pieces` contiguous runs (fewer
/// when there are fewer items), each summed in its own buffer, and the
/// buffers are added in order. Each thread builds one `scratch` and keeps
/// it for every item it sums: `add` may rely on what `scratch` made, never
/// on what an earlier item left. The pieces depend only on
/// `pieces` and `n_items`, so the result depends neither on thread timing
/// nor on the number of threads: threads only decide who sums which piece.
/// [`SUM_PIECES`] is the usual count; more pieces cost more buffers and
/// leave less to wait for at the end.
pub fn sum_in_pieces<T, S, I, F>(
    pieces: usize,
    n_items: usize,
    len: usize,
    zero: T,
    scratch: I,
    add: F,
) -> Vec<T>
where
    T: Copy + Send + Sync + std::ops::AddAssign,
    I: Fn() -> S + Sync,
    F: Fn(&mut [T], &mut S, usize) + Sync,
{
    let chunks = pieces.min(n_items).max(1);
    let partials = map_with(chunks, scratch, |s, c| {
        let mut acc = vec![zero; len];
        for item in chunk_range(n_items, chunks, c) {
            add(&mut acc, s, item);
        }
        acc
    });
    let mut parts = partials.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![zero; len]);
    for p in parts {
        for (t, v) in sum.iter_mut().zip(p) {
            *t += v;
        }
    }
    sum
}

/// The half-open range of `0..n` that chunk `c` of `chunks` covers: the
/// chunks are contiguous, in order, and differ in length by at most one.
pub fn chunk_range(n: usize, chunks: usize, c: usize) -> std::ops::Range<usize> {
    (c * n / chunks)..((c + 1) * n / chunks)
}

/// A raw pointer that may cross threads: kernels write disjoint parts of one
/// output buffer from several threads through it.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);

// SAFETY: only used for disjoint writes, each item touching its own region,
// while the owning buffer outlives the parallel section.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer `offset` elements further.
    ///
    /// # Safety
    /// The result must stay inside the allocation.
    pub unsafe fn add(self, offset: usize) -> *mut T {
        self.0.add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_visits_every_item_once() {
        let hits: Vec<AtomicUsize> = (0..97).map(|_| AtomicUsize::new(0)).collect();
        for_each(
            hits.len(),
            || 0usize,
            |count, i| {
                *count += 1;
                hits[i].fetch_add(1, Ordering::Relaxed);
            },
        );
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn map_with_builds_a_scratch_per_thread_and_keeps_chunk_order() {
        let built = AtomicUsize::new(0);
        let got = map_with(40, || built.fetch_add(1, Ordering::Relaxed), |_, c| c * 10);
        assert_eq!(got, (0..40).map(|c| c * 10).collect::<Vec<_>>());
        let built = built.load(Ordering::Relaxed);
        assert!(
            (1..=threads()).contains(&built),
            "{built} scratches for {} threads",
            threads()
        );
    }

    #[test]
    fn map_keeps_chunk_order() {
        assert_eq!(map(7, |c| c * 10), vec![0, 10, 20, 30, 40, 50, 60]);
        assert!(map(0, |c| c).is_empty());
    }

    #[test]
    fn a_sum_in_pieces_adds_every_item_once() {
        let sum = sum_in_pieces(
            SUM_PIECES,
            37,
            2,
            0u64,
            || (),
            |acc, _, item| {
                acc[0] += item as u64;
                acc[1] += 1;
            },
        );
        assert_eq!(sum, vec![(0..37).sum::<u64>(), 37]);
        assert_eq!(
            sum_in_pieces(SUM_PIECES, 0, 3, 0u64, || (), |_, _, _| unreachable!()),
            vec![0; 3]
        );
    }

    #[test]
    fn chunks_cover_range_in_order() {
        let all: Vec<usize> = (0..3).flat_map(|c| chunk_range(10, 3, c)).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}

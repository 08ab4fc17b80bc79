//! A small worker pool for the convolution kernels that never waits for a
//! worker that has not started.
//!
//! Why not candle's barrier pool: its caller spins, without ever yielding,
//! until every worker has run the job. On a machine shared with other
//! processes a worker is often not scheduled for a few milliseconds; the
//! caller then burns its core waiting for it, and a network with hundreds of
//! convolutions per step ran 2-4x slower on 2 threads than on 1. Here the
//! items of a job are claimed from a shared cursor; the caller takes items
//! too and, once all are claimed, waits only for items that are running
//! (yielding its core while it waits). A worker that wakes after the job is
//! over finds nothing to do and goes back to sleep. Idle workers spin for a
//! few tens of microseconds (back-to-back kernels) and then park.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle worker polls for the next job before parking: long
/// enough to cover the gap between two kernels, short enough not to steal a
/// core from other processes for long.
const IDLE_SPIN: Duration = Duration::from_micros(50);

/// One parallel job: `run` claims and runs items until none are left.
struct Job<'a> {
    run: &'a (dyn Fn() + Sync),
}

/// State shared by the caller and the workers.
struct Shared {
    /// Bumped for every job; workers wake when it changes.
    generation: AtomicUsize,
    /// The current job, or null between jobs.
    job: AtomicPtr<Job<'static>>,
    /// Workers currently inside a job (between checking it and leaving it).
    active: AtomicUsize,
    /// Set when a worker's item panicked; the caller re-raises.
    panicked: AtomicBool,
}

/// The pool: `threads() - 1` workers plus the calling thread.
pub struct Pool {
    shared: &'static Shared,
    workers: Vec<Thread>,
    /// One job at a time; a second concurrent caller runs its job alone.
    busy: Mutex<()>,
}

thread_local! {
    /// True on pool workers: a job started from inside a job runs inline.
    static IN_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The process-wide pool, sized like candle's CPU thread count
/// (`RAYON_NUM_THREADS`, else the physical cores).
pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(candle_core::utils::get_num_threads().max(1)))
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            generation: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        }));
        let workers = (1..threads)
            .filter_map(|i| {
                std::thread::Builder::new()
                    .name(format!("esr-ops-{i}"))
                    .spawn(move || worker(shared))
                    .ok()
                    .map(|h| h.thread().clone())
            })
            .collect();
        Pool {
            shared,
            workers,
            busy: Mutex::new(()),
        }
    }

    /// Threads a job can use: the workers plus the caller.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `run` on the calling thread and on every worker that is free to
    /// join, and returns when every call that started has returned. `run`
    /// must claim its work from shared state (so any number of calls, one
    /// included, completes the job) and return when none is left.
    pub fn broadcast(&self, run: &(dyn Fn() + Sync)) {
        let nested = IN_POOL.with(|f| f.get());
        let guard = if nested || self.workers.is_empty() {
            None
        } else {
            self.busy.try_lock().ok()
        };
        if guard.is_none() {
            run();
            return;
        }
        let s = self.shared;
        let job = Job { run };
        // SAFETY (lifetime): workers only dereference the pointer between
        // raising `active` and lowering it, and the job is unpublished and
        // `active` drained before this function returns.
        let ptr = &job as *const Job<'_> as *mut Job<'static>;
        s.job.store(ptr, SeqCst);
        s.generation.fetch_add(1, SeqCst);
        for w in &self.workers {
            w.unpark();
        }
        let mine = catch_unwind(AssertUnwindSafe(run));
        // Unpublish, then wait for the workers that took the job: they are
        // running items (or just leaving), never waiting to be scheduled.
        s.job.store(std::ptr::null_mut(), SeqCst);
        let mut spins = 0u32;
        while s.active.load(SeqCst) != 0 {
            spins += 1;
            if spins < 1 << 10 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        drop(guard);
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if s.panicked.swap(false, SeqCst) {
            panic!("a convolution worker thread panicked");
        }
    }
}

fn worker(s: &'static Shared) {
    IN_POOL.with(|f| f.set(true));
    let mut seen = s.generation.load(SeqCst);
    loop {
        // Wait for a new job: poll briefly, then sleep until unparked.
        let start = Instant::now();
        let mut polls = 0u32;
        while s.generation.load(SeqCst) == seen {
            polls += 1;
            if polls % 64 != 0 || start.elapsed() < IDLE_SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::park();
            }
        }
        seen = s.generation.load(SeqCst);
        // Announce ourselves before looking at the job: the caller either
        // sees us in `active` and waits, or has already unpublished the job
        // and we see null (both are SeqCst, so one of the two must hold).
        s.active.fetch_add(1, SeqCst);
        let ptr = s.job.load(SeqCst);
        if !ptr.is_null() {
            // SAFETY: published and not yet unpublished, so it is alive until
            // we lower `active`.
            let job = unsafe { &*ptr };
            if catch_unwind(AssertUnwindSafe(job.run)).is_err() {
                s.panicked.store(true, SeqCst);
            }
        }
        s.active.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_claimed_item_runs_once_even_with_late_workers() {
        let p = Pool::new(3);
        for n in [0usize, 1, 7, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            let cursor = AtomicUsize::new(0);
            p.broadcast(&|| loop {
                let i = cursor.fetch_add(1, SeqCst);
                if i >= n {
                    break;
                }
                hits[i].fetch_add(1, SeqCst);
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
        }
    }

    #[test]
    fn nested_jobs_run_inline() {
        let p = pool();
        let total = AtomicUsize::new(0);
        let outer = AtomicUsize::new(0);
        p.broadcast(&|| {
            while outer.fetch_add(1, SeqCst) < 4 {
                let inner = AtomicUsize::new(0);
                pool().broadcast(&|| {
                    while inner.fetch_add(1, SeqCst) < 3 {
                        total.fetch_add(1, SeqCst);
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 12);
    }
}

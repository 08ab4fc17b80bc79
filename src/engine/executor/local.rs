//! Trainings on this machine: one worker thread per entry of `--devices`.
//!
//! A device may be named more than once (`cpu,cpu`, or `cuda:0*4` for four
//! workers sharing one GPU), since a small network leaves most of a device
//! idle. On CPU, all workers share the process's convolution pool; a worker
//! that finds it busy runs its kernels on its own thread.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Executor, Submitted};
use crate::engine::{Fitness, Inbox, Job, Outcome, StepReport};

/// Worker threads on this machine.
pub struct LocalExecutor {
    devices: Vec<String>,
    fitness: Arc<dyn Fitness>,
    workers: Vec<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    idle: Vec<usize>,
    /// Member id → (worker, job) for the jobs in flight.
    busy: HashMap<u64, (usize, Job)>,
}

impl LocalExecutor {
    /// One worker per entry of `devices` (already expanded).
    pub fn new(devices: Vec<String>, fitness: Arc<dyn Fitness>) -> LocalExecutor {
        LocalExecutor {
            devices,
            fitness,
            workers: Vec::new(),
            threads: Vec::new(),
            idle: Vec::new(),
            busy: HashMap::new(),
        }
    }
}

impl Executor for LocalExecutor {
    fn describe(&self) -> Vec<String> {
        self.devices.clone()
    }

    fn start(&mut self, inbox: Sender<Inbox>) {
        for (index, device) in self.devices.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Job>();
            let inbox = inbox.clone();
            let fitness = Arc::clone(&self.fitness);
            let handle = std::thread::Builder::new()
                .name(format!("esr-ea-worker-{index}-{device}"))
                .spawn(move || {
                    for job in rx {
                        let id = job.member.id;
                        let step_inbox = inbox.clone();
                        let mut report = |r: StepReport| {
                            let _ = step_inbox.send(Inbox::Step(id, r));
                        };
                        let outcome =
                            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                fitness.evaluate(&job, &mut report)
                            })) {
                                Ok(r) => r,
                                Err(_) => Outcome::failed("training panicked"),
                            };
                        let _ = inbox.send(Inbox::Done { id, outcome });
                    }
                })
                .expect("spawn worker thread");
            self.workers.push(tx);
            self.threads.push(handle);
            self.idle.push(index);
        }
    }

    fn free_slots(&self) -> usize {
        self.idle.len()
    }

    fn submit(&mut self, mut job: Job) -> Result<Submitted, String> {
        if self.idle.is_empty() {
            return Err("no idle worker".into());
        }
        let worker = self.idle.remove(0);
        job.device = self.devices[worker].clone();
        self.busy.insert(job.member.id, (worker, job.clone()));
        self.workers[worker]
            .send(job)
            .map_err(|_| format!("worker {worker} is gone"))?;
        Ok(Submitted {
            device: self.devices[worker].clone(),
            handle: None,
        })
    }

    fn release(&mut self, id: u64) {
        if let Some((worker, _)) = self.busy.remove(&id) {
            self.idle.push(worker);
            self.idle.sort_unstable();
        }
    }

    fn stop(&mut self) {
        for (_, job) in self.busy.values() {
            job.cancel.store(true, Ordering::SeqCst);
        }
    }

    fn shutdown(&mut self) {
        self.workers.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

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
use crate::device::DeviceName;
use crate::engine::{Failure, Fitness, Inbox, Job, StepReport};

/// One `--devices` entry as typed: a device and how many workers it runs
/// (`cuda:0*4`). Clap parses it, so a bad entry is refused where it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceWorkers {
    /// The device.
    pub device: DeviceName,
    /// Worker threads on it, 1 or more.
    pub workers: usize,
}

impl std::str::FromStr for DeviceWorkers {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let expanded = expand_devices(&[entry.to_string()])?;
        Ok(DeviceWorkers {
            device: expanded[0].parse()?,
            workers: expanded.len(),
        })
    }
}

impl std::fmt::Display for DeviceWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.workers {
            1 => write!(f, "{}", self.device),
            n => write!(f, "{}*{n}", self.device),
        }
    }
}

impl DeviceWorkers {
    /// One device name per worker, in the order typed (`cpu*2,cuda:0` →
    /// `cpu, cpu, cuda:0`).
    pub fn expand(entries: &[DeviceWorkers]) -> Vec<String> {
        entries
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.device.to_string(), e.workers))
            .collect()
    }
}

/// Expands a `--devices` list: `cuda:0*4` is four entries `cuda:0`; other
/// entries stay as they are (trimmed). Errors name the bad entry.
pub fn expand_devices(list: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in list {
        let entry = entry.trim();
        match entry.split_once('*') {
            Some((device, count)) => {
                let n: usize = count.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("'{entry}': the count after '*' must be a whole number of workers, 1 or more (e.g. cuda:0*4)")
                })?;
                out.extend(std::iter::repeat_n(device.trim().to_string(), n));
            }
            None => out.push(entry.to_string()),
        }
    }
    if out.iter().any(|d| d.is_empty()) {
        return Err("an entry is empty (allowed: cpu, cuda:N, DEVICE*COUNT)".into());
    }
    if out.is_empty() {
        return Err("name at least one device (cpu, cuda:0, ...)".into());
    }
    Ok(out)
}

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
                        let result =
                            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                fitness.evaluate(&job, &mut report)
                            })) {
                                Ok(r) => r,
                                Err(_) => Err(Failure::Error("training panicked".into())),
                            };
                        let _ = inbox.send(Inbox::Done { id, result });
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

#[cfg(test)]
mod tests {
    use super::{expand_devices, DeviceWorkers};
    use crate::device::DeviceName;

    fn list(s: &[&str]) -> Vec<String> {
        s.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn device_counts_expand_to_workers() {
        assert_eq!(
            expand_devices(&list(&["cuda:0*3", "cpu"])).unwrap(),
            list(&["cuda:0", "cuda:0", "cuda:0", "cpu"])
        );
        assert_eq!(
            expand_devices(&list(&["cpu", "cpu"])).unwrap(),
            list(&["cpu", "cpu"])
        );
        let e = expand_devices(&list(&["cpu*0"])).unwrap_err();
        assert!(e.contains("'cpu*0'") && e.contains("1 or more"), "{e}");
        assert!(expand_devices(&list(&["cpu*x"])).is_err());
        assert!(expand_devices(&list(&[""])).is_err());
    }

    #[test]
    fn typed_entries_parse_count_and_print_back() {
        let entries: Vec<DeviceWorkers> = ["cpu*2", "cuda:1", " cpu "]
            .iter()
            .map(|e| e.parse().unwrap())
            .collect();
        assert_eq!(
            entries[0],
            DeviceWorkers {
                device: DeviceName::Cpu,
                workers: 2
            }
        );
        assert_eq!(
            DeviceWorkers::expand(&entries),
            list(&["cpu", "cpu", "cuda:1", "cpu"])
        );
        assert_eq!(entries[0].to_string(), "cpu*2");
        assert_eq!(entries[1].to_string(), "cuda:1");
        let e = "gpu0*2".parse::<DeviceWorkers>().unwrap_err();
        assert!(e.contains("'gpu0'") && e.contains("cpu, cuda:N"), "{e}");
        let e = "cpu*0".parse::<DeviceWorkers>().unwrap_err();
        assert!(e.contains("1 or more"), "{e}");
    }
}

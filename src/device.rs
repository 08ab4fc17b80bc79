//! Device names (`cpu`, `cuda:N`): read once, where they are typed (clap
//! parses `--device` into a [`DeviceName`]), opened where work starts.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

/// A device as the user names it; parsing checks the spelling only, so a
/// CUDA name on a build without CUDA is refused when it is opened, in one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    /// The CPU.
    Cpu,
    /// The NVIDIA GPU of this index.
    Cuda(usize),
}

impl FromStr for DeviceName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim() {
            "cpu" => Ok(DeviceName::Cpu),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceName::Cuda)
                .ok_or_else(|| format!("device '{other}' is not supported (allowed: cpu, cuda:N)")),
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceName::Cpu => f.write_str("cpu"),
            DeviceName::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl DeviceName {
    /// Opens the device: the CPU always; a GPU only in a `cuda` build with
    /// the driver found. The error is one line naming the device.
    pub fn open(&self) -> anyhow::Result<Device> {
        let DeviceName::Cuda(index) = *self else {
            return Ok(Device::Cpu);
        };
        if !cfg!(feature = "cuda") {
            anyhow::bail!(
                "device '{self}': this esr-ea was built without CUDA; rebuild with `cargo build --release --features cuda`"
            );
        }
        // candle appends a backtrace to the message when RUST_BACKTRACE is
        // set: keep the first line, the driver's own error.
        open_cuda(index).map_err(|e| {
            let e = e.to_string();
            let first = e.lines().next().unwrap_or("unknown error");
            anyhow::anyhow!("device '{self}' cannot be opened ({first}); check the GPU index (nvidia-smi -L) and that the NVIDIA driver and CUDA 13 libraries are found")
        })
    }
}

/// A CUDA device with a stream of its own (one per worker: workers on one
/// card run side by side) and without candle's per-tensor event tracking.
///
/// Why no tracking: it records an event for every tensor an op reads or
/// writes and makes later ops wait on them, so that a tensor used on two
/// streams is safe. Here every tensor lives and dies on the stream of the
/// device that made it (ops refuse mixed devices; copies to the host wait
/// for the stream; frees are ordered on it), so the events only cost driver
/// calls, several per kernel launch.
#[cfg(feature = "cuda")]
fn open_cuda(index: usize) -> candle_core::Result<Device> {
    let dev = Device::new_cuda_with_stream(index)?;
    if std::env::var("ESR_EA_CUDA_EVENTS").is_ok_and(|v| v == "1") {
        return Ok(dev);
    }
    if let Device::Cuda(cuda) = &dev {
        // SAFETY: no tensor of this device exists yet, and none is ever used
        // on another stream (see above).
        unsafe { cuda.disable_event_tracking() };
    }
    Ok(dev)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(index: usize) -> candle_core::Result<Device> {
    Device::new_cuda(index)
}

/// Starts (`on`) or stops the capture of a CUDA profiler that was told to
/// wait for it (`ncu --profile-from-start off`, `nsys --capture-range
/// cudaProfilerApi`): how `speed --profile-last-step` marks one step. The
/// device's queued work is finished first, so the range holds exactly what
/// runs between the two calls. Without a profiler attached it does nothing.
/// Other devices have no such profiler: an error naming the device.
pub fn cuda_profiler(dev: &Device, on: bool) -> anyhow::Result<()> {
    dev.synchronize()?;
    cuda_profiler_call(dev, on)
}

#[cfg(feature = "cuda")]
fn cuda_profiler_call(dev: &Device, on: bool) -> anyhow::Result<()> {
    use candle_core::cuda::cudarc::driver::sys;
    let Device::Cuda(cuda) = dev else {
        anyhow::bail!(
            "a CUDA profiler range needs a CUDA device, not {}",
            other_device(dev)
        );
    };
    cuda.cuda_stream()
        .context()
        .bind_to_thread()
        .map_err(candle_core::Error::wrap)?;
    // SAFETY: plain driver calls on the context bound just above.
    let status = unsafe {
        if on {
            sys::cuProfilerStart()
        } else {
            sys::cuProfilerStop()
        }
    };
    if status != sys::cudaError_enum::CUDA_SUCCESS {
        anyhow::bail!(
            "CUDA profiler {}: {status:?}",
            if on { "start" } else { "stop" }
        );
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn cuda_profiler_call(dev: &Device, _on: bool) -> anyhow::Result<()> {
    anyhow::bail!(
        "a CUDA profiler range needs a CUDA device, not {} (this build has no CUDA)",
        other_device(dev)
    )
}

fn other_device(dev: &Device) -> &'static str {
    if dev.is_cpu() {
        "the CPU"
    } else {
        "this device"
    }
}

/// Parses and opens a device name in one go (a worker given a job's device).
pub fn open(name: &str) -> anyhow::Result<Device> {
    name.parse::<DeviceName>()
        .map_err(anyhow::Error::msg)?
        .open()
}

/// What one piece of work handed out by [`share_out`] ended with.
#[derive(Debug)]
pub enum WorkEnd<R> {
    /// It returned this.
    Done(R),
    /// It panicked (the message, where it had one).
    Panicked(String),
}

/// Hands `tasks` out in order to one thread per entry of `devices` (each
/// takes the next task when its last one is done; no thread for a device
/// that would get none) and gives each end to `on_end` on the calling
/// thread as it arrives. `between` runs on the calling thread whenever no
/// end arrived for 100 ms (to serve an inbox, notice a stop). Once `stop`
/// is set no new task starts; the ones running end as `work` ends them.
/// The one worker pool of the crate's batch work (the full trainings, the
/// study); the search's workers stay up between jobs instead.
pub fn share_out<T: Send, R: Send>(
    tasks: impl IntoIterator<Item = T>,
    devices: &[String],
    stop: &std::sync::atomic::AtomicBool,
    work: impl Fn(T, &str) -> R + Sync,
    mut on_end: impl FnMut(WorkEnd<R>),
    mut between: impl FnMut(),
) {
    use std::sync::atomic::Ordering;
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::Mutex;
    let queue: std::collections::VecDeque<T> = tasks.into_iter().collect();
    let threads = devices.len().min(queue.len());
    let queue = Mutex::new(queue);
    let work = &work;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<WorkEnd<R>>();
        for device in &devices[..threads] {
            let (tx, queue) = (tx.clone(), &queue);
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(task) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    return;
                };
                let end = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(task, device)
                })) {
                    Ok(r) => WorkEnd::Done(r),
                    Err(panic) => WorkEnd::Panicked(
                        panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default(),
                    ),
                };
                if tx.send(end).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(end) => on_end(end),
                Err(RecvTimeoutError::Timeout) => between(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_say_what_is_allowed() {
        for name in ["cpu", "cuda:0", "cuda:12"] {
            assert_eq!(name.parse::<DeviceName>().unwrap().to_string(), name);
        }
        assert_eq!(" cpu ".parse::<DeviceName>(), Ok(DeviceName::Cpu));
        for bad in ["gpu0", "cuda:", "cuda:x", "CPU"] {
            let err = bad.parse::<DeviceName>().unwrap_err();
            assert!(err.contains(&format!("'{}'", bad.trim())), "{err}");
            assert!(err.contains("cpu, cuda:N"), "{err}");
        }
        assert!(matches!(open("cpu"), Ok(Device::Cpu)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_on_a_cpu_build_names_the_build_command() {
        let err = open("cuda:0").unwrap_err().to_string();
        assert!(
            err.contains("built without CUDA") && err.contains("--features cuda"),
            "{err}"
        );
    }
}

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

#[cfg(test)]
mod worker_tests {
    use super::{expand_devices, share_out, DeviceName, DeviceWorkers, WorkEnd};

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

    #[test]
    fn share_out_runs_every_task_once_and_reports_panics() {
        use std::sync::atomic::AtomicBool;
        let stop = AtomicBool::new(false);
        let devices = vec!["cpu".to_string(), "cpu".to_string(), "cpu".to_string()];
        let mut ends = Vec::new();
        share_out(
            0..20u32,
            &devices,
            &stop,
            |task, device| {
                assert_eq!(device, "cpu");
                if task == 7 {
                    panic!("task seven");
                }
                task * 2
            },
            |end| ends.push(end),
            || {},
        );
        let mut done: Vec<u32> = ends
            .iter()
            .filter_map(|e| match e {
                WorkEnd::Done(r) => Some(*r),
                WorkEnd::Panicked(_) => None,
            })
            .collect();
        done.sort_unstable();
        let expected: Vec<u32> = (0..20).filter(|t| *t != 7).map(|t| t * 2).collect();
        assert_eq!(done, expected);
        let panics: Vec<&WorkEnd<u32>> = ends
            .iter()
            .filter(|e| matches!(e, WorkEnd::Panicked(_)))
            .collect();
        assert!(matches!(panics[..], [WorkEnd::Panicked(why)] if why == "task seven"));
    }

    #[test]
    fn share_out_starts_nothing_new_once_stopped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = AtomicBool::new(false);
        let mut ran = Vec::new();
        share_out(
            0..10u32,
            &["cpu".to_string()],
            &stop,
            |task, _| {
                if task == 2 {
                    stop.store(true, Ordering::SeqCst);
                }
                task
            },
            |end| {
                if let WorkEnd::Done(t) = end {
                    ran.push(t)
                }
            },
            || {},
        );
        assert_eq!(ran, vec![0, 1, 2]);
    }
}

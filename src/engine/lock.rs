//! One search per run directory: an exclusive lock on `lock` in the run
//! directory, holding the holder's pid, host and start time.
//!
//! The lock is the kernel's `flock(2)` on that file, not the file's
//! existence: the kernel drops it when its holder dies, even by `kill -9`, so
//! a stale lock can never block a resume, and no pid-liveness guess is needed
//! (a guess that cannot work for a holder on another host of a shared
//! filesystem). On NFS, Linux maps `flock` onto byte-range locks that the
//! server arbitrates between clients (NLM for v3, built into v4), which is
//! what the Slurm executor's shared run directories need. Only where the
//! filesystem has no locking at all (`ENOLCK`, `EOPNOTSUPP`) does this fall
//! back to the recorded pid: a holder on this host whose pid is gone is taken
//! over; one on another host is trusted to be alive.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = "lock";

/// How long `acquire` retries a held lock: covers `esr-ea control`'s
/// momentary probe of the same lock.
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(1500);

/// Who holds a run directory (the lock file's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Start of the hold, seconds since the Unix epoch.
    pub started: u64,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            started: unix_now(),
        }
    }

    /// "pid 123 on host h, for 42 s".
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host {}, for {} s",
            self.pid,
            self.host,
            unix_now().saturating_sub(self.started)
        )
    }
}

/// A held run-directory lock; released when dropped (or when the process
/// dies, however it dies).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the run directory's lock, or refuses in one line naming the
    /// holder's pid and host.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the run lock {}", path.display()))?;
        let started = Instant::now();
        loop {
            match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if started.elapsed() < ACQUIRE_PATIENCE {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let holder = read_holder(&mut file)
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "a process that has not written its name yet".into());
                    bail!(
                        "{} is in use by another search ({holder}); wait for it or stop it with `esr-ea control {} stop`",
                        dir.display(),
                        dir.display()
                    );
                }
                Err(e) if no_locking(&e) => {
                    if let Some(holder) = read_holder(&mut file) {
                        if holder.pid != std::process::id()
                            && (holder.host != host_name() || pid_alive(holder.pid))
                        {
                            bail!(
                                "{} is in use by another search ({}; this filesystem has no locks, so the recorded pid decides)",
                                dir.display(),
                                holder.describe()
                            );
                        }
                    }
                    break;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot lock the run lock {}", path.display()))
                }
            }
        }
        let text = serde_json::to_string(&Holder::me())?;
        (|| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })()
        .with_context(|| format!("cannot write the run lock {}", path.display()))?;
        // `esr-ea control` writes only to a held run: what it writes from
        // now on is for this process, even before the engine reads it.
        super::control::start_reading_at_end(&dir.join(super::rundir::files::CONTROL));
        Ok(RunLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Empty means "nobody": a reader never sees a finished holder's name.
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

/// Who holds the run directory's lock now, if anyone (`None` also when the
/// directory has never been locked). Used by `esr-ea control` to tell "no
/// search is listening" from "sent".
pub fn holder(dir: &Path) -> Result<Option<Holder>> {
    let path = dir.join(LOCK_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => {
            let _ = flock(&file, libc::LOCK_UN);
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Ok(Some(read_holder(&mut file).unwrap_or_else(|| Holder {
                pid: 0,
                host: "unknown".into(),
                started: unix_now(),
            })))
        }
        Err(e) if no_locking(&e) => {
            Ok(read_holder(&mut file).filter(|h| h.host != host_name() || pid_alive(h.pid)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot probe the run lock {}", path.display())),
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock on a descriptor we own for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn no_locking(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

/// True when `pid` is a live process on this host.
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's host name (as `hostname` prints it).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("esr-ea-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_held_lock_names_its_holder_and_a_released_one_is_free() {
        let dir = temp("held");
        assert_eq!(holder(&dir).unwrap(), None);
        let lock = RunLock::acquire(&dir).unwrap();
        // flock is per open file description: a second open in this very
        // process conflicts like another process would.
        let err = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains(&host_name()),
            "{err}"
        );
        let h = holder(&dir).unwrap().expect("held");
        assert_eq!(h.pid, std::process::id());
        drop(lock);
        assert_eq!(holder(&dir).unwrap(), None);
        let _again = RunLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

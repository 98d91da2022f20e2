//! One owner per stream. The server gives a stream to the newest client that asks for it, and
//! leaves the older socket open and silent; so the eventsock process that holds the socket of
//! (server, instance, event) holds a lease on it, and a second eventsock process refuses before
//! it connects, or, asked to take the stream, has the holder stand down first.
//!
//! A lease is an OS file lock on a file of the lease folder: the kernel lets go of it when its
//! process ends, however it ends, so a crash never leaves a stale lease. The file says who holds
//! it; a file beside it (`.take`) says who asks for it.

use eventsock_core::{fnv1a, FNV_BASIS};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An eventsock process that holds a stream, or asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// Since when, in seconds since the epoch.
    pub since: u64,
}

impl Holder {
    /// This process, from now on.
    pub fn current() -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Since when, as a time.
    pub fn since(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.since)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on {}, since {}",
            self.pid,
            eventsock_core::human::escaped(&self.host),
            humantime::format_rfc3339_seconds(self.since())
        )
    }
}

/// Why a lease cannot be had.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another eventsock process holds the stream.
    #[error("another eventsock process holds the {stream} stream ({holder})")]
    Held {
        /// The stream: instance and event.
        stream: String,
        /// Who holds it.
        holder: Holder,
    },
    /// Asked to take the stream, the holder did not let go in time.
    #[error("the holder of the {stream} stream ({holder}) did not let go of it within {}", eventsock_core::human::duration(*waited))]
    NotReleased {
        /// The stream: instance and event.
        stream: String,
        /// Who holds it.
        holder: Holder,
        /// How long this process waited.
        waited: Duration,
    },
    /// The lease folder cannot be used.
    #[error("the lease folder {} cannot be used: {source}", path.display())]
    Folder {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        source: std::sync::Arc<std::io::Error>,
    },
}

/// The lease folder: where the eventsock processes of a host agree on who holds which stream.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

/// The lease of one stream, held until dropped (or until its process ends).
#[derive(Debug)]
pub struct Lease {
    stream: String,
    take: PathBuf,
    _file: File,
}

impl Leases {
    /// The lease folder `dir`, made if missing; a folder that cannot be written is an error
    /// here, at start, not at the first connection.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Leases, LeaseError> {
        let dir = dir.into();
        let failed = |source| LeaseError::Folder {
            path: dir.clone(),
            source: std::sync::Arc::new(source),
        };
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let probe = dir.join(format!(".probe-{}", std::process::id()));
        File::create(&probe).map_err(failed)?;
        let _ = std::fs::remove_file(&probe);
        Ok(Leases { dir })
    }

    /// The folder of this host's leases: `EVENTSOCK_LEASES`, else `$XDG_RUNTIME_DIR/eventsock`,
    /// else `eventsock-leases` in the temporary folder.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("EVENTSOCK_LEASES").filter(|d| !d.is_empty()) {
            return dir.into();
        }
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(run) => Path::new(&run).join("eventsock"),
            None => std::env::temp_dir().join("eventsock-leases"),
        }
    }

    /// The files of the lease of (`endpoint`, `instance`, `event`).
    fn files(&self, endpoint: &str, instance: &str, event: &str) -> (PathBuf, PathBuf, String) {
        let stream = format!("{instance} {event}");
        let key = format!("{endpoint}\u{0}{instance}\u{0}{event}");
        let name = format!("{:016x}", fnv1a(FNV_BASIS, key.bytes()));
        let lease = self.dir.join(format!("{name}.lease"));
        let take = self.dir.join(format!("{name}.take"));
        (lease, take, stream)
    }

    /// The lease of (`endpoint`, `instance`, `event`), if no other process holds it.
    pub fn acquire(
        &self,
        endpoint: &str,
        instance: &str,
        event: &str,
    ) -> Result<Lease, LeaseError> {
        let (path, take, stream) = self.files(endpoint, instance, event);
        let failed = |source| LeaseError::Folder {
            path: path.clone(),
            source: std::sync::Arc::new(source),
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        if !lock(&file).map_err(failed)? {
            let holder = read_holder(&mut file).unwrap_or_else(|| Holder {
                pid: 0,
                host: "an unknown host".into(),
                since: 0,
            });
            return Err(LeaseError::Held { stream, holder });
        }
        let me = serde_json::to_vec(&Holder::current()).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(&me))
            .and_then(|()| file.flush())
            .map_err(failed)?;
        Ok(Lease {
            stream,
            take,
            _file: file,
        })
    }

    /// Asks the holder of (`endpoint`, `instance`, `event`) to stand down, and waits up to
    /// `within` for its lease.
    pub async fn take(
        &self,
        endpoint: &str,
        instance: &str,
        event: &str,
        within: Duration,
    ) -> Result<Lease, LeaseError> {
        let (_, take, _) = self.files(endpoint, instance, event);
        let me = serde_json::to_vec(&Holder::current()).unwrap_or_default();
        eventsock_core::file::write_atomically(&take, &me, false).map_err(|source| {
            LeaseError::Folder {
                path: take.clone(),
                source: std::sync::Arc::new(source),
            }
        })?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.acquire(endpoint, instance, event) {
                Ok(lease) => {
                    let _ = std::fs::remove_file(&take);
                    return Ok(lease);
                }
                Err(LeaseError::Held { stream, holder }) => {
                    if tokio::time::Instant::now() >= deadline {
                        let _ = std::fs::remove_file(&take);
                        return Err(LeaseError::NotReleased {
                            stream,
                            holder,
                            waited: within,
                        });
                    }
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&take);
                    return Err(e);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether another process asks for (`endpoint`, `instance`, `event`) now: a request left
    /// by a process that ended, or older than a minute, does not count.
    pub fn asked(&self, endpoint: &str, instance: &str, event: &str) -> Option<Holder> {
        let (_, take, _) = self.files(endpoint, instance, event);
        asked(&take)
    }
}

impl Lease {
    /// The stream: instance and event.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Who asks for this stream (`--take`), if another process does.
    pub fn asked(&self) -> Option<Holder> {
        asked(&self.take)
    }
}

fn asked(take: &Path) -> Option<Holder> {
    let mut file = File::open(take).ok()?;
    let holder = read_holder(&mut file)?;
    let age = SystemTime::now()
        .duration_since(holder.since())
        .unwrap_or_default();
    (age < Duration::from_secs(60) && alive(&holder)).then_some(holder)
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Takes the lock of `file` without waiting: `false` when another process holds it.
#[cfg(unix)]
fn lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere there is no lease: every process gets it.
#[cfg(not(unix))]
fn lock(_: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// Whether `holder`'s process still runs (always, for another host's: it cannot be asked).
#[cfg(unix)]
fn alive(holder: &Holder) -> bool {
    if holder.host != host_name() {
        return true;
    }
    let Some(pid) = i32::try_from(holder.pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(not(unix))]
fn alive(_: &Holder) -> bool {
    true
}

#[cfg(unix)]
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(not(unix))]
fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "this host".into())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// One holder at a time in one folder; the lease comes free when dropped; a request to take
    /// it is seen by the holder.
    #[actix_rt::test]
    async fn one_holder_at_a_time_and_a_take_is_seen() {
        let dir = std::env::temp_dir().join(format!("eventsock-lease-test-{}", std::process::id()));
        let leases = Leases::new(&dir).unwrap();
        let first = leases
            .acquire("ws://a", "codechat", "messages.upsert")
            .unwrap();
        assert_eq!(first.stream(), "codechat messages.upsert");
        leases
            .acquire("ws://a", "codechat", "send.message")
            .expect("another event is another stream");
        leases
            .acquire("ws://b", "codechat", "messages.upsert")
            .expect("another server is another stream");
        // flock locks belong to the open file: a second open in this process is refused too.
        match leases.acquire("ws://a", "codechat", "messages.upsert") {
            Err(LeaseError::Held { holder, .. }) => {
                assert_eq!(holder.pid, std::process::id());
                assert!(holder
                    .to_string()
                    .starts_with(&format!("process {} on ", holder.pid)));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(first.asked(), None);
        drop(first);
        leases
            .acquire("ws://a", "codechat", "messages.upsert")
            .unwrap();
        let refused = Leases::new("/proc/eventsock-cannot-be-made").unwrap_err();
        assert!(refused
            .to_string()
            .starts_with("the lease folder /proc/eventsock-cannot-be-made cannot be used"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

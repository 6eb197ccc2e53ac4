//! Who does a warehouse's background work. Schedules, freshness checks and the description of
//! the mesh in its system catalog run in one `meshql serve` per warehouse: the holder of its
//! [`Lease`]. The holder renews the lease three times per term (`server.lease_secs`); when it
//! stops renewing — it died, or hangs — another process takes the lease over once the term has
//! run out, and does the work from its next tick on. A process that stops cleanly gives the lease
//! up at once.
//!
//! [`LeaseFile`] keeps the lease in `<warehouse>/_mesh/lease.json` for a warehouse on a local
//! file system. Of processes racing for a free or expired lease exactly one wins: a free lease is
//! created by hard-linking a complete file to the name (which fails when the name exists), and
//! an expired one is replaced only by the process that created `lease.takeover` (which fails
//! when it exists), after reading the lease again. On an object store the same protocol is
//! a conditional put (create when absent, replace when the ETag is still the one read); until that
//! is built, [`Lease::for_warehouse`] gives every process on such a warehouse the work, as it was
//! before leases, and says so in the log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

/// The right to do a warehouse's background work, held by one process at a time.
pub trait Lease: Send + Sync + std::fmt::Debug {
    /// Takes the lease when it is free or expired, renews it when this process holds it;
    /// answers whether this process holds it now.
    fn hold(&self) -> bool;

    /// Gives the lease up, if this process holds it.
    fn release(&self);
}

impl dyn Lease {
    /// The lease of the warehouse at `root` (its URL) with term `term`.
    pub fn for_warehouse(root: &str, term: Duration) -> Box<dyn Lease> {
        match root.strip_prefix("file://") {
            Some(path) => Box::new(LeaseFile::new(
                Path::new(path).join("_mesh").join("lease.json"),
                term,
            )),
            None => {
                tracing::warn!(
                    warehouse = root,
                    "no lease on an object store yet: every `meshql serve` of this warehouse runs \
                     its schedules and freshness checks"
                );
                Box::new(Always)
            }
        }
    }
}

/// Every process holds it: one process per warehouse, as on an object store today.
#[derive(Debug)]
pub struct Always;

impl Lease for Always {
    fn hold(&self) -> bool {
        true
    }

    fn release(&self) {}
}

/// What `lease.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Held {
    /// Who holds it: a random id per process.
    holder: String,
    /// For people reading the file: where the holder runs.
    host: String,
    pid: u32,
    /// When it runs out unless renewed, in milliseconds since the epoch.
    expires_ms: i64,
}

/// A lease kept in a file of a local warehouse.
#[derive(Debug)]
pub struct LeaseFile {
    path: PathBuf,
    term: Duration,
    me: String,
}

impl LeaseFile {
    pub fn new(path: PathBuf, term: Duration) -> Self {
        Self {
            path,
            term,
            me: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// The lease file's contents; `None` when it is not a lease file.
    fn read(&self) -> std::io::Result<Option<Held>> {
        let bytes = std::fs::read(&self.path)?;
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// A complete lease file of this process beside the lease, to link or rename into place.
    fn written(&self) -> std::io::Result<PathBuf> {
        let held = Held {
            holder: self.me.clone(),
            host: hostname(),
            pid: std::process::id(),
            expires_ms: Utc::now().timestamp_millis() + self.term.as_millis() as i64,
        };
        let tmp = self.path.with_extension(format!("{}.tmp", self.me));
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&held).map_err(std::io::Error::other)?,
        )?;
        Ok(tmp)
    }

    /// Creates the lease when no file has the name: exactly one of racing processes succeeds.
    fn create(&self) -> std::io::Result<bool> {
        let tmp = self.written()?;
        let linked = std::fs::hard_link(&tmp, &self.path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn try_hold(&self) -> std::io::Result<bool> {
        let now = Utc::now().timestamp_millis();
        let found = match self.read() {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.create(),
            Err(e) => return Err(e),
        };
        match found {
            Some(held) if held.holder == self.me => {
                let tmp = self.written()?;
                std::fs::rename(&tmp, &self.path)?;
                Ok(true)
            }
            Some(held) if held.expires_ms > now => Ok(false),
            // Expired, or not a lease file (one a person edited): taken over by one process at a
            // time, the one that creates the takeover file, which looks again before it writes.
            _ => {
                if !self.expired_on_disk(now) {
                    return Ok(false);
                }
                let takeover = self.path.with_extension("takeover");
                if !self.claim(&takeover)? {
                    return Ok(false);
                }
                let taken = match self.expired_on_disk(Utc::now().timestamp_millis()) {
                    true => self
                        .written()
                        .and_then(|tmp| std::fs::rename(&tmp, &self.path))
                        .map(|()| true),
                    false => Ok(false),
                };
                let _ = std::fs::remove_file(&takeover);
                taken
            }
        }
    }

    /// Creates `file` if no process has: true for the one that did. One left behind by a process
    /// that died while taking over is removed once it is a term old.
    fn claim(&self, file: &Path) -> std::io::Result<bool> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= self.term);
                if stale {
                    let _ = std::fs::remove_file(file);
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the file at the lease's name is expired, read again (an unreadable file counts as
    /// expired once it is a term old).
    fn expired_on_disk(&self, now: i64) -> bool {
        match self.read() {
            Ok(Some(held)) => held.expires_ms <= now && held.holder != self.me,
            Ok(None) => std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= self.term),
            Err(_) => false,
        }
    }
}

impl Lease for LeaseFile {
    fn hold(&self) -> bool {
        match self.try_hold() {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = %self.path.display(), error = %e, "cannot take or renew the lease");
                false
            }
        }
    }

    fn release(&self) {
        if let Ok(Some(held)) = self.read()
            && held.holder == self.me
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_holds_it_until_it_expires_or_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_mesh").join("lease.json");
        let term = Duration::from_millis(1000);
        let a = LeaseFile::new(path.clone(), term);
        let b = LeaseFile::new(path.clone(), term);
        assert!(a.hold());
        assert!(!b.hold());
        assert!(a.hold(), "the holder renews");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(b.hold(), "an expired lease is taken over");
        assert!(!a.hold(), "and the earlier holder knows it lost it");
        b.release();
        assert!(a.hold(), "a lease given up is free at once");
    }

    /// How many of 8 threads racing for the lease at `path` (term 10 s) get it.
    fn race(path: &Path) -> usize {
        let leases: Vec<LeaseFile> = (0..8)
            .map(|_| LeaseFile::new(path.to_path_buf(), Duration::from_secs(10)))
            .collect();
        let barrier = std::sync::Barrier::new(leases.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = leases
                .iter()
                .map(|l| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        l.hold()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|held| *held)
                .count()
        })
    }

    #[test]
    fn of_racing_processes_exactly_one_takes_a_free_or_expired_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lease.json");
        for round in 0..20 {
            let _ = std::fs::remove_file(&path);
            assert_eq!(race(&path), 1, "free, round {round}");
            let expired = Held {
                holder: "gone".into(),
                host: String::new(),
                pid: 0,
                expires_ms: Utc::now().timestamp_millis() - 1,
            };
            std::fs::write(&path, serde_json::to_vec(&expired).unwrap()).unwrap();
            assert_eq!(race(&path), 1, "expired, round {round}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_lease_is_taken_over_once_a_term_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lease.json");
        std::fs::write(&path, "edited by hand").unwrap();
        let a = LeaseFile::new(path.clone(), Duration::from_millis(500));
        assert!(!a.hold());
        std::thread::sleep(Duration::from_millis(550));
        assert!(a.hold());
    }
}

//! Password logins under attack.
//!
//! Failed logins slow down the next attempts: after a few failures in a row, the same user from
//! the same peer, and the same user from anywhere, must wait an interval that doubles with every
//! further failure (1 s up to 5 min) — refused at once, with the time to wait, rather than held
//! open. A success clears the user's counters. Failures are not counted per peer alone: behind a
//! proxy or a NAT every user shares one address, and one user's mistakes must not lock out the
//! others. The Argon2 checks (deliberately slow, 19 MiB each) run a few at a time on blocking
//! threads behind a bounded queue, so a flood of logins — spraying many user names included —
//! is bounded in rate and cannot starve queries of CPU or memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::identity::{Identity, Principal};
use crate::error::{Error, ErrorKind, Result};

/// Failures allowed before backoff starts: (same user and peer, same user from anywhere).
const FREE_FAILURES: (u32, u32) = (5, 50);
/// First and longest wait once backoff has started.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(300);
/// Logins waiting for an Argon2 slot; more are refused as busy.
const MAX_WAITING_LOGINS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The password-login front of an [`Identity`].
pub struct Logins {
    identity: Arc<Identity>,
    failures: moka::sync::Cache<String, Failures>,
    hashing: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Logins {
    pub fn new(identity: Arc<Identity>) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            identity,
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(LONGEST_WAIT * 4)
                .build(),
            hashing: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// Checks `authorization: Basic ...` credentials from `peer`.
    pub async fn login_basic(&self, header: &str, peer: Option<IpAddr>) -> Result<Principal> {
        let (user, password) = Identity::parse_basic(header)?;
        let keys = keys(&user, peer);
        self.check_backoff(&keys)?;
        let permit = self.hashing_slot().await?;
        let identity = Arc::clone(&self.identity);
        let checked_user = user.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            identity.login(&checked_user, &password)
        })
        .await
        .map_err(|e| Error::internal(format!("login task failed: {e}")))?;
        match &result {
            Ok(_) => {
                for key in &keys {
                    self.failures.invalidate(&key.0);
                }
            }
            Err(e) if e.kind() == ErrorKind::Unauthenticated => self.record_failure(&keys),
            Err(_) => {}
        }
        result
    }

    fn check_backoff(&self, keys: &[(String, u32)]) -> Result<()> {
        let now = Instant::now();
        for (key, free) in keys {
            let Some(f) = self.failures.get(key) else {
                continue;
            };
            if f.count < *free {
                continue;
            }
            let wait = backoff(f.count - free);
            let until = f.last + wait;
            if now < until {
                let left = (until - now).as_secs_f64().ceil() as u64;
                return Err(Error::resource(format!(
                    "too many failed logins ({} in a row); try again in {left} s",
                    f.count
                )));
            }
        }
        Ok(())
    }

    fn record_failure(&self, keys: &[(String, u32)]) {
        let now = Instant::now();
        for (key, _) in keys {
            let count = self.failures.get(key).map_or(0, |f| f.count);
            self.failures.insert(
                key.clone(),
                Failures {
                    count: count.saturating_add(1),
                    last: now,
                },
            );
        }
    }

    async fn hashing_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(&self.hashing).try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_LOGINS {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::resource(
                "the server is busy checking passwords; retry the login later",
            ));
        }
        let permit = Arc::clone(&self.hashing).acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| Error::internal("the login semaphore was closed"))
    }
}

/// The counters a login attempt of `user` from `peer` touches, with their free failures.
fn keys(user: &str, peer: Option<IpAddr>) -> Vec<(String, u32)> {
    let mut keys = vec![(format!("user:{user}"), FREE_FAILURES.1)];
    if let Some(ip) = peer {
        keys.push((format!("user:{user}@{ip}"), FREE_FAILURES.0));
    }
    keys
}

/// The wait after `extra` failures past the free ones: 1 s, 2 s, 4 s, ... up to 5 minutes.
fn backoff(extra: u32) -> Duration {
    FIRST_WAIT
        .saturating_mul(1u32 << extra.min(16))
        .min(LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::{Signer, hash_password};
    use crate::spec::Mesh;
    use base64::Engine as _;

    fn identity() -> Arc<Identity> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("catalog/d")).unwrap();
        let hash = hash_password("right").unwrap();
        std::fs::write(
            dir.path().join("catalog/mesh.yaml"),
            format!(
                "name: t\ndomains:\n  - name: d\nprincipals:\n  - name: ana\n    password_hash: \"{hash}\"\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("catalog/d/domain.yaml"), "owner: d\n").unwrap();
        let mesh = Mesh::load(dir.path()).unwrap();
        Arc::new(Identity::new(&mesh, Signer::random()).unwrap())
    }

    fn basic(user: &str, password: &str) -> String {
        let raw = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[tokio::test]
    async fn failures_in_a_row_back_off_and_a_success_clears_them() {
        let logins = Logins::new(identity());
        let peer: Option<IpAddr> = Some("10.0.0.7".parse().unwrap());
        for _ in 0..FREE_FAILURES.0 {
            let e = logins
                .login_basic(&basic("ana", "wrong"), peer)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        }
        // Even the right password waits now: guessing cannot go on at full speed.
        let e = logins
            .login_basic(&basic("ana", "right"), peer)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
        assert!(e.message().contains("try again in 1 s"), "{e}");
        // Another peer is not held back by this one's failures.
        let other: Option<IpAddr> = Some("10.0.0.8".parse().unwrap());
        assert!(
            logins
                .login_basic(&basic("ana", "right"), other)
                .await
                .is_ok()
        );
        // After the wait, the right password works and clears the counters.
        tokio::time::sleep(FIRST_WAIT + Duration::from_millis(50)).await;
        assert!(
            logins
                .login_basic(&basic("ana", "right"), peer)
                .await
                .is_ok()
        );
        assert!(
            logins
                .login_basic(&basic("ana", "wrong"), peer)
                .await
                .is_err()
        );
        assert!(
            logins
                .login_basic(&basic("ana", "right"), peer)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn oversized_credentials_are_refused_before_any_hashing() {
        let logins = Logins::new(identity());
        let e = logins
            .login_basic(&basic(&"u".repeat(65_536), "x"), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.message().contains("at most 256 bytes"), "{e}");
        assert_eq!(backoff(0), FIRST_WAIT);
        assert_eq!(backoff(30), LONGEST_WAIT);
    }
}

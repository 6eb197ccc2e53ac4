//! Password logins under attack.
//!
//! Failed logins slow down the next attempts: after a few failures in a row, the same user from
//! the same peer, and the same user from anywhere, must wait an interval that doubles with every
//! further failure (1 s up to 5 min) — refused at once, with the time to wait, rather than held
//! open. An attempt counts before its password is checked, so concurrent guesses check no more
//! than the free failures (concurrent logins of one user take turns past that many). A success
//! clears the user's counters. Failures are not counted per peer alone: behind a
//! proxy or a NAT every user shares one address, and one user's mistakes must not lock out the
//! others. The Argon2 checks (deliberately slow, 19 MiB each) run a few at a time on blocking
//! threads behind a bounded queue, so a flood of logins — spraying many user names included —
//! is bounded in rate and cannot starve queries of CPU or memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
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

/// Longest a login waits for other attempts of the same user to be decided.
const LONGEST_QUEUE: Duration = Duration::from_secs(30);

/// One counter: failures in a row, when the last was, and attempts being checked now.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    checking: u32,
}

/// What a counter says of one more attempt.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Check it.
    Go,
    /// Attempts being checked could use up the free failures: wait until they are decided.
    Wait,
    /// Backing off: refused, with the time left and the failures so far.
    Refused(Duration, u32),
}

impl Failures {
    fn verdict(&self, free: u32, now: Instant) -> Verdict {
        match self.count.checked_sub(free) {
            // As many checks at once as could still fail for free, so that concurrent wrong
            // guesses check no more than sequential ones; concurrent right ones take turns.
            None if self.count + self.checking < free => Verdict::Go,
            None => Verdict::Wait,
            Some(extra) => {
                let until = self.last + backoff(extra);
                if now < until {
                    Verdict::Refused(until - now, self.count)
                } else if self.checking == 0 {
                    Verdict::Go
                } else {
                    Verdict::Wait
                }
            }
        }
    }
}

/// How a checked attempt ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Right,
    Wrong,
    /// Not decided (a busy server, an internal failure): it does not count.
    Neither,
}

/// An attempt counted as being checked on its counters; settled once its outcome is known.
/// Dropped unsettled (the client went away while its password was checked), it counts as a
/// wrong password: the guess may have been checked.
struct Attempt<'a> {
    logins: &'a Logins,
    keys: &'a [(String, u32)],
    settled: bool,
}

impl Attempt<'_> {
    fn settle(mut self, outcome: Outcome) {
        self.logins.settle(self.keys, outcome);
        self.settled = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.logins.settle(self.keys, Outcome::Wrong);
        }
    }
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
    ///
    /// The attempt is counted on its counters before its password is checked, in the same
    /// atomic step that reads them, so that N concurrent guesses check at most the free
    /// failures; the outcome then settles it.
    pub async fn login_basic(&self, header: &str, peer: Option<IpAddr>) -> Result<Principal> {
        let (user, password) = Identity::parse_basic(header)?;
        let keys = keys(&user, peer);
        let attempt = self.reserve(&keys).await?;
        let result = self.check_password(user, password).await;
        attempt.settle(match &result {
            Ok(_) => Outcome::Right,
            Err(e) if e.kind() == ErrorKind::Unauthenticated => Outcome::Wrong,
            Err(_) => Outcome::Neither,
        });
        result
    }

    async fn check_password(&self, user: String, password: String) -> Result<Principal> {
        let permit = self.hashing_slot().await?;
        let identity = Arc::clone(&self.identity);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            identity.login(&user, &password)
        })
        .await
        .map_err(|e| Error::internal(format!("login task failed: {e}")))?
    }

    /// Counts an attempt as being checked on every counter of `keys`, waiting while attempts
    /// already being checked could use up the free failures; refused while backing off.
    async fn reserve<'a>(&'a self, keys: &'a [(String, u32)]) -> Result<Attempt<'a>> {
        let queued = Instant::now();
        loop {
            let mut taken = 0;
            let mut verdict = Verdict::Go;
            for (key, free) in keys {
                verdict = self.take(key, *free);
                if !matches!(verdict, Verdict::Go) {
                    break;
                }
                taken += 1;
            }
            match verdict {
                Verdict::Go => {
                    return Ok(Attempt {
                        logins: self,
                        keys,
                        settled: false,
                    });
                }
                Verdict::Refused(left, count) => {
                    self.settle(&keys[..taken], Outcome::Neither);
                    let secs = left.as_secs_f64().ceil() as u64;
                    return Err(Error::resource(format!(
                        "too many failed logins for this user ({count} in a row); try again in {secs} s"
                    )));
                }
                Verdict::Wait => {
                    self.settle(&keys[..taken], Outcome::Neither);
                    if queued.elapsed() > LONGEST_QUEUE {
                        return Err(Error::resource(
                            "the server is busy checking logins of this user; retry the login later",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// One counter's verdict on one more attempt, counting it as being checked on `Go`.
    fn take(&self, key: &str, free: u32) -> Verdict {
        let mut verdict = Verdict::Go;
        self.failures.entry_by_ref(key).and_compute_with(|entry| {
            let now = Instant::now();
            let f = entry.map_or(
                Failures {
                    count: 0,
                    last: now,
                    checking: 0,
                },
                |e| e.into_value(),
            );
            verdict = f.verdict(free, now);
            match verdict {
                Verdict::Go => Op::Put(Failures {
                    checking: f.checking + 1,
                    ..f
                }),
                Verdict::Wait | Verdict::Refused(..) => Op::Nop,
            }
        });
        verdict
    }

    /// Ends an attempt counted on `keys` as being checked.
    fn settle(&self, keys: &[(String, u32)], outcome: Outcome) {
        for (key, _) in keys {
            self.failures
                .entry_by_ref(key.as_str())
                .and_compute_with(|entry| {
                    let Some(f) = entry.map(|e| e.into_value()) else {
                        return Op::Nop;
                    };
                    let checking = f.checking.saturating_sub(1);
                    let f = match outcome {
                        Outcome::Right => Failures {
                            count: 0,
                            checking,
                            ..f
                        },
                        Outcome::Wrong => Failures {
                            count: f.count.saturating_add(1),
                            last: Instant::now(),
                            checking,
                        },
                        Outcome::Neither => Failures { checking, ..f },
                    };
                    if f.count == 0 && f.checking == 0 {
                        Op::Remove
                    } else {
                        Op::Put(f)
                    }
                });
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_passwords_check_at_most_the_free_failures() {
        let logins = Arc::new(Logins::new(identity()));
        let peer: Option<IpAddr> = Some("10.0.0.9".parse().unwrap());
        let attempts = (0..30).map(|_| {
            let logins = Arc::clone(&logins);
            tokio::spawn(async move { logins.login_basic(&basic("ana", "wrong"), peer).await })
        });
        let mut checked = 0;
        let mut refused = 0;
        for attempt in futures::future::join_all(attempts).await {
            let e = attempt.unwrap().unwrap_err();
            match e.kind() {
                ErrorKind::Unauthenticated => checked += 1,
                ErrorKind::ResourceExhausted => {
                    assert!(e.message().contains("try again in"), "{e}");
                    refused += 1;
                }
                other => panic!("unexpected {other:?}: {e}"),
            }
        }
        assert_eq!((checked, refused), (FREE_FAILURES.0 as usize, 25));
        // The refused attempts were given back: the user's own counter holds the checked ones.
        let user = logins.failures.get("user:ana").unwrap();
        assert_eq!((user.count, user.checking), (5, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_right_passwords_all_log_in() {
        // A BI tool opening a pool of connections as one user from one address.
        let logins = Arc::new(Logins::new(identity()));
        let peer: Option<IpAddr> = Some("10.0.0.10".parse().unwrap());
        let attempts = (0..12).map(|_| {
            let logins = Arc::clone(&logins);
            tokio::spawn(async move { logins.login_basic(&basic("ana", "right"), peer).await })
        });
        for attempt in futures::future::join_all(attempts).await {
            assert!(attempt.unwrap().is_ok());
        }
        assert!(logins.failures.get("user:ana@10.0.0.10").is_none());
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

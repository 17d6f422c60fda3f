//! Sessions kept per BMC: one command in flight per BMC (BMCs are fragile and
//! have few session slots), a session reused until it has been idle for
//! `idle_timeout` (below the usual 60 s BMC inactivity timeout), and a global
//! cap on BMC calls at once. A session that saw a transport or protocol error
//! is dropped, never reused.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::session::{Error, Session, Timing};
use super::{BoxFuture, IpmiInfo};

/// Pool limits.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// A session unused this long is closed and re-opened on next use.
    pub idle_timeout: Duration,
    /// BMC calls in flight at once, over all BMCs.
    pub max_concurrent: usize,
    /// Retransmission timing of every call.
    pub timing: Timing,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            idle_timeout: Duration::from_secs(20),
            max_concurrent: 64,
            timing: Timing::default(),
        }
    }
}

/// Which BMC, as whom: a changed password or suite gets a new session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    address: String,
    port: u16,
    username: Option<String>,
    password_hash: u64,
    cipher_suite: Option<u8>,
    priv_level: u8,
}

impl Key {
    fn of(info: &IpmiInfo) -> Key {
        let mut h = DefaultHasher::new();
        info.password.hash(&mut h);
        Key {
            address: info.address.clone(),
            port: info.port,
            username: info.username.clone(),
            password_hash: h.finish(),
            cipher_suite: info.cipher_suite,
            priv_level: info.priv_level as u8,
        }
    }
}

/// Cipher suites remembered, at most (one per BMC and credentials).
const LEARNED_MAX: usize = 4096;

type Slot = Arc<tokio::sync::Mutex<Option<(Session, Instant)>>>;

/// The per-BMC session pool.
pub struct Pool {
    settings: PoolSettings,
    slots: Mutex<HashMap<Key, Slot>>,
    /// The cipher suite each BMC logged in with when none is pinned, so a
    /// BMC that refused 17 once is not asked again at every login.
    learned: Mutex<HashMap<Key, u8>>,
    calls: Semaphore,
}

impl Pool {
    pub fn new(settings: PoolSettings) -> Pool {
        Pool {
            settings,
            slots: Mutex::new(HashMap::new()),
            learned: Mutex::new(HashMap::new()),
            calls: Semaphore::new(settings.max_concurrent.max(1)),
        }
    }

    /// Runs `f` on this BMC's session (opened or re-opened as needed), with
    /// no other call to the same BMC in flight.
    pub async fn run<T>(
        &self,
        info: &IpmiInfo,
        f: impl for<'s> FnOnce(&'s mut Session) -> BoxFuture<'s, Result<T, Error>>,
    ) -> Result<T, Error> {
        let _call = self.calls.acquire().await.map_err(|_| Error::Session {
            bmc: format!("{}:{}", info.address, info.port),
            why: "the appliance is shutting down".into(),
        })?;
        self.close_idle();
        let key = Key::of(info);
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        let mut session = match guard.take() {
            Some((s, used)) if used.elapsed() < self.settings.idle_timeout => s,
            Some((old, _)) => {
                old.close().await;
                self.open(&key, info).await?
            }
            None => self.open(&key, info).await?,
        };
        let result = f(&mut session).await;
        crate::metrics::bmc(
            "ipmi",
            match &result {
                Ok(_) => "ok",
                Err(Error::Unreachable { .. }) => "unreachable",
                Err(Error::AuthFailed { .. }) => "auth_failed",
                Err(Error::Privilege { .. }) => "privilege",
                Err(Error::UnsupportedSuite { .. }) => "cipher_suite",
                Err(Error::Completion { .. }) => "completion_code",
                Err(_) => "other",
            },
        );
        match &result {
            // The BMC answered with a completion code: the session is fine.
            Ok(_) | Err(Error::Completion { .. }) => *guard = Some((session, Instant::now())),
            // Anything else may have broken it: start over next time.
            Err(_) => drop(session),
        }
        result
    }

    /// Logs in, with the suite this BMC took last time when none is pinned;
    /// if the BMC no longer takes it, forgets it and tries 17 then 3 again.
    async fn open(&self, key: &Key, info: &IpmiInfo) -> Result<Session, Error> {
        let timing = self.settings.timing;
        let learned = match info.cipher_suite {
            Some(_) => None,
            None => self
                .learned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .copied(),
        };
        let session = match learned {
            Some(suite) => {
                let pinned = IpmiInfo {
                    cipher_suite: Some(suite),
                    ..info.clone()
                };
                match Session::open(&pinned, timing).await {
                    Err(Error::UnsupportedSuite { .. }) => Session::open(info, timing).await?,
                    other => other?,
                }
            }
            None => Session::open(info, timing).await?,
        };
        if info.cipher_suite.is_none() {
            let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: forgetting only costs one refused Open Session.
            if learned.len() >= LEARNED_MAX {
                learned.clear();
            }
            learned.insert(key.clone(), session.cipher_suite());
        }
        Ok(session)
    }

    /// Closes sessions idle past the timeout (in the background).
    fn close_idle(&self) {
        let idle = self.settings.idle_timeout;
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            if guard
                .as_ref()
                .is_some_and(|(_, used)| used.elapsed() >= idle)
            {
                if let Some((s, _)) = guard.take() {
                    tokio::spawn(s.close());
                }
            }
        }
        // Forget empty slots nobody holds, so the map stays as small as the
        // set of BMCs in use (a changed password leaves no entry behind).
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |g| g.is_some())
            });
    }

    /// Closes every kept session (at shutdown).
    pub async fn close_all(&self) {
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, v)| v)
            .collect();
        for slot in slots {
            if let Some((s, _)) = slot.lock().await.take() {
                s.close().await;
            }
        }
    }
}

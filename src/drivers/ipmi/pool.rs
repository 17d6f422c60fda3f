//! Sessions kept per BMC: one command in flight per BMC (BMCs are fragile and
//! have few session slots), a session reused until it has been idle for
//! `idle_timeout` (below the usual 60 s BMC inactivity timeout), and a global
//! cap on BMC calls at once. A session that saw a transport or protocol error
//! is dropped, never reused.
//!
//! A session used within `keep` is kept open across longer gaps (the sync
//! loop's 60 s interval) by a Get Device ID whenever it has been quiet for
//! half the idle timeout, as pyghmi does: one small exchange instead of a
//! six-exchange login at every pass.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, Once, Weak};
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
    /// A session whose last call is this recent is kept open with a
    /// keepalive at half `idle_timeout`; zero keeps none.
    pub keep: Duration,
    /// BMC calls in flight at once, over all BMCs.
    pub max_concurrent: usize,
    /// Retransmission timing of every call.
    pub timing: Timing,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            idle_timeout: Duration::from_secs(20),
            keep: Duration::from_secs(180),
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

/// A kept session: when a caller last used it, and when anything (a call or
/// a keepalive) last went over it.
struct Kept {
    session: Session,
    last_call: Instant,
    last_traffic: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Kept>>>;

/// What the keepalive does with a kept session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upkeep {
    /// Nothing yet.
    Wait,
    /// Quiet for half the idle timeout and still in use: send a keepalive.
    Ping,
    /// Idle past the timeout: close it.
    Close,
}

/// Decides a kept session's upkeep from how long ago it was last used by a
/// caller and last carried traffic.
fn upkeep(since_call: Duration, since_traffic: Duration, s: &PoolSettings) -> Upkeep {
    if since_traffic >= s.idle_timeout {
        Upkeep::Close
    } else if since_call < s.keep && since_traffic >= s.idle_timeout / 2 {
        Upkeep::Ping
    } else {
        Upkeep::Wait
    }
}

/// The per-BMC session pool.
pub struct Pool {
    settings: PoolSettings,
    /// Itself, for the keepalive task (which ends when the pool is dropped).
    me: Weak<Pool>,
    keepalive: Once,
    slots: Mutex<HashMap<Key, Slot>>,
    /// The cipher suite each BMC logged in with when none is pinned, so a
    /// BMC that refused 17 once is not asked again at every login.
    learned: Mutex<HashMap<Key, u8>>,
    calls: Semaphore,
}

impl Pool {
    /// A pool; its keepalive task starts with the first call.
    pub fn new(settings: PoolSettings) -> Arc<Pool> {
        Arc::new_cyclic(|me| Pool {
            settings,
            me: me.clone(),
            keepalive: Once::new(),
            slots: Mutex::new(HashMap::new()),
            learned: Mutex::new(HashMap::new()),
            calls: Semaphore::new(settings.max_concurrent.max(1)),
        })
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
        if !self.settings.keep.is_zero() {
            self.keepalive
                .call_once(|| drop(tokio::spawn(keepalive(self.me.clone()))));
        }
        self.tend();
        let key = Key::of(info);
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        let mut session = match guard.take() {
            Some(k) if k.last_traffic.elapsed() < self.settings.idle_timeout => k.session,
            Some(old) => {
                old.session.close().await;
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
            Ok(_) | Err(Error::Completion { .. }) => {
                let now = Instant::now();
                *guard = Some(Kept {
                    session,
                    last_call: now,
                    last_traffic: now,
                })
            }
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

    /// Tends the kept sessions, in the background: closes those idle past
    /// the timeout, and sends each one due a keepalive its Get Device ID in a
    /// task of its own. Slots in use are skipped: a call keeps its own
    /// session alive, and so does a keepalive still in flight.
    fn tend(&self) {
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let Ok(mut guard) = slot.try_lock_owned() else {
                continue;
            };
            let Some(k) = guard.as_ref() else {
                continue;
            };
            match upkeep(
                k.last_call.elapsed(),
                k.last_traffic.elapsed(),
                &self.settings,
            ) {
                Upkeep::Wait => {}
                Upkeep::Close => {
                    if let Some(k) = guard.take() {
                        tokio::spawn(k.session.close());
                    }
                }
                Upkeep::Ping => {
                    let Some(pool) = self.me.upgrade() else {
                        return;
                    };
                    tokio::spawn(async move {
                        // Never wait for a permit while holding the slot (a
                        // caller holds a permit while it waits for the slot):
                        // when every permit is taken, a later round tries again.
                        let Ok(_call) = pool.calls.try_acquire() else {
                            return;
                        };
                        let Some(k) = guard.as_mut() else {
                            return;
                        };
                        match k.session.keepalive().await {
                            Ok(()) | Err(Error::Completion { .. }) => {
                                k.last_traffic = Instant::now()
                            }
                            Err(e) => {
                                tracing::debug!(bmc = %k.session.bmc(), error = %e, "keepalive failed; session dropped");
                                *guard = None;
                            }
                        }
                    });
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
            if let Some(k) = slot.lock().await.take() {
                k.session.close().await;
            }
        }
    }
}

/// Keeps the pool's sessions open until the pool is dropped: a round every
/// quarter of the idle timeout (at least every 50 ms).
async fn keepalive(pool: Weak<Pool>) {
    let every = match pool.upgrade() {
        Some(p) => (p.settings.idle_timeout / 4).max(Duration::from_millis(50)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.tend();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeep_table() {
        let s = PoolSettings {
            idle_timeout: Duration::from_secs(20),
            keep: Duration::from_secs(180),
            ..PoolSettings::default()
        };
        let off = PoolSettings {
            keep: Duration::ZERO,
            ..s
        };
        let secs = Duration::from_secs;
        // (since last call, since last traffic, settings, expected)
        let cases = [
            (secs(0), secs(0), &s, Upkeep::Wait),
            (secs(9), secs(9), &s, Upkeep::Wait),
            (secs(10), secs(10), &s, Upkeep::Ping),
            (secs(100), secs(12), &s, Upkeep::Ping),
            (secs(179), secs(19), &s, Upkeep::Ping),
            // No call for `keep`: left to idle out, then closed.
            (secs(180), secs(10), &s, Upkeep::Wait),
            (secs(190), secs(19), &s, Upkeep::Wait),
            (secs(200), secs(20), &s, Upkeep::Close),
            // A missed keepalive (the BMC may have dropped it): closed.
            (secs(30), secs(25), &s, Upkeep::Close),
            // keep = 0: never pinged, closed when idle.
            (secs(10), secs(10), &off, Upkeep::Wait),
            (secs(20), secs(20), &off, Upkeep::Close),
        ];
        for (call, traffic, settings, want) in cases {
            assert_eq!(
                upkeep(call, traffic, settings),
                want,
                "call {call:?} ago, traffic {traffic:?} ago, keep {:?}",
                settings.keep
            );
        }
    }
}

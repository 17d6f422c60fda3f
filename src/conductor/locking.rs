//! Node locks: Ironic's `reservation`, taken by a compare-and-set in the
//! store (so several appliances on one database never hold one node) and
//! released by the write that ends the work, or by the guard when dropped.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{log_history, Conductor, Error, Inner, Result};
use crate::model::{HistoryEntry, Node};
use crate::store::{self, Reservation, Store};

/// How often a waiter looks again for a lock it was not told about: one
/// held by another appliance, whose release is not signalled here.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// Tries at releasing a reservation, and the wait before each retry: a
/// database busy past its own timeout, or briefly full, must not leave a
/// node locked until the next start.
const RELEASE_RETRIES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];

/// Releases `uuid`'s reservation held by `host`, retrying (blocking).
fn release_with_retries(s: &Store, uuid: Uuid, host: &str) -> bool {
    let mut waits = RELEASE_RETRIES.iter();
    loop {
        match s.release(uuid, host) {
            Ok(_) => return true,
            Err(e) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(node = %uuid, error = %e, "cannot release the node's reservation; trying again");
                    std::thread::sleep(*wait);
                }
                None => {
                    tracing::error!(node = %uuid, error = %e, "cannot release the node's reservation; it is released at the next start");
                    return false;
                }
            },
        }
    }
}

/// Holds a node's reservation; dropping it releases the reservation (off
/// the async threads), unless a write already released it.
pub struct LockGuard {
    inner: Arc<Inner>,
    uuid: Uuid,
    held: bool,
}

impl LockGuard {
    /// The reservation was released by the write that ended the work.
    fn released(mut self) {
        self.held = false;
        self.inner.released.notify_waiters();
    }
}

impl LockGuard {
    /// Releases now, from inside a blocking store call (if that fails
    /// even after retries, the guard's drop tries once more).
    pub(super) fn release_in(self, s: &Store) {
        if release_with_retries(s, self.uuid, &self.inner.settings.host) {
            self.released();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let inner = self.inner.clone();
        let uuid = self.uuid;
        let release = move || {
            release_with_retries(&inner.store, uuid, &inner.settings.host);
            inner.released.notify_waiters();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

impl Conductor {
    /// Takes a node's reservation if nobody holds it right now; returns the
    /// node as stored.
    pub(super) async fn try_lock(&self, uuid: Uuid) -> Option<(LockGuard, Node)> {
        match self.reserve(uuid).await {
            Ok(Ok(taken)) => Some(taken),
            Ok(Err(_)) => None,
            Err(e) => {
                tracing::debug!(node = %uuid, error = %e, "cannot reserve the node");
                None
            }
        }
    }

    /// One compare-and-set. The guard is made inside the blocking call, so a
    /// caller that goes away meanwhile still releases what was taken.
    async fn reserve(&self, uuid: Uuid) -> Result<std::result::Result<(LockGuard, Node), String>> {
        let inner = self.inner.clone();
        Ok(self
            .store()
            .call(move |s| -> store::Result<_> {
                Ok(match s.reserve(uuid, &inner.settings.host)? {
                    Reservation::Taken(node) => Ok((
                        LockGuard {
                            inner,
                            uuid,
                            held: true,
                        },
                        *node,
                    )),
                    Reservation::HeldBy(holder) => Err(holder),
                })
            })
            .await?)
    }

    /// Takes a node's lock, waiting up to `node_locked_wait` for a busy one
    /// (Ironic's retry on NodeLocked); returns the node as stored.
    pub(super) async fn lock(&self, uuid: Uuid, ident: &str) -> Result<(LockGuard, Node)> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.node_locked_wait;
        loop {
            let released = self.inner.released.notified();
            let holder = match self.reserve(uuid).await? {
                Ok(taken) => return Ok(taken),
                Err(holder) => holder,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::NodeLocked {
                    node: ident.to_string(),
                    host: holder,
                });
            }
            let _ = tokio::time::timeout_at(deadline.min(now + LOCK_POLL), released).await;
        }
    }

    /// Finds a node by UUID or name and takes its lock.
    pub(super) async fn lock_ident(&self, ident: &str) -> Result<(LockGuard, Node)> {
        let node = self.load(ident).await?;
        self.lock(node.uuid, ident).await
    }

    /// Saves a node and releases its lock in one write; the lock is released
    /// even if the caller's future is dropped meanwhile (the blocking write
    /// goes on without it). Returns the node as stored.
    pub(super) async fn save_locked(
        &self,
        node: Node,
        history: Vec<HistoryEntry>,
        lock: LockGuard,
    ) -> Result<Node> {
        self.save_locked_writes(node, history, lock, Vec::new())
            .await
    }

    /// [`Conductor::save_locked`] with record writes in the same
    /// transaction.
    pub(super) async fn save_locked_writes(
        &self,
        mut node: Node,
        history: Vec<HistoryEntry>,
        lock: LockGuard,
        records: Vec<store::RecordWrite>,
    ) -> Result<Node> {
        log_history(&node, &history);
        let host = self.host().to_string();
        Ok(self
            .store()
            .call(move |s| -> store::Result<Node> {
                // On failure the guard's drop releases the lock.
                node.version = s.save_node_with(&node, &history, Some(&host), &records)?;
                node.reservation = None;
                lock.released();
                Ok(node)
            })
            .await?)
    }
}

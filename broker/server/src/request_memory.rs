//! The bytes of requests held in memory, across every connection: Kafka's `queued.max.request.bytes`.
//!
//! A connection reserves a request's bytes here as they arrive, before each read, and returns them when the
//! request has been answered. So memory follows what clients actually sent: a size prefix alone costs
//! nothing, and a client trickling a huge request holds only what it has trickled. When the pool is spent
//! the connection stops reading, and TCP flow control pushes back on the client instead of the broker's
//! memory growing.
//!
//! Growing reservations can deadlock: if every byte of the pool is held by requests that are still arriving,
//! none can finish. The connection therefore waits for more memory only a bounded time while it holds part
//! of a request (`sluice.request.memory.wait.ms`, 30 s by default, the clients' own `request.timeout.ms`,
//! after which a client gives up on the request anyway), and is closed then; its bytes go back to the pool.
//! One such eviction at a time: connections that started waiting together would otherwise all give up in the
//! same instant, when closing one frees what the others need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A process-wide budget of request bytes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestMemory {
    pool: Option<Arc<Semaphore>>,
    limit: u32,
    last_eviction: Arc<Mutex<Option<Instant>>>,
}

/// Bytes held for one request; returned to the pool on drop.
#[derive(Debug, Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    held: usize,
}

impl Reservation {
    /// Bytes held (what was asked for, even without a limit).
    pub fn held(&self) -> usize {
        self.held
    }
}

impl RequestMemory {
    /// `None`: no limit (Kafka's `-1`). Limits above 4 GiB are held at 4 GiB, the most one semaphore
    /// acquisition can take.
    pub fn new(limit: Option<u64>) -> RequestMemory {
        match limit {
            None => RequestMemory {
                pool: None,
                limit: u32::MAX,
                last_eviction: Arc::default(),
            },
            Some(limit) => {
                let limit = limit.clamp(1, u32::MAX as u64) as u32;
                RequestMemory {
                    pool: Some(Arc::new(Semaphore::new(limit as usize))),
                    limit,
                    last_eviction: Arc::default(),
                }
            }
        }
    }

    /// Waits until `reservation` holds at least `bytes`. A request larger than the whole pool is held at
    /// the whole pool, so it still runs, alone.
    pub async fn grow_to(&self, reservation: &mut Reservation, bytes: usize) {
        let bytes = bytes.min(self.limit as usize);
        if bytes <= reservation.held {
            return;
        }
        let more = bytes - reservation.held;
        let Some(pool) = &self.pool else {
            reservation.held = bytes;
            return;
        };
        // The semaphore is never closed, so acquisition fails only if it were; hold nothing more then.
        let Ok(permit) = pool.clone().acquire_many_owned(more as u32).await else {
            return;
        };
        match &mut reservation.permit {
            Some(held) => held.merge(permit),
            None => reservation.permit = Some(permit),
        }
        reservation.held = bytes;
    }

    /// A reservation of `bytes` from nothing.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let mut reservation = Reservation::default();
        self.grow_to(&mut reservation, bytes).await;
        reservation
    }

    /// A connection that waited too long for memory asks whether it should be the one to go: yes, unless
    /// another one went less than `window` ago (then what that freed may be enough, and it waits again).
    pub fn may_evict(&self, now: Instant, window: Duration) -> bool {
        let mut last = self.last_eviction.lock();
        if last.is_some_and(|t| now.saturating_duration_since(t) < window) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Bytes not reserved right now (`None` without a limit).
    pub fn available(&self) -> Option<usize> {
        self.pool.as_ref().map(|p| p.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_spent_pool_makes_the_next_request_wait_until_one_is_answered() {
        let memory = RequestMemory::new(Some(1000));
        let first = memory.reserve(900).await;
        assert_eq!(memory.available(), Some(100));
        let waiting = tokio::spawn({
            let memory = memory.clone();
            async move { memory.reserve(500).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the pool had no room, yet the reservation went through"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released bytes must wake the waiter")
            .expect("task");
        assert_eq!(memory.available(), Some(500));
        drop(second);
        assert_eq!(memory.available(), Some(1000));
    }

    #[tokio::test]
    async fn a_reservation_grows_in_steps_and_returns_everything_at_once() {
        let memory = RequestMemory::new(Some(1000));
        let mut r = Reservation::default();
        memory.grow_to(&mut r, 100).await;
        memory.grow_to(&mut r, 50).await;
        assert_eq!((r.held(), memory.available()), (100, Some(900)));
        memory.grow_to(&mut r, 700).await;
        assert_eq!((r.held(), memory.available()), (700, Some(300)));
        drop(r);
        assert_eq!(memory.available(), Some(1000));
    }

    #[test]
    fn one_eviction_per_window() {
        let memory = RequestMemory::new(Some(100));
        let t0 = Instant::now();
        let window = Duration::from_millis(100);
        assert!(memory.may_evict(t0, window));
        assert!(!memory.may_evict(t0 + Duration::from_millis(99), window));
        assert!(memory.may_evict(t0 + Duration::from_millis(100), window));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_pool_takes_all_of_it() {
        let memory = RequestMemory::new(Some(100));
        let big = memory.reserve(10_000).await;
        assert_eq!(memory.available(), Some(0));
        drop(big);
        assert_eq!(memory.available(), Some(100));
        let unlimited = RequestMemory::new(None);
        let _r = unlimited.reserve(usize::MAX).await;
        assert_eq!(unlimited.available(), None);
    }
}

//! The bytes of requests held in memory, across every connection: Kafka's `queued.max.request.bytes`.
//!
//! A connection reads a request's 4-byte size, reserves that many bytes here, and only then reads the
//! body; the reservation is returned when the request has been answered. When the pool is spent the
//! connection simply stops reading, so TCP flow control pushes back on the client instead of the broker's
//! memory growing with every client that sends (or merely announces) a large request.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A process-wide budget of request bytes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestMemory {
    pool: Option<Arc<Semaphore>>,
    limit: u32,
}

/// Bytes held for one request; returned to the pool on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    /// `None`: no limit (Kafka's `-1`). Limits above 4 GiB are held at 4 GiB, the most one semaphore
    /// acquisition can take.
    pub fn new(limit: Option<u64>) -> RequestMemory {
        match limit {
            None => RequestMemory {
                pool: None,
                limit: u32::MAX,
            },
            Some(limit) => {
                let limit = limit.clamp(1, u32::MAX as u64) as u32;
                RequestMemory {
                    pool: Some(Arc::new(Semaphore::new(limit as usize))),
                    limit,
                }
            }
        }
    }

    /// Waits until `bytes` can be held. A request larger than the whole pool takes all of it, so it still
    /// runs, alone.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let Some(pool) = &self.pool else {
            return Reservation { _permit: None };
        };
        let want = bytes.min(self.limit as usize) as u32;
        // The semaphore is never closed, so acquisition fails only if it were; hold nothing then.
        let permit = pool.clone().acquire_many_owned(want).await.ok();
        Reservation { _permit: permit }
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

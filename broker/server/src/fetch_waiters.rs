//! Long-polling fetches waiting for data, by partition.
//!
//! A Fetch that finds less than `min_bytes` registers one `Notify` under every partition it asked for and
//! sleeps on it; an append wakes only the fetches registered under its partition. Waking uses `notify_one`,
//! which leaves a permit when the fetch is not asleep yet, so an append between a fetch's look at the log and
//! its sleep is never missed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The fetches waiting on one partition.
type Waiting = Vec<Weak<Notify>>;

#[derive(Default)]
pub struct FetchWaiters {
    by_partition: Mutex<HashMap<(String, i32), Waiting>>,
}

impl FetchWaiters {
    /// Wake `waiter` on the next append to any of `partitions`.
    pub fn register<'a>(
        &self,
        waiter: &Arc<Notify>,
        partitions: impl Iterator<Item = (&'a str, i32)>,
    ) {
        let mut map = self.by_partition.lock();
        for (topic, partition) in partitions {
            let list = map.entry((topic.to_string(), partition)).or_default();
            // Fetches that finished dropped their Notify; forget them here, where the list is touched anyway.
            list.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(waiter)));
            list.push(Arc::downgrade(waiter));
        }
    }

    /// Wake every fetch waiting on this partition.
    pub fn appended(&self, topic: &str, partition: i32) {
        let waiters = {
            let mut map = self.by_partition.lock();
            match map.get_mut(&(topic.to_string(), partition)) {
                Some(list) if !list.is_empty() => std::mem::take(list),
                _ => return,
            }
        };
        for waiter in waiters.iter().filter_map(Weak::upgrade) {
            waiter.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_append_wakes_only_fetches_on_its_partition() {
        let waiters = FetchWaiters::default();
        let a = Arc::new(Notify::new());
        let b = Arc::new(Notify::new());
        waiters.register(&a, [("t", 0)].into_iter());
        waiters.register(&b, [("t", 1), ("u", 0)].into_iter());
        waiters.appended("t", 0);
        // `a` has a permit even though nobody was asleep on it yet.
        tokio::time::timeout(Duration::from_secs(1), a.notified())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.notified())
                .await
                .is_err()
        );
        waiters.appended("u", 0);
        tokio::time::timeout(Duration::from_secs(1), b.notified())
            .await
            .unwrap();
    }

    #[test]
    fn finished_fetches_are_forgotten() {
        let waiters = FetchWaiters::default();
        for _ in 0..100 {
            let gone = Arc::new(Notify::new());
            waiters.register(&gone, [("t", 0)].into_iter());
        }
        let live = Arc::new(Notify::new());
        waiters.register(&live, [("t", 0)].into_iter());
        waiters.register(&live, [("t", 0)].into_iter());
        assert_eq!(waiters.by_partition.lock()[&("t".to_string(), 0)].len(), 1);
    }
}

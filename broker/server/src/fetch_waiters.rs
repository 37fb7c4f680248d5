//! Long-polling fetches waiting for data, by partition.
//!
//! A Fetch that finds less than `min_bytes` registers one `Notify` under every partition it asked for and
//! sleeps on it; an append wakes only the fetches registered under its partition. Waking uses `notify_one`,
//! which leaves a permit when the fetch is not asleep yet, so an append between a fetch's look at the log and
//! its sleep is never missed.
//!
//! A registration lasts as long as the fetch: dropping the [`Registration`] removes it, and a partition with
//! no waiter left has no entry. A client can name partitions that do not exist, so nothing here may outlive
//! the request that put it there.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

type Key = (String, i32);

#[derive(Default)]
pub struct FetchWaiters {
    by_partition: Mutex<HashMap<Key, Vec<Arc<Notify>>>>,
}

/// One fetch's registration; unregisters on drop.
pub struct Registration<'a> {
    waiters: &'a FetchWaiters,
    waiter: Arc<Notify>,
    keys: Vec<Key>,
}

impl FetchWaiters {
    /// Wake `waiter` on every append to any of `partitions` until the registration is dropped.
    pub fn register<'a, 'p>(
        &'a self,
        waiter: &Arc<Notify>,
        partitions: impl Iterator<Item = (&'p str, i32)>,
    ) -> Registration<'a> {
        let mut keys: Vec<Key> = partitions.map(|(t, p)| (t.to_string(), p)).collect();
        // A request may repeat a partition; one entry per partition is enough.
        keys.sort_unstable();
        keys.dedup();
        let mut map = self.by_partition.lock();
        for key in &keys {
            map.entry(key.clone()).or_default().push(waiter.clone());
        }
        Registration {
            waiters: self,
            waiter: waiter.clone(),
            keys,
        }
    }

    /// Wake every fetch waiting on this partition.
    pub fn appended(&self, topic: &str, partition: i32) {
        let map = self.by_partition.lock();
        if let Some(list) = map.get(&(topic.to_string(), partition)) {
            for waiter in list {
                waiter.notify_one();
            }
        }
    }

    /// Partitions with a waiter right now.
    pub fn watched_partitions(&self) -> usize {
        self.by_partition.lock().len()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.by_partition.lock();
        for key in &self.keys {
            if let Some(list) = map.get_mut(key) {
                if let Some(i) = list.iter().position(|w| Arc::ptr_eq(w, &self.waiter)) {
                    list.swap_remove(i);
                }
                if list.is_empty() {
                    map.remove(key);
                }
            }
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
        let _ra = waiters.register(&a, [("t", 0)].into_iter());
        let _rb = waiters.register(&b, [("t", 1), ("u", 0)].into_iter());
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
        // Still registered after a wake-up: the next append wakes it again.
        waiters.appended("u", 0);
        tokio::time::timeout(Duration::from_secs(1), b.notified())
            .await
            .unwrap();
    }

    #[test]
    fn a_finished_fetch_leaves_nothing_behind() {
        let waiters = FetchWaiters::default();
        let live = Arc::new(Notify::new());
        let _live = waiters.register(&live, [("t", 0)].into_iter());
        for i in 0..1000 {
            let gone = Arc::new(Notify::new());
            // Partitions that do not exist, repeated, as a hostile client may ask for them.
            let _r = waiters.register(&gone, [("t", 0), ("nope", i), ("nope", i)].into_iter());
        }
        assert_eq!(waiters.watched_partitions(), 1);
        assert_eq!(waiters.by_partition.lock()[&("t".to_string(), 0)].len(), 1);
    }
}

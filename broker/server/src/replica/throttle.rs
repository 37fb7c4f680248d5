//! Replication throttles (`leader.replication.throttled.rate`, `follower.replication.throttled.rate`): a byte
//! rate a broker's leaders may send to, and its followers fetch for, the replicas a topic lists as throttled
//! (`*.replication.throttled.replicas`), so moving a partition does not starve producers and consumers. As in
//! Kafka, only replicas outside the ISR are ever held back; a follower in sync always gets everything.
//!
//! The rate is a token bucket holding at most one second of bytes; a fetch may take it below zero (a batch is
//! never split), and the replicas wait until it refills. The clock is passed in, so it is testable.

use std::time::Instant;

use parking_lot::Mutex;

#[derive(Debug)]
struct Bucket {
    /// Bytes per second; `None`: unlimited.
    rate: Option<u64>,
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug)]
pub struct Quota {
    bucket: Mutex<Bucket>,
}

impl Quota {
    pub fn new(now: Instant) -> Quota {
        Quota {
            bucket: Mutex::new(Bucket {
                rate: None,
                tokens: 0.0,
                refilled: now,
            }),
        }
    }

    pub fn set_rate(&self, rate: Option<u64>, now: Instant) {
        let mut b = self.bucket.lock();
        if b.rate != rate {
            b.rate = rate;
            b.tokens = rate.map_or(0.0, |r| r as f64);
            b.refilled = now;
        }
    }

    fn refill(b: &mut Bucket, now: Instant) {
        if let Some(rate) = b.rate {
            let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate as f64).min(rate as f64);
        }
        b.refilled = now;
    }

    /// Whether throttled replicas must wait now.
    pub fn exceeded(&self, now: Instant) -> bool {
        let mut b = self.bucket.lock();
        Self::refill(&mut b, now);
        b.rate.is_some() && b.tokens < 0.0
    }

    /// Bytes a throttled replica just moved.
    pub fn record(&self, bytes: u64, now: Instant) {
        let mut b = self.bucket.lock();
        Self::refill(&mut b, now);
        if b.rate.is_some() {
            b.tokens -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_rate_lets_a_second_of_bytes_through_then_refills() {
        let t0 = Instant::now();
        let q = Quota::new(t0);
        q.record(1 << 30, t0);
        assert!(!q.exceeded(t0), "no rate: never throttled");
        q.set_rate(Some(1000), t0);
        assert!(!q.exceeded(t0));
        q.record(600, t0);
        assert!(!q.exceeded(t0));
        q.record(600, t0);
        assert!(q.exceeded(t0), "1200 bytes against a 1000/s bucket");
        assert!(q.exceeded(t0 + Duration::from_millis(100)));
        assert!(
            !q.exceeded(t0 + Duration::from_millis(300)),
            "refilled by 300 bytes"
        );
        // The bucket never holds more than a second's worth.
        let later = t0 + Duration::from_secs(60);
        q.record(1000, later);
        q.record(1, later);
        assert!(q.exceeded(later));
        q.set_rate(None, later);
        assert!(!q.exceeded(later));
    }
}

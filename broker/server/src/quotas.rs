//! Byte-rate quotas (`producer_byte_rate`, `consumer_byte_rate`), measured as Kafka measures them: the bytes
//! of each (user, client id) over `quota.window.num` windows of `quota.window.size.seconds`, the span never
//! counted as shorter than all but one window. A connection over its quota is told how long to back off
//! (`throttle_time_ms`, what would bring its rate back to the quota) and is not read from for that long
//! (KIP-219). The quotas themselves live in the metadata (`sluice_metadata::quota`); the clock is passed in.

use std::collections::HashMap;

use parking_lot::Mutex;
use sluice_metadata::MetadataImage;
use sluice_metadata::quota::{self, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

/// Which quota a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Produce,
    Fetch,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Produce => PRODUCER_BYTE_RATE,
            Direction::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// `quota.window.num` and `quota.window.size.seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindows {
    pub windows: u32,
    pub window_ms: i64,
}

impl Default for QuotaWindows {
    fn default() -> Self {
        QuotaWindows {
            windows: 11,
            window_ms: 1000,
        }
    }
}

/// One sensor: bytes per window, oldest first.
#[derive(Debug, Default)]
struct Rate {
    windows: Vec<(i64, f64)>,
}

impl Rate {
    fn record(&mut self, w: QuotaWindows, bytes: f64, now_ms: i64) {
        let start = now_ms - now_ms.rem_euclid(w.window_ms);
        match self.windows.last_mut() {
            Some((s, b)) if *s == start => *b += bytes,
            _ => self.windows.push((start, bytes)),
        }
        let oldest = start - (w.windows as i64 - 1) * w.window_ms;
        self.windows.retain(|(s, _)| *s >= oldest);
    }

    /// Bytes in the windows kept, and the span they are spread over (Kafka's `Rate.windowSize`).
    fn total_and_span(&self, w: QuotaWindows, now_ms: i64) -> (f64, i64) {
        let total = self.windows.iter().map(|(_, b)| b).sum();
        let first = self.windows.first().map_or(now_ms, |(s, _)| *s);
        let elapsed = (now_ms - first).max(0);
        let full = elapsed / w.window_ms;
        let min_full = w.windows as i64 - 1;
        let span = if full < min_full {
            elapsed + (min_full - full) * w.window_ms
        } else {
            elapsed
        };
        (total, span.max(1))
    }
}

/// The sensors of every (direction, user, client id) that has a quota.
#[derive(Debug, Default)]
pub struct QuotaManager {
    windows: QuotaWindows,
    sensors: Mutex<HashMap<(Direction, String, String), Rate>>,
}

impl QuotaManager {
    pub fn new(windows: QuotaWindows) -> QuotaManager {
        QuotaManager {
            windows,
            sensors: Mutex::new(HashMap::new()),
        }
    }

    /// Counts `bytes` for the principal `principal` (`User:NAME`) and `client_id`, and answers how long it
    /// must back off (0 when within its quota, or without one).
    pub fn record(
        &self,
        image: &MetadataImage,
        direction: Direction,
        principal: &str,
        client_id: &str,
        bytes: u64,
        now_ms: i64,
    ) -> i32 {
        if image.client_quotas.is_empty() {
            return 0;
        }
        let user = principal
            .split_once(':')
            .map_or(principal, |(_, name)| name);
        let Some((_, bound)) =
            quota::resolve(&image.client_quotas, user, client_id, direction.key())
        else {
            return 0;
        };
        let w = self.windows;
        let mut sensors = self.sensors.lock();
        // Kafka keeps one sensor per quota entity; per (user, client id) is the same or finer.
        let rate = sensors
            .entry((direction, user.to_owned(), client_id.to_owned()))
            .or_default();
        rate.record(w, bytes as f64, now_ms);
        throttle_ms(rate.total_and_span(w, now_ms), bound, w)
    }
}

/// How long until the rate falls back to `bound` bytes/s: (observed - bound) / bound × span, capped at the
/// whole quota window (Kafka's `QuotaUtils.throttleTime`).
fn throttle_ms((total, span_ms): (f64, i64), bound: f64, w: QuotaWindows) -> i32 {
    if bound <= 0.0 {
        return (w.windows as i64 * w.window_ms) as i32;
    }
    let observed = total * 1000.0 / span_ms as f64;
    if observed <= bound {
        return 0;
    }
    let ms = (observed - bound) / bound * span_ms as f64;
    ms.min((w.windows as i64 * w.window_ms) as f64).round() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::MetadataRecord;
    use sluice_metadata::quota::QuotaEntity;

    fn image_with(user: &str, key: &str, rate: f64) -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply_at(
            &MetadataRecord::ClientQuotaChanged {
                entity: QuotaEntity {
                    user: Some(Some(user.into())),
                    client_id: None,
                },
                key: key.into(),
                value: Some(rate),
            },
            0,
        );
        image
    }

    #[test]
    fn within_the_quota_nothing_waits_beyond_it_the_excess_does() {
        let image = image_with("alice", PRODUCER_BYTE_RATE, 1000.0);
        let q = QuotaManager::new(QuotaWindows {
            windows: 2,
            window_ms: 1000,
        });
        // Two windows: the span is at least one second, so 1000 bytes pass.
        assert_eq!(
            q.record(&image, Direction::Produce, "User:alice", "c", 1000, 10_000),
            0
        );
        // 3000 bytes over that second: three times the quota, two seconds to wait.
        assert_eq!(
            q.record(&image, Direction::Produce, "User:alice", "c", 2000, 10_000),
            2000
        );
        // Others, and fetches, have no quota.
        assert_eq!(
            q.record(&image, Direction::Produce, "User:bob", "c", 5000, 10_000),
            0
        );
        assert_eq!(
            q.record(&image, Direction::Fetch, "User:alice", "c", 5000, 10_000),
            0
        );
        // Once the old windows pass, the rate is the new bytes' alone.
        assert_eq!(
            q.record(&image, Direction::Produce, "User:alice", "c", 500, 20_000),
            0
        );
        // Capped at the whole window.
        assert_eq!(
            q.record(
                &image,
                Direction::Produce,
                "User:alice",
                "c",
                1_000_000,
                20_000
            ),
            2000
        );
    }

    #[test]
    fn kafkas_default_windows_spread_a_burst_over_ten_seconds() {
        let image = image_with("alice", CONSUMER_BYTE_RATE, 100.0);
        let q = QuotaManager::new(QuotaWindows::default());
        assert_eq!(
            q.record(&image, Direction::Fetch, "User:alice", "", 1000, 0),
            0
        );
        assert_eq!(
            q.record(&image, Direction::Fetch, "User:alice", "", 100, 0),
            1000
        );
    }
}

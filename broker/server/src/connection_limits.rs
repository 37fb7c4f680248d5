//! Kafka's connection limits: `max.connections.per.ip` (with `max.connections.per.ip.overrides`) closes a new
//! connection from an address that already holds its share, and `max.connections` stops the broker accepting
//! more client connections until one closes. The inter-broker and controller listeners are not counted
//! against `max.connections`, so a flood of clients cannot cut the cluster's own traffic (as in Kafka).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// The limits as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// `max.connections`: client connections across the broker; `None` for no limit.
    pub max_connections: Option<usize>,
    /// `max.connections.per.ip`.
    pub per_ip: usize,
    /// `max.connections.per.ip.overrides`, by address.
    pub per_ip_overrides: HashMap<IpAddr, usize>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_connections: None,
            per_ip: usize::MAX,
            per_ip_overrides: HashMap::new(),
        }
    }
}

/// Parses `max.connections.per.ip.overrides`: `address:count` pairs separated by commas. Host names are
/// refused: a connection is known by its address.
pub fn parse_overrides(value: &str) -> Result<HashMap<IpAddr, usize>, Error> {
    let key = "max.connections.per.ip.overrides";
    let mut out = HashMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            Error::invalid(
                key,
                value,
                "address:count pairs, such as 10.0.0.5:200,::1:10",
            )
        };
        let (host, count) = entry.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host.parse().map_err(|_| bad())?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        out.insert(ip, count);
    }
    Ok(out)
}

/// The live counts, shared by every listener of the broker.
#[derive(Debug)]
pub struct ConnectionLimits {
    settings: LimitSettings,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Client connections left under `max.connections`.
    total: Option<Arc<Semaphore>>,
}

/// Held while a connection is open: dropping it gives its place back.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _total: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.limits.per_ip.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    pub fn new(settings: LimitSettings) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            total: settings
                .max_connections
                .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))),
            settings,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until `max.connections` lets one more client connection in; `None` when there is no limit.
    /// Called before `accept`, so while the broker is full new connections wait in the listen backlog.
    pub async fn wait_for_room(&self) -> Option<OwnedSemaphorePermit> {
        let total = self.total.clone()?;
        total.acquire_owned().await.ok()
    }

    /// Admits a connection from `ip` (with its place under `max.connections`, if counted), or `None` when the
    /// address already holds as many as it may.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        total: Option<OwnedSemaphorePermit>,
    ) -> Option<Admission> {
        let limit = self
            .settings
            .per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.settings.per_ip);
        let mut counts = self.per_ip.lock();
        let n = counts.entry(ip).or_default();
        if *n >= limit {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Admission {
            limits: self.clone(),
            ip,
            _total: total,
        })
    }

    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.per_ip.lock().get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_address_limits_close_and_free_places() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let limits = ConnectionLimits::new(LimitSettings {
            max_connections: None,
            per_ip: 2,
            per_ip_overrides: HashMap::from([(b, 0)]),
        });
        let first = limits.admit(a, None).expect("first");
        let second = limits.admit(a, None).expect("second");
        assert!(
            limits.admit(a, None).is_none(),
            "a third from the same address"
        );
        assert!(limits.admit(b, None).is_none(), "the override allows none");
        drop(first);
        let third = limits.admit(a, None).expect("a place was given back");
        assert_eq!(limits.open_from(a), 2);
        drop((second, third));
        assert_eq!(limits.open_from(a), 0);
        assert!(limits.per_ip.lock().is_empty(), "no entry left behind");
    }

    #[tokio::test]
    async fn max_connections_waits_for_a_place() {
        let limits = ConnectionLimits::new(LimitSettings {
            max_connections: Some(1),
            ..LimitSettings::default()
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let permit = limits.wait_for_room().await;
        let held = limits.admit(ip, permit).expect("admitted");
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), limits.wait_for_room());
        assert!(waiting.await.is_err(), "full: the next waits");
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_secs(5), limits.wait_for_room()).await;
        assert!(
            matches!(again, Ok(Some(_))),
            "a closed connection makes room"
        );
    }

    #[test]
    fn overrides_parse_addresses_and_refuse_names() {
        let o = parse_overrides("10.0.0.5:200, [::1]:10").unwrap();
        assert_eq!(o[&"10.0.0.5".parse::<IpAddr>().unwrap()], 200);
        assert_eq!(o[&"::1".parse::<IpAddr>().unwrap()], 10);
        for bad in ["host.example:5", "10.0.0.1", "10.0.0.1:x"] {
            let e = parse_overrides(bad).unwrap_err().to_string();
            assert!(e.contains("max.connections.per.ip.overrides"), "{e}");
        }
    }
}

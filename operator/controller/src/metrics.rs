//! Prometheus metrics and the health endpoints, served on `--metrics-addr`:
//! `/metrics` (OpenMetrics text), `/healthz` (the process is alive) and `/readyz` (the
//! controller is running: the CRDs are installed and, with leader election, this replica leads).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

type HistogramFamily = Family<KindLabel, Histogram, fn() -> Histogram>;

/// Reconcile counts, failures and durations per resource kind.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    failures: Family<KindLabel, Counter>,
    duration: HistogramFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice_operator");
        let reconciles = Family::<KindLabel, Counter>::default();
        let failures = Family::<KindLabel, Counter>::default();
        // 10 ms to ~40 s: a reconcile is a handful of API calls, a slow one waits on Kafka.
        let duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 13)));
        registry.register(
            "reconciles",
            "Reconciliations run, by resource kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed and will be retried, by resource kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconciliation took, by resource kind",
            duration.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
        }
    }

    /// Records one reconciliation of a `kind` resource.
    pub fn record(&self, kind: &str, took: Duration, failed: bool) {
        let label = KindLabel {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&label).inc();
        // Created at 0 on the first reconcile, so that the series exists (an absent series makes
        // `rate(...errors_total[5m])` empty rather than 0, and alerts on it never fire).
        let failures = self.failures.get_or_create(&label);
        if failed {
            failures.inc();
        }
        self.duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What the HTTP endpoints report.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn new(metrics: Arc<Metrics>) -> Health {
        Health {
            metrics,
            ready: Arc::default(),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds the metrics address (separate from [`serve`] so that tests can bind port 0).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::MetricsServer {
            addr: addr.to_owned(),
            source,
        })
}

/// Serves the endpoints until the process ends.
pub async fn serve(listener: TcpListener, health: Health) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    axum::serve(listener, app)
        .await
        .map_err(|source| Error::MetricsServer { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn endpoints_over_a_real_socket() {
        let metrics = Arc::new(Metrics::new());
        let health = Health::new(metrics.clone());
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, health.clone()));

        metrics.record("KafkaCluster", Duration::from_millis(30), false);
        assert!(
            metrics
                .encode()
                .contains("sluice_operator_reconcile_errors_total{kind=\"KafkaCluster\"} 0"),
            "the error counter is there from the first reconcile"
        );
        metrics.record("KafkaCluster", Duration::from_millis(30), true);

        let body = http_get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("sluice_operator_reconciles_total{kind=\"KafkaCluster\"} 2"),
            "{body}"
        );
        assert!(
            body.contains("sluice_operator_reconcile_errors_total{kind=\"KafkaCluster\"} 1"),
            "{body}"
        );
        assert!(
            body.contains(
                "sluice_operator_reconcile_duration_seconds_count{kind=\"KafkaCluster\"} 2"
            ),
            "{body}"
        );
        assert!(body.contains("# EOF"), "{body}");

        assert!(http_get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(http_get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(http_get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(http_get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}

//! The operator as `sluice-operator run` runs it: the metrics and health server, the leader
//! Lease when asked for, and both controllers (KafkaCluster and Topic). The binary and the
//! integration tests both start it with [`start`], so that the tests run what ships.
//!
//! Order of events: bind the metrics address and serve it (`/healthz` answers from the start);
//! with a lease, wait until this replica holds it; start both controllers; `/readyz` turns ready
//! once both watch. The operator runs until asked to stop (SIGTERM in the binary), a controller
//! fails, or the lease is lost. On a stop the controllers finish their running reconciles, then
//! the lease is released so that a successor need not wait for it to expire.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::inspector::KafkaAdminInspector;
use crate::kafka_cluster::{self, Settings};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::{self, Health, Metrics};
use crate::topic;

/// Where `/metrics`, `/healthz` and `/readyz` are served.
#[derive(Debug)]
pub enum MetricsListener {
    /// An address to bind, as `--metrics-addr` gives it (`0.0.0.0:8080`, `127.0.0.1:0`).
    Addr(String),
    /// A socket the caller has bound already.
    Bound(TcpListener),
}

/// Everything `sluice-operator run` takes from its command line.
#[derive(Debug)]
pub struct Config {
    /// Watch only this namespace; `None` watches all.
    pub namespace: Option<String>,
    pub settings: Settings,
    pub metrics: MetricsListener,
    /// Reconcile only while holding this Lease (`--leader-election`).
    pub lease: Option<LeaseConfig>,
}

/// A started operator. Dropping it aborts everything at once, like a killed process: the lease
/// stays held until it expires.
pub struct Running {
    metrics_addr: SocketAddr,
    metrics: Arc<Metrics>,
    cluster_ctx: Arc<kafka_cluster::Context<KafkaAdminInspector>>,
    stop: watch::Sender<bool>,
    controllers: JoinHandle<Result<(), Error>>,
    server: JoinHandle<()>,
}

/// Binds the metrics address and starts the operator on tokio tasks. Fails only when the
/// address cannot be bound; everything after (the lease, the controllers) is reported by
/// [`Running::run_until`] or [`Running::stop`].
pub async fn start(client: Client, config: Config) -> Result<Running, Error> {
    let listener = match config.metrics {
        MetricsListener::Addr(addr) => metrics::bind(&addr).await?,
        MetricsListener::Bound(listener) => listener,
    };
    let metrics_addr = listener
        .local_addr()
        .map_err(|source| Error::MetricsServer {
            addr: "the metrics listener".to_owned(),
            source,
        })?;
    let metrics = Arc::new(Metrics::new());
    let health = Health::new(metrics.clone());
    let server = tokio::spawn({
        let health = health.clone();
        async move {
            if let Err(e) = metrics::serve(listener, health).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        }
    });

    let cluster_ctx = Arc::new(kafka_cluster::Context::new(
        client.clone(),
        config.settings.clone(),
        KafkaAdminInspector,
        metrics.clone(),
    ));
    let topic_ctx = Arc::new(topic::Context::new(
        client.clone(),
        config.settings.clone(),
        metrics.clone(),
    ));
    let user_ctx = Arc::new(crate::context::Context::new(
        client.clone(),
        config.settings,
        metrics.clone(),
    ));
    let (stop, stop_requested) = watch::channel(false);
    let elector = config.lease.map(|lease| LeaderElector::new(client, lease));
    let controllers = tokio::spawn(operate(
        Controllers {
            namespace: config.namespace,
            cluster_ctx: cluster_ctx.clone(),
            topic_ctx,
            user_ctx,
        },
        elector,
        health,
        stop_requested,
    ));
    Ok(Running {
        metrics_addr,
        metrics,
        cluster_ctx,
        stop,
        controllers,
        server,
    })
}

impl Running {
    /// The address the metrics server listens on (the port chosen when asked for port 0).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The reconcile counters and durations of both controllers, as `/metrics` serves them.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The KafkaCluster controller's context, e.g. to run one extra reconcile through it.
    pub fn cluster_context(&self) -> &Arc<kafka_cluster::Context<KafkaAdminInspector>> {
        &self.cluster_ctx
    }

    /// Runs until the operator ends by itself (a controller failed, or the lease was lost) or
    /// `shutdown` completes; in the latter case it stops as [`Running::stop`] does. A panic in
    /// the controllers is passed on.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let joined = tokio::select! {
            joined = &mut self.controllers => joined,
            () = shutdown => {
                self.stop.send_replace(true);
                (&mut self.controllers).await
            }
        };
        self.server.abort();
        match joined {
            Ok(result) => result,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled: only `Drop` aborts the task, and it cannot have run yet.
                Err(_) => Ok(()),
            },
        }
    }

    /// Stops gracefully, as on SIGTERM: the controllers finish their running reconciles, then
    /// the lease (if any) is released. Returns how the operator ended.
    pub async fn stop(self) -> Result<(), Error> {
        self.run_until(std::future::ready(())).await
    }

    /// Stops at once without releasing the lease, like a crashed or killed process.
    pub fn abort(self) {
        drop(self);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.controllers.abort();
        self.server.abort();
    }
}

/// Completes on SIGTERM (how Kubernetes stops a pod) or SIGINT (Ctrl-C). A signal that cannot be
/// listened for is logged and never completes, rather than stopping the operator.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

struct Controllers {
    namespace: Option<String>,
    cluster_ctx: Arc<kafka_cluster::Context<KafkaAdminInspector>>,
    topic_ctx: Arc<topic::Context>,
    user_ctx: Arc<crate::context::Context>,
}

/// Completes once a stop is requested (or the [`Running`] handle is gone).
async fn stop_requested(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The body of the controllers' task: lease, both controllers, lease release.
async fn operate(
    controllers: Controllers,
    elector: Option<LeaderElector>,
    health: Health,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    if let Some(elector) = &elector {
        tokio::select! {
            acquired = elector.acquire() => acquired?,
            () = stop_requested(stop.clone()) => return Ok(()),
        }
    }
    // Ready once every controller watches.
    let started = AtomicUsize::new(0);
    let on_started = || {
        if started.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
            health.set_ready(true);
        }
    };
    let Controllers {
        namespace,
        cluster_ctx,
        topic_ctx,
        user_ctx,
    } = controllers;
    let namespace = namespace.as_deref();
    let both = async {
        tokio::try_join!(
            kafka_cluster::run(
                cluster_ctx,
                namespace,
                on_started,
                stop_requested(stop.clone())
            ),
            topic::run(
                topic_ctx,
                namespace,
                on_started,
                stop_requested(stop.clone())
            ),
            crate::user::run(user_ctx, namespace, on_started, stop_requested(stop)),
        )
        .map(|_| ())
    };
    let result = match &elector {
        None => both.await,
        Some(elector) => {
            let result = tokio::select! {
                result = both => result,
                lost = elector.hold() => Err(lost),
            };
            // Released however the controllers ended, so that a successor need not wait; a lease
            // that is someone else's by now is left alone by `release`.
            if let Err(e) = elector.release().await {
                tracing::warn!(error = %e, "cannot release the leader lease");
            }
            result
        }
    };
    health.set_ready(false);
    result
}

//! `sluice-operator`: `run` the controller, print the `crd`s, or `render` a KafkaCluster file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sluice_operator::kafka_cluster::{self, Context, Settings};
use sluice_operator::leader::{LeaderElector, LeaseConfig};
use sluice_operator::metrics::{self, Health, Metrics};
use sluice_operator::render::{RenderOptions, render};
use sluice_operator::topic;
use sluice_operator::{DEFAULT_BROKER_IMAGE, KafkaAdminInspector, duration::parse_duration};

#[derive(Parser)]
#[command(version, about = "Kubernetes operator for Sluice clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster in the kubeconfig or the pod's service account.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crd,
    /// Print every object the operator would apply for a KafkaCluster file (no cluster needed).
    Render(RenderArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SLUICE_NAMESPACE")]
    namespace: Option<String>,
    /// Broker image for KafkaClusters that set no spec.image.
    #[arg(long, env = "SLUICE_BROKER_IMAGE", default_value = DEFAULT_BROKER_IMAGE)]
    broker_image: String,
    /// Reconcile every cluster at least this often.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    resync_interval: Duration,
    /// Reach every cluster's brokers at this bootstrap address instead of its Service, e.g.
    /// when the operator runs outside the Kubernetes cluster.
    #[arg(long)]
    bootstrap_override: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Reconcile only while holding a Lease, so that several replicas can run.
    #[arg(long)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "sluice-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod's name, from POD_NAME).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lease_renew_interval: Duration,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// A YAML file holding a KafkaCluster.
    file: PathBuf,
    /// Namespace when the resource names none.
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = DEFAULT_BROKER_IMAGE)]
    broker_image: String,
    /// Cluster id to render (default: status.clusterId, else a new random id).
    #[arg(long)]
    cluster_id: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => emit(&sluice_crd::crds_yaml()?),
        Command::Render(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let options = RenderOptions {
                namespace: args.namespace,
                broker_image: args.broker_image,
                cluster_id: args.cluster_id,
            };
            let out = render(&text, &options)
                .with_context(|| format!("cannot render {}", args.file.display()))?;
            emit(&out)
        }
        Command::Run(args) => {
            init_logging(args.log_format);
            tokio::runtime::Runtime::new()?.block_on(run(args))
        }
    }
}

/// Writes to stdout; a reader that stops early (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client (kubeconfig or in-cluster)")?;
    let metrics = Arc::new(Metrics::new());
    let health = Health::new(metrics.clone());
    let listener = metrics::bind(&args.metrics_addr).await?;
    tokio::spawn({
        let health = health.clone();
        async move {
            if let Err(e) = metrics::serve(listener, health).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        }
    });

    let elector = if args.leader_election {
        let identity = match args.identity {
            Some(id) => id,
            None => hostname()?,
        };
        let namespace = args
            .lease_namespace
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| "default".to_owned());
        let elector = LeaderElector::new(
            client.clone(),
            LeaseConfig {
                name: args.lease_name,
                namespace,
                identity,
                duration: args.lease_duration,
                renew_every: args.lease_renew_interval,
            },
        );
        elector.acquire().await?;
        Some(elector)
    } else {
        None
    };

    let settings = Settings {
        broker_image: args.broker_image,
        resync_interval: args.resync_interval,
        bootstrap_override: args.bootstrap_override,
    };
    let topic_ctx = Arc::new(topic::Context::new(
        client.clone(),
        settings.clone(),
        metrics.clone(),
    ));
    let ctx = Arc::new(Context::new(client, settings, KafkaAdminInspector, metrics));
    // Ready once both controllers run.
    let started = AtomicUsize::new(0);
    let on_started = || {
        if started.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
            health.set_ready(true);
        }
    };
    let namespace = args.namespace.as_deref();
    let controller = async {
        tokio::try_join!(
            kafka_cluster::run(ctx, namespace, on_started),
            topic::run(topic_ctx, namespace, on_started),
        )
        .map(|_| ())
    };
    match &elector {
        None => controller.await?,
        Some(elector) => {
            tokio::select! {
                result = controller => {
                    result?;
                    if let Err(e) = elector.release().await {
                        tracing::warn!(error = %e, "cannot release the leader lease");
                    }
                }
                lost = elector.hold() => return Err(lost.into()),
            }
        }
    }
    tracing::info!("shut down");
    Ok(())
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("--identity not given and the host name is unreadable")?;
    Ok(name.trim().to_owned())
}

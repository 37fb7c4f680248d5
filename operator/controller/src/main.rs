//! `sluice-operator`: `run` the controller, print the `crd`s, or `render` a KafkaCluster file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sluice_operator::kafka_cluster::Settings;
use sluice_operator::leader::LeaseConfig;
use sluice_operator::render::{RenderOptions, render};
use sluice_operator::runner::{self, MetricsListener};
use sluice_operator::{DEFAULT_BROKER_IMAGE, duration::parse_duration};

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
    let lease = if args.leader_election {
        let identity = match args.identity {
            Some(id) => id,
            None => hostname()?,
        };
        let namespace = args
            .lease_namespace
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| "default".to_owned());
        Some(LeaseConfig {
            name: args.lease_name,
            namespace,
            identity,
            duration: args.lease_duration,
            renew_every: args.lease_renew_interval,
        })
    } else {
        None
    };
    let config = runner::Config {
        namespace: args.namespace,
        settings: Settings {
            broker_image: args.broker_image,
            resync_interval: args.resync_interval,
            bootstrap_override: args.bootstrap_override,
        },
        metrics: MetricsListener::Addr(args.metrics_addr),
        lease,
    };
    runner::start(client, config)
        .await?
        .run_until(runner::shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("--identity not given and the host name is unreadable")?;
    Ok(name.trim().to_owned())
}

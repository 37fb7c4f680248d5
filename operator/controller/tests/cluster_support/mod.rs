//! Shared by `tests/cluster_*.rs`: one real Kubernetes API server per test binary, a namespace
//! per test, and the operator run in-process the way `sluice-operator run` runs it.
//!
//! The API server, etcd and kube-controller-manager come from `scripts/k8s/up` (started once, on
//! first use). They are stopped by `scripts/k8s/down` from a watchdog process that waits for this
//! test process to end, however it ends (pass, failure, abort, a killed CI job); libtest has no
//! hook after the last test. The state directory is deleted afterwards unless a test panicked, so
//! that the logs of a failed run stay (its path is printed).
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed setup should panic

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sluice_crd::KafkaCluster;
use sluice_operator::kafka_cluster::{self, Context, Settings};
use sluice_operator::leader::LeaseConfig;
use sluice_operator::metrics::Metrics;
use sluice_operator::runner::{self, MetricsListener, Running};
use sluice_operator::{DEFAULT_BROKER_IMAGE, KafkaAdminInspector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `$probe` (an `async` block giving `Result<T, String>`) every 100 ms until it is `Ok`,
/// and panics with the last `Err` once `$timeout` has passed. Every wait in these tests is one
/// of these: a sleep is never an assertion.
macro_rules! eventually {
    ($what:expr, $timeout:expr, $probe:expr) => {{
        let timeout: ::std::time::Duration = $timeout;
        let deadline = ::tokio::time::Instant::now() + timeout;
        loop {
            let result: ::std::result::Result<_, String> = $probe.await;
            match result {
                Ok(value) => break value,
                Err(last) if ::tokio::time::Instant::now() >= deadline => {
                    panic!(
                        "timed out after {timeout:?} waiting for {}; last seen: {last}",
                        $what
                    )
                }
                Err(_) => ::tokio::time::sleep(::std::time::Duration::from_millis(100)).await,
            }
        }
    }};
}

/// Field manager of the changes the tests make, standing in for a user's `kubectl apply`.
pub const TEST_MANAGER: &str = "sluice-tests";

/// The running test cluster.
pub struct K8s {
    pub dir: PathBuf,
    pub repo: PathBuf,
    /// Admin (`system:masters`) kubeconfig.
    pub kubeconfig: PathBuf,
    /// kube-controller-manager runs, so ownerReference garbage collection happens.
    pub gc: bool,
}

static K8S: OnceLock<Result<K8s, String>> = OnceLock::new();

/// The cluster, started on first use. Panics (fails the test) when it cannot start, including
/// when the binaries are not installed: these tests are never skipped.
pub fn k8s() -> &'static K8s {
    match K8S.get_or_init(start) {
        Ok(k8s) => k8s,
        Err(message) => panic!("{message}"),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn start() -> Result<K8s, String> {
    let repo = repo_root();
    // The same cache location rule as scripts/k8s/lib.sh.
    let cache = std::env::var_os("SLUICE_K8S_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".cache/k8s"));
    let apiserver = cache.join("bin/kube-apiserver");
    if !apiserver.is_file() {
        return Err(format!(
            "{} is missing: run scripts/k8s/install first",
            apiserver.display()
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("sluice-k8s-test-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?
        .keep();
    let scripts = repo.join("scripts/k8s");
    spawn_watchdog(&scripts.join("down"), &dir)?;
    mark_failures_in(&dir);
    capture_logs();
    eprintln!(
        "Kubernetes test cluster in {} (kept if a test fails)",
        dir.display()
    );

    let up = Command::new(scripts.join("up"))
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/k8s/up: {e}"))?;
    if !up.status.success() {
        return Err(format!(
            "scripts/k8s/up {} failed:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        ));
    }
    let env = std::fs::read_to_string(dir.join("env")).map_err(|e| e.to_string())?;
    let gc = env.lines().any(|l| l.trim() == "export SLUICE_K8S_GC=1");
    let k8s = K8s {
        kubeconfig: dir.join("kubeconfig"),
        dir,
        repo,
        gc,
    };
    // Tests call this from inside their own runtimes, where no other runtime may block.
    let crds = repo_crds(&k8s.repo)?;
    let kubeconfig = k8s.kubeconfig.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(install_crds(&kubeconfig, crds))
    })
    .join()
    .map_err(|_| "installing the CRDs panicked".to_owned())??;
    Ok(k8s)
}

/// A process in its own session (so that a Ctrl-C to the test does not kill it) that waits for
/// this process to exit, then runs `down` and removes the directory unless a test failed.
fn spawn_watchdog(down: &Path, dir: &Path) -> Result<(), String> {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
"$2" "$3"
[ -e "$3/failed" ] || rm -rf "$3""#;
    Command::new("setsid")
        .args(["sh", "-c", script, "sluice-k8s-watchdog"])
        .arg(std::process::id().to_string())
        .arg(down)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the watchdog that stops the cluster: {e}"))
}

/// Any panic (a failed assertion) leaves `DIR/failed`, so the watchdog keeps the logs.
fn mark_failures_in(dir: &Path) {
    let marker = dir.join("failed");
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::fs::write(&marker, "");
        previous(info);
    }));
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogBuffer;

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The operator's warnings (e.g. an Event the API server refused, which the operator only logs)
/// go to a buffer the tests can search, see [`logs`].
fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_ansi(false)
        .with_writer(|| LogBuffer)
        .try_init();
}

/// Everything logged at warn or above so far, by every test of this binary.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

fn repo_crds(repo: &Path) -> Result<Vec<CustomResourceDefinition>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("crds"))
        .map_err(|e| format!("cannot read crds/: {e}"))?
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

/// Server-side applies the CRDs from `crds/` and waits until they are served.
async fn install_crds(
    kubeconfig: &Path,
    crds: Vec<CustomResourceDefinition>,
) -> Result<(), String> {
    let client = client_from(kubeconfig).await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(crd),
        )
        .await
        .map_err(|e| format!("the API server refuses CRD {name} from crds/: {e}"))?;
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        eventually!(format!("CRD {name} established"), secs(30), async {
            let crd = api.get(&name).await.map_err(|e| e.to_string())?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            conditions
                .iter()
                .find(|c| c.type_ == "Established" && c.status == "True")
                .map(|_| ())
                .ok_or_else(|| format!("{conditions:?}"))
        });
    }
    Ok(())
}

pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub async fn client_from(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// An admin client (made per test: a kube client belongs to the runtime that made it).
pub async fn admin() -> Client {
    client_from(&k8s().kubeconfig).await
}

/// A client authenticating with a bearer token, e.g. a ServiceAccount's; written as a kubeconfig
/// next to the admin one, so it takes the same path as the operator in production would.
pub async fn client_with_token(token: &str, name: &str) -> Client {
    let k8s = k8s();
    let admin = std::fs::read_to_string(&k8s.kubeconfig).unwrap();
    let mut out = String::new();
    for line in admin.lines() {
        match line.trim_start().strip_prefix("token: ") {
            Some(_) => out.push_str(&format!("    token: {token}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let path = k8s.dir.join(format!("kubeconfig-{name}"));
    std::fs::write(&path, out).unwrap();
    client_from(&path).await
}

/// Creates namespace `name` (each test has its own; the cluster is fresh per test binary).
pub async fn namespace(client: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
    name.to_owned()
}

/// The operator as `sluice-operator run --namespace NS` runs it (both controllers, the metrics
/// server, leader election when asked for): the binary's own [`runner::start`], with the metrics
/// server on a free loopback port. Stopped at once when dropped.
pub struct Operator {
    pub ctx: Arc<Context<KafkaAdminInspector>>,
    pub metrics: Arc<Metrics>,
    pub metrics_addr: SocketAddr,
    running: Running,
    client: Client,
    lease: Option<LeaseConfig>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub bootstrap_override: Option<String>,
    /// Run only while holding this lease (`--leader-election`).
    pub lease: Option<LeaseConfig>,
}

impl Operator {
    pub async fn start(client: Client, namespace: &str, options: Options) -> Operator {
        let config = runner::Config {
            namespace: Some(namespace.to_owned()),
            settings: Settings {
                broker_image: DEFAULT_BROKER_IMAGE.to_owned(),
                resync_interval: Duration::from_secs(300),
                bootstrap_override: options.bootstrap_override,
            },
            metrics: MetricsListener::Addr("127.0.0.1:0".to_owned()),
            lease: options.lease.clone(),
        };
        let running = runner::start(client.clone(), config).await.unwrap();
        Operator {
            ctx: running.cluster_context().clone(),
            metrics: running.metrics().clone(),
            metrics_addr: running.metrics_addr(),
            running,
            client,
            lease: options.lease,
        }
    }

    /// Reconciles run so far, from this operator's metrics.
    pub fn reconciles(&self) -> u64 {
        metric(
            &self.metrics.encode(),
            "sluice_operator_reconciles_total{kind=\"KafkaCluster\"}",
        )
    }

    pub fn reconcile_errors(&self) -> u64 {
        self.reconcile_errors_of("KafkaCluster")
    }

    /// Failed reconciles of one kind, `KafkaCluster` or `Topic`.
    pub fn reconcile_errors_of(&self, kind: &str) -> u64 {
        metric(
            &self.metrics.encode(),
            &format!("sluice_operator_reconcile_errors_total{{kind=\"{kind}\"}}"),
        )
    }

    /// One reconcile of `kc` through the controller's own entry point, as a watch event or the
    /// resync would run it.
    pub async fn reconcile(&self, kc: KafkaCluster) {
        kafka_cluster::reconcile(Arc::new(kc), self.ctx.clone())
            .await
            .unwrap();
    }

    /// `GET path` on the metrics address: status line and body.
    pub async fn http_get(&self, path: &str) -> String {
        http_get(self.metrics_addr, path).await
    }

    /// Stops as SIGTERM does in `main`: the controllers end, then the lease (if any) is
    /// released.
    pub async fn shut_down(self) {
        self.running.stop().await.unwrap();
        // `stop` only logs a lease it could not release, as the binary does; here that fails.
        if let Some(lease) = &self.lease {
            let leases: Api<Lease> = Api::namespaced(self.client.clone(), &lease.namespace);
            let holder = leases
                .get(&lease.name)
                .await
                .unwrap()
                .spec
                .and_then(|s| s.holder_identity);
            assert_ne!(
                holder.as_deref(),
                Some(lease.identity.as_str()),
                "the lease was not released"
            );
        }
    }

    /// Stops without releasing the lease, like a crashed or killed process.
    pub fn kill(self) {
        self.running.abort();
    }
}

/// The value of one counter line of an OpenMetrics text, 0 when absent.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
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

/// `server.properties` as a map (comments skipped).
pub fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Hex SHA-256, computed here independently of the operator's code.
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

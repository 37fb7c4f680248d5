//! A real etcd + kube-apiserver (+ kube-controller-manager) started with `scripts/k8s/up`,
//! once per test binary.
//!
//! Stopping it must not depend on the test process ending well (a panic in a static's setup,
//! an abort, Ctrl-C), so a small reaper process is started first: it waits for EOF on a pipe
//! whose write end only this process holds, which the kernel closes however the process ends,
//! then runs `scripts/k8s/down` and removes the directory (kept when `SLUICE_KEEP_K8S_DIR` is
//! set, for the logs). The reaper has its own process group, so a Ctrl-C meant for the tests
//! does not kill it.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct K8s {
    /// Where `up` keeps state, logs, `env` and `kubeconfig`.
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Whether kube-controller-manager runs (ownerReference garbage collection).
    pub gc: bool,
    /// Closing this (at process exit) makes the reaper stop the servers.
    _reaper: Mutex<ChildStdin>,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl K8s {
    /// Starts a fresh cluster in a new directory (on tmpfs when there is one: etcd fsyncs).
    pub fn start() -> Result<K8s, String> {
        let root = repo_root();
        let apiserver = root.join(".cache/k8s/bin/kube-apiserver");
        if !apiserver.exists() {
            return Err(format!(
                "{} is missing: run scripts/k8s/install first",
                apiserver.display()
            ));
        }
        let parent = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("sluice-k8s-topic-")
            .tempdir_in(parent)
            .map_err(|e| format!("cannot make a directory for the cluster: {e}"))?
            .keep();

        let reaper_script = r#"cat >/dev/null
"$0" "$1" >"$1.down.log" 2>&1 && rm -f "$1.down.log" && { [ -n "$SLUICE_KEEP_K8S_DIR" ] || rm -rf "$1"; }"#;
        let mut reaper = Command::new("bash")
            .arg("-c")
            .arg(reaper_script)
            .arg(root.join("scripts/k8s/down"))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the reaper for {}: {e}", dir.display()))?;
        let reaper_stdin = reaper.stdin.take().ok_or("reaper has no stdin")?;

        let up = Command::new(root.join("scripts/k8s/up"))
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run scripts/k8s/up: {e}"))?;
        if !up.status.success() {
            return Err(format!(
                "scripts/k8s/up {} failed ({}):\n{}",
                dir.display(),
                up.status,
                String::from_utf8_lossy(&up.stderr)
            ));
        }
        let env = std::fs::read_to_string(dir.join("env"))
            .map_err(|e| format!("cannot read {}/env: {e}", dir.display()))?;
        Ok(K8s {
            kubeconfig: dir.join("kubeconfig"),
            gc: env.lines().any(|l| l.trim() == "export SLUICE_K8S_GC=1"),
            dir,
            _reaper: Mutex::new(reaper_stdin),
        })
    }

    /// An admin client (group `system:masters`); call inside a tokio runtime.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

//! A real Kubernetes control plane on loopback: etcd, and kube-apiserver on it (TLS with a
//! self-signed serving certificate it makes itself, RBAC, a static token for the test
//! user in `system:masters`), for wharf-kube's cluster tests. The programs are built from
//! their Go modules (`Install::GoModule`); the API server writes a kubeconfig for the tests
//! into its work dir.

use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::process::Command;

use anyhow::{Context, ensure};

use super::Launch;
use super::registry::{TEST_USER, test_password};

/// The kubeconfig the tests use, in the API server's work dir.
pub(super) const KUBECONFIG: &str = "kubeconfig.yaml";

/// etcd on the service port (clients only; its peer port is never used by one member).
pub(super) fn etcd_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let url = format!("http://127.0.0.1:{}", launch.port);
    // Every start is a new cluster: what earlier test runs left (namespaces, pods filling
    // the node) never decides what a later run sees.
    let data = launch.work_dir.join("data");
    if data.exists() {
        fs::remove_dir_all(&data)
            .with_context(|| format!("clearing the old cluster in {}", data.display()))?;
    }
    Ok(vec![
        "--data-dir".into(),
        launch.work_dir.join("data").into(),
        "--listen-client-urls".into(),
        url.clone().into(),
        "--advertise-client-urls".into(),
        url.into(),
        "--listen-peer-urls".into(),
        "http://127.0.0.1:0".into(),
    ])
}

/// kube-apiserver on etcd: a service-account signing key (openssl), the test user's token
/// (the per-checkout test password) in `system:masters`, RBAC, and a kubeconfig for them.
pub(super) fn apiserver_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let dir = launch.work_dir;
    let key = dir.join("service-accounts.key");
    let public = dir.join("service-accounts.pub");
    if !key.is_file() || !public.is_file() {
        for args in [
            vec!["genrsa", "-out", "service-accounts.key", "2048"],
            vec![
                "rsa",
                "-in",
                "service-accounts.key",
                "-pubout",
                "-out",
                "service-accounts.pub",
            ],
        ] {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(dir)
                .output()
                .context("running openssl for the service-account key")?;
            ensure!(
                out.status.success(),
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let token = test_password(launch.ctx)?;
    fs::write(
        dir.join("tokens.csv"),
        format!("{token},{TEST_USER},{TEST_USER},system:masters\n"),
    )
    .context("writing the API server's token file")?;
    let server = format!("https://127.0.0.1:{}", launch.port);
    fs::write(
        dir.join(KUBECONFIG),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: wharf-test\n  cluster:\n    server: {server}\n    certificate-authority: {}\ncontexts:\n- name: wharf-test\n  context:\n    cluster: wharf-test\n    user: {TEST_USER}\ncurrent-context: wharf-test\nusers:\n- name: {TEST_USER}\n  user:\n    token: {token}\n",
            dir.join("certs").join("apiserver.crt").display()
        ),
    )
    .context("writing the test kubeconfig")?;
    let etcd = launch.port_of("etcd-server")?;
    let arg = |k: &str, v: String| -> OsString { format!("--{k}={v}").into() };
    Ok(vec![
        arg("etcd-servers", format!("http://127.0.0.1:{etcd}")),
        arg("bind-address", "127.0.0.1".into()),
        arg("advertise-address", "127.0.0.1".into()),
        // No `kubernetes` Service endpoints for a loopback address (nothing runs in-cluster).
        arg("endpoint-reconciler-type", "none".into()),
        arg("secure-port", launch.port.to_string()),
        arg("cert-dir", dir.join("certs").display().to_string()),
        arg("authorization-mode", "RBAC".into()),
        arg(
            "token-auth-file",
            dir.join("tokens.csv").display().to_string(),
        ),
        arg(
            "service-account-issuer",
            "https://kubernetes.default.svc".into(),
        ),
        arg("service-account-key-file", public.display().to_string()),
        arg(
            "service-account-signing-key-file",
            key.display().to_string(),
        ),
        arg("service-cluster-ip-range", "10.96.0.0/16".into()),
    ])
}

/// `GET https://addr/readyz` (anonymous, as RBAC's `system:public-info-viewer` allows) over
/// TLS, the serving certificate not checked (it is the server's own self-signed one; the
/// tests check it through the kubeconfig).
pub(super) fn tls_ready(addr: SocketAddr, path: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(format!("https://{addr}{path}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() && body.trim() == "ok" {
            Ok(())
        } else {
            Err(format!(
                "GET {path} answered {status}: {}",
                body.chars().take(200).collect::<String>().trim()
            ))
        }
    })
}

/// kube-controller-manager on the API server (the test kubeconfig, which the API server's
/// work dir holds): Deployments make ReplicaSets and pods, rollouts progress. Its own
/// serving certificate is self-made too; `/healthz` is always allowed.
pub(super) fn controller_manager_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let apiserver = launch.work_dir_of("kube-apiserver");
    let arg = |k: &str, v: String| -> OsString { format!("--{k}={v}").into() };
    Ok(vec![
        arg(
            "kubeconfig",
            apiserver.join(KUBECONFIG).display().to_string(),
        ),
        arg("bind-address", "127.0.0.1".into()),
        arg("secure-port", launch.port.to_string()),
        arg(
            "cert-dir",
            launch.work_dir.join("certs").display().to_string(),
        ),
        arg("leader-elect", "false".into()),
        arg(
            "service-account-private-key-file",
            apiserver.join("service-accounts.key").display().to_string(),
        ),
        arg(
            "root-ca-file",
            apiserver.join("certs/apiserver.crt").display().to_string(),
        ),
        arg("use-service-account-credentials", "false".into()),
    ])
}

/// kube-scheduler on the test kubeconfig: pods get the (kwok) node.
pub(super) fn scheduler_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let apiserver = launch.work_dir_of("kube-apiserver");
    let arg = |k: &str, v: String| -> OsString { format!("--{k}={v}").into() };
    Ok(vec![
        arg(
            "kubeconfig",
            apiserver.join(KUBECONFIG).display().to_string(),
        ),
        arg("bind-address", "127.0.0.1".into()),
        arg("secure-port", launch.port.to_string()),
        arg(
            "cert-dir",
            launch.work_dir.join("certs").display().to_string(),
        ),
        arg("leader-elect", "false".into()),
    ])
}

/// The node kwok plays: 32 CPUs, 256 GiB, 1000 pods (every test's), and 8 GPUs (for GPU workloads'
/// node selectors and tolerations).
const KWOK_NODE: &str = r#"{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake"},
   "labels": {"type": "kwok", "kubernetes.io/hostname": "kwok-node-0", "nvidia.com/gpu.present": "true"}},
 "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000", "nvidia.com/gpu": "8"},
   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000", "nvidia.com/gpu": "8"}}}"#;

/// kwok playing one node and its kubelet: pods scheduled to it become Running and Ready
/// (kwok's default stages). The node is created here, before kwok starts.
pub(super) fn kwok_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let kubeconfig = launch.work_dir_of("kube-apiserver").join(KUBECONFIG);
    let kubectl = super::BACKENDS
        .iter()
        .find(|b| b.name == "kubectl")
        .context("the kubectl backend")?
        .install
        .program(launch.ctx);
    let node = launch.work_dir.join("node.json");
    fs::write(&node, KWOK_NODE).context("writing the kwok node")?;
    let out = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "apply",
            "--server-side",
            "--field-manager=wharf-harness",
            "-f",
        ])
        .arg(&node)
        .output()
        .with_context(|| format!("running {}", kubectl.display()))?;
    ensure!(
        out.status.success(),
        "creating the kwok node: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    // kwok's own "fast" stages (node initialize; pod ready, complete, delete) and its node
    // heartbeat, from its module as the harness fetched it: the `kwok` program embeds none.
    // With a node lease renewed (as a kubelet does) and the heartbeat, the node lifecycle
    // controller never finds the node gone stale and marks its pods not ready mid-test.
    let stages_dir = launch
        .ctx
        .cache_dir
        .join("go/mod/sigs.k8s.io/kwok@v0.8.0/kustomize/stage");
    let mut stages = String::new();
    for file in [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-complete.yaml",
        "pod/fast/pod-delete.yaml",
    ] {
        let path = stages_dir.join(file);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading kwok's stage {}", path.display()))?;
        stages.push_str("---\n");
        stages.push_str(&text);
        stages.push('\n');
    }
    let config = launch.work_dir.join("stages.yaml");
    fs::write(&config, stages).context("writing kwok's stages")?;
    let arg = |k: &str, v: String| -> OsString { format!("--{k}={v}").into() };
    Ok(vec![
        arg("kubeconfig", kubeconfig.display().to_string()),
        arg("config", config.display().to_string()),
        arg("manage-all-nodes", "true".into()),
        arg("node-lease-duration-seconds", "40".into()),
        arg("server-address", format!("127.0.0.1:{}", launch.port)),
        arg("cidr", "10.244.0.0/16".into()),
        arg("node-ip", "10.244.0.1".into()),
    ])
}

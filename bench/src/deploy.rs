//! The deploy benchmark's operations: one deployment to the harness's control plane as a CI
//! step runs it (plan, apply, rollout to healthy, in one process), and the same objects
//! rendered to a file for `kubectl apply --server-side` to apply beside it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use wharf_core::deploy::{DeployRequest, HealthState};
use wharf_core::{DeployTarget, Digest, Environment, Reference};
use wharf_kube::cluster::Cluster;
use wharf_kube::render::{Workload, render};

fn workload(namespace: &str) -> anyhow::Result<Workload> {
    Ok(serde_json::from_value(serde_json::json!({
        "namespace": namespace,
        "replicas": 2,
        "readiness": {"path": "/healthz"},
    }))?)
}

fn request(content: &str) -> anyhow::Result<DeployRequest> {
    let image: Reference = format!(
        "registry.example/bench/model@{}",
        Digest::sha256_of(content.as_bytes())
    )
    .parse()?;
    Ok(DeployRequest::new("bench", image, Environment::Dev)?)
}

/// Plan, apply and wait for `content`'s image in `namespace`; prints the milliseconds of
/// each.
pub(crate) fn deploy(kubeconfig: &Path, namespace: &str, content: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let target = Cluster::from_kubeconfig(Some(kubeconfig), None, workload(namespace)?).await?;
        let request = request(content)?;
        let start = Instant::now();
        let plan = target.plan(&request).await?;
        let planned = start.elapsed();
        let deployed = target.apply(&plan).await?;
        let applied = start.elapsed();
        let health = target.wait(&deployed, Duration::from_secs(120)).await?;
        let done = start.elapsed();
        anyhow::ensure!(
            health.state == HealthState::Healthy,
            "not healthy: {}",
            health.message
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "plan {:.1} apply {:.1} rollout {:.1}",
            ms(planned),
            ms(applied - planned),
            ms(done - applied)
        );
        Ok(())
    })
}

/// The objects `deploy` applies, as multi-document YAML in `file`.
pub(crate) fn render_to(namespace: &str, content: &str, file: &Path) -> anyhow::Result<()> {
    let docs: Vec<String> = render(&request(content)?, &workload(namespace)?)?
        .iter()
        .map(|m| serde_yaml::to_string(&m.value))
        .collect::<Result<_, _>>()?;
    std::fs::write(file, docs.join("---\n")).with_context(|| format!("writing {}", file.display()))
}

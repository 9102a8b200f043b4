#![allow(clippy::unwrap_used)]
//! `cargo xtask pipeline` with `[deploy] target = "kubernetes"` against the harness's real
//! control plane (kube-apiserver, controller-manager, scheduler, kwok's node): the run
//! deploys by digest and waits for the rollout; a second run whose pods cannot be scheduled
//! fails its deploy stage after the progress deadline and rolls back, and the run record
//! says so.

mod support;

use std::process::{Command, Output};

use support::{backend, show, xtask};

fn kubectl(args: &[&str]) -> Output {
    Command::new(backend("WHARF_TEST_KUBECTL"))
        .arg("--kubeconfig")
        .arg(backend("WHARF_TEST_KUBECONFIG"))
        .args(args)
        .output()
        .unwrap()
}

/// Deletes the test's namespace when the test ends, passed or not (without waiting).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

fn run(
    scratch: &std::path::Path,
    namespace: &str,
    extra: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    let mut cmd = xtask(scratch, "pipeline");
    cmd.arg("--json")
        .env("WHARF__DEPLOY__TARGET", "kubernetes")
        .env(
            "WHARF__DEPLOY__KUBECONFIG",
            backend("WHARF_TEST_KUBECONFIG"),
        )
        .env("WHARF__DEPLOY__NAMESPACE", namespace)
        .env("WHARF__DEPLOY__ROLLOUT_TIMEOUT_SECONDS", "90")
        .env("WHARF__DEPLOY__WORKLOAD__PROGRESS_DEADLINE_SECONDS", "4");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&out)));
    (out, v)
}

fn deploy_stage(v: &serde_json::Value) -> serde_json::Value {
    v["run"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deploy")
        .cloned()
        .unwrap_or_else(|| panic!("no deploy stage in {v}"))
}

#[test]
fn the_pipeline_deploys_to_a_cluster_and_rolls_back_a_rollout_that_cannot_finish() {
    let scratch = tempfile::tempdir().unwrap();
    let namespace = format!("pipeline-{}", std::process::id());
    let made = kubectl(&["create", "namespace", &namespace]);
    assert!(made.status.success(), "{}", show(&made));
    let _cleanup = Cleanup(namespace.clone());

    let (out, v) = run(scratch.path(), &namespace, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let deploy = deploy_stage(&v);
    assert_eq!(deploy["status"], "passed", "{deploy}");
    assert_eq!(deploy["details"]["target"], "kubernetes", "{deploy}");
    assert_eq!(deploy["details"]["health"]["state"], "healthy", "{deploy}");
    let digest = v["run"]["image_digest"].as_str().unwrap();
    assert_eq!(deploy["details"]["verified"]["image"], digest, "{deploy}");
    let image = kubectl(&[
        "-n",
        &namespace,
        "get",
        "deployment",
        "fraud-detector",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    let image = String::from_utf8(image.stdout).unwrap();
    assert!(image.ends_with(&format!("@{digest}")), "{image}");

    // Pods pinned to a node pool the cluster does not have: never scheduled, never
    // available; the controller marks the deadline passed and the stage rolls back.
    let (out, v) = run(
        scratch.path(),
        &namespace,
        &[("WHARF__DEPLOY__WORKLOAD__NODE_SELECTOR__POOL", "gpu-a100")],
    );
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let deploy = deploy_stage(&v);
    assert_eq!(deploy["status"], "failed", "{deploy}");
    let summary = deploy["summary"].as_str().unwrap();
    assert!(
        summary.contains("exceeded its progress deadline") && summary.contains("rolled back to"),
        "{summary}"
    );
    assert_eq!(
        deploy["details"]["health"]["state"], "unhealthy",
        "{deploy}"
    );
    assert_eq!(deploy["details"]["previous_revision"], "1", "{deploy}");
    assert_eq!(deploy["details"]["rollback"]["to"], "1", "{deploy}");
    assert_eq!(
        deploy["details"]["rollback"]["health"]["state"], "healthy",
        "{deploy}"
    );
    let selector = kubectl(&[
        "-n",
        &namespace,
        "get",
        "deployment",
        "fraud-detector",
        "-o",
        "jsonpath={.spec.template.spec.nodeSelector}",
    ]);
    assert_eq!(
        String::from_utf8(selector.stdout).unwrap(),
        "",
        "the rollback kept the bad pod template"
    );
    let ready = kubectl(&[
        "-n",
        &namespace,
        "rollout",
        "status",
        "deployment/fraud-detector",
        "--timeout=60s",
    ]);
    assert!(ready.status.success(), "{}", show(&ready));
}

/// `[deploy] target = "eks"` asks the EKS API (moto here, through `[deploy] endpoint_url`)
/// for the cluster with the AWS SDK's default credentials chain (the variables below); a
/// cluster that does not exist stops the run before anything is built, on one line naming
/// cluster and region, and the secret key appears nowhere.
#[test]
fn an_eks_target_asks_describe_cluster_with_the_sdk_credentials() {
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = xtask(scratch.path(), "pipeline");
    let out = cmd
        .env("WHARF__DEPLOY__TARGET", "eks")
        .env("WHARF__DEPLOY__CLUSTER", "no-such-cluster")
        .env("WHARF__DEPLOY__REGION", "eu-west-1")
        .env("WHARF__DEPLOY__ENDPOINT_URL", backend("WHARF_TEST_MOTO"))
        .env("AWS_ACCESS_KEY_ID", "AKIAWHARFPIPELINE01")
        .env("AWS_SECRET_ACCESS_KEY", "wharf-canary-eks-secret")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains(
            "DescribeCluster of EKS cluster no-such-cluster in eu-west-1: ResourceNotFoundException"
        ),
        "{text}"
    );
    assert!(!text.contains("wharf-canary-eks-secret"), "{text}");
}

#![allow(clippy::unwrap_used)]
//! The GitOps target on real git repositories: the `DeployTarget` contract, the layout and
//! commit trailers, a no-op second deployment, rollback as a revert, pushing to a remote,
//! and several processes deploying into one repository at once — one of them killed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::executor::block_on;
use wharf_core::deploy::DeployRequest;
use wharf_core::{DeployTarget, Digest, Environment, Reference};
use wharf_kube::gitops::{GitOps, TRAILER_IMAGE, TRAILER_ROLLBACK_OF, TRAILER_RUN_ID};
use wharf_kube::render::{SETTING_RUN_ID, Workload};

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn image(content: &[u8]) -> Reference {
    format!(
        "registry.example/models/fraud@{}",
        Digest::sha256_of(content)
    )
    .parse()
    .unwrap()
}

fn request(app: &str, content: &[u8], run: &str) -> DeployRequest {
    let mut r = DeployRequest::new(app, image(content), Environment::Dev).unwrap();
    r.settings.insert(SETTING_RUN_ID.into(), run.into());
    r
}

fn deploy(target: &GitOps, req: &DeployRequest) -> wharf_core::Deployment {
    block_on(async { target.apply(&target.plan(req).await?).await }).unwrap()
}

#[test]
fn gitops_meets_the_deploy_target_contract() {
    let dir = tempfile::tempdir().unwrap();
    let target = GitOps::open(dir.path().join("repo"), Workload::default()).unwrap();
    let repo: Reference = "registry.example/models/fraud".parse().unwrap();
    block_on(wharf_core::conformance::deploy_target(
        &target, "fraud", &repo,
    ));
}

#[test]
fn each_deployment_is_one_commit_with_trailers_and_the_same_digest_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let target = GitOps::open(&repo, Workload::default()).unwrap();
    let d1 = deploy(&target, &request("fraud", b"v1", "run-1"));
    for file in ["deployment.yaml", "service.yaml", "kustomization.yaml"] {
        assert!(repo.join("dev/fraud").join(file).is_file(), "{file}");
    }
    let kustomization = std::fs::read_to_string(repo.join("dev/fraud/kustomization.yaml")).unwrap();
    assert!(
        kustomization.contains("- deployment.yaml\n- service.yaml"),
        "{kustomization}"
    );
    let trailer = |key: &str| {
        git(
            &repo,
            &[
                "log",
                "-1",
                &format!("--format=%(trailers:key={key},valueonly)"),
            ],
        )
    };
    assert_eq!(trailer(TRAILER_IMAGE), image(b"v1").to_string());
    assert_eq!(trailer(TRAILER_RUN_ID), "run-1");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), d1.revision);
    assert!(
        git(&repo, &["log", "-1", "--format=%s"]).contains(&Digest::sha256_of(b"v1").to_string())
    );

    // The same digest from another run: no changes planned, no commit.
    let again = request("fraud", b"v1", "run-2");
    let plan = block_on(target.plan(&again)).unwrap();
    assert!(plan.is_noop(), "{plan}");
    let d = block_on(target.apply(&plan)).unwrap();
    assert_eq!(d.revision, d1.revision);
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "1");

    // A new digest: the plan names the image field, old and new.
    let plan = block_on(target.plan(&request("fraud", b"v2", "run-3"))).unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("Deployment/fraud spec.template.spec.containers[0].image")
            && text.contains(&Digest::sha256_of(b"v1").to_string())
            && text.contains(&Digest::sha256_of(b"v2").to_string()),
        "{text}"
    );
    let d2 = block_on(target.apply(&plan)).unwrap();
    assert_eq!(d2.previous_revision.as_deref(), Some(d1.revision.as_str()));

    // Rollback: a revert commit that says what it reverts; the files are v1's again.
    let back = block_on(target.rollback(&d2)).unwrap();
    assert_eq!(trailer(TRAILER_ROLLBACK_OF), d2.revision);
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "3");
    assert!(
        block_on(target.plan(&request("fraud", b"v1", "run-4")))
            .unwrap()
            .is_noop()
    );
    assert_eq!(
        back.previous_revision.as_deref(),
        Some(d2.revision.as_str())
    );
}

#[test]
fn commits_are_pushed_to_the_remote_and_a_failed_push_fails_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote.git");
    let out = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(out.success());
    let target = GitOps::open(dir.path().join("repo"), Workload::default())
        .unwrap()
        .with_remote(remote.display().to_string());
    let d = deploy(&target, &request("fraud", b"v1", "run-1"));
    assert_eq!(git(&remote, &["rev-parse", "main"]), d.revision);

    let gone = GitOps::open(dir.path().join("repo2"), Workload::default())
        .unwrap()
        .with_remote(dir.path().join("no-such-remote").display().to_string());
    let err = block_on(async {
        gone.apply(&gone.plan(&request("fraud", b"v1", "r")).await?)
            .await
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("committed in") && err.contains("but the push to"),
        "{err}"
    );
}

/// The health of a GitOps deployment is what Argo CD or Flux would sync: a stray untracked
/// file does not matter, an uncommitted edit of a tracked manifest does, and says which.
#[test]
fn health_counts_uncommitted_edits_not_untracked_files() {
    use wharf_core::deploy::HealthState;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let target = GitOps::open(&repo, Workload::default()).unwrap();
    let d = deploy(&target, &request("fraud", b"v1", "r"));
    std::fs::write(repo.join("dev/fraud/notes.txt"), "scratch").unwrap();
    let health = block_on(target.status(&d)).unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);
    let manifest = repo.join("dev/fraud/deployment.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("replicas: 1", "replicas: 9")).unwrap();
    let health = block_on(target.status(&d)).unwrap();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(
        health.message.contains("dev/fraud/deployment.yaml"),
        "{}",
        health.message
    );
}

/// Users' own manifests are committed beside the rendered ones and listed in the
/// kustomization, so `kubectl kustomize` builds them too.
#[test]
fn users_manifests_are_committed_and_listed_in_the_kustomization() {
    let kubectl = std::env::var("WHARF_TEST_KUBECTL").expect(
        "WHARF_TEST_KUBECTL is not set: run `cargo xtask test`, or `cargo xtask backends up` and eval \"$(cargo xtask backends env)\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.yaml");
    std::fs::write(
        &extra,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fraud-thresholds\ndata:\n  block: \"0.92\"\n",
    )
    .unwrap();
    let mut workload = Workload::default();
    workload.manifests = wharf_kube::render::load_manifests(&[extra]).unwrap();
    let repo = dir.path().join("repo");
    let target = GitOps::open(&repo, workload).unwrap();
    deploy(&target, &request("fraud", b"v1", "r1"));
    let kustomization = std::fs::read_to_string(repo.join("dev/fraud/kustomization.yaml")).unwrap();
    assert!(
        kustomization.contains("configmap-fraud-thresholds.yaml"),
        "{kustomization}"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(repo.join("dev/fraud"))
        .output()
        .unwrap();
    let built = String::from_utf8(out.stdout).unwrap();
    assert!(
        built.contains("name: fraud-thresholds") && built.contains("kind: Deployment"),
        "{built}"
    );
}

/// A bad workload is refused before anything is written.
#[test]
fn a_bad_workload_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let workload: Workload =
        serde_json::from_str(r#"{"resources": {"limits": {"memory": "lots"}}}"#).unwrap();
    let target = GitOps::open(&repo, workload).unwrap();
    let err = block_on(target.plan(&request("fraud", b"v1", "r")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("deploy.workload.resources.limits.memory"),
        "{err}"
    );
    assert!(!repo.join("dev").exists());
}

/// The child side of the process tests: deploy `WHARF_KUBE_CHILD_APP` into
/// `WHARF_KUBE_CHILD_REPO` `WHARF_KUBE_CHILD_ROUNDS` times (a new digest each round).
#[test]
fn child_process_deployer() {
    let (Ok(repo), Ok(app), Ok(rounds)) = (
        std::env::var("WHARF_KUBE_CHILD_REPO"),
        std::env::var("WHARF_KUBE_CHILD_APP"),
        std::env::var("WHARF_KUBE_CHILD_ROUNDS"),
    ) else {
        return; // run as a test of its own: nothing to do (the parent tests drive it)
    };
    let target = GitOps::open(&repo, Workload::default()).unwrap();
    for i in 0..rounds.parse::<u32>().unwrap() {
        deploy(
            &target,
            &request(
                &app,
                format!("{app}-{i}").as_bytes(),
                &format!("{app}-run-{i}"),
            ),
        );
    }
}

fn child(repo: &Path, app: &str, rounds: u32) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_process_deployer", "--nocapture"])
        .env("WHARF_KUBE_CHILD_REPO", repo)
        .env("WHARF_KUBE_CHILD_APP", app)
        .env("WHARF_KUBE_CHILD_ROUNDS", rounds.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Four processes deploying at once into one repository that none of them has created yet:
/// one creates it and the others find it whole, every deployment is a commit of its own,
/// none lost, the history linear.
#[test]
fn processes_side_by_side_each_get_their_commits() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let children: Vec<_> = (0..4)
        .map(|i| child(&repo, &format!("app-{i}"), 3).spawn().unwrap())
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "12");
    assert_eq!(
        git(&repo, &["rev-list", "--merges", "--count", "HEAD"]),
        "0"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

/// A deployer killed with SIGKILL mid-run: the next deployment succeeds, and every commit in
/// the history is whole (each names its image).
#[test]
fn a_killed_deployer_leaves_nothing_that_blocks_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let target = GitOps::open(&repo, Workload::default()).unwrap();
    for delay in [50u64, 120, 250] {
        let mut c = child(&repo, "victim", 1000).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        deploy(
            &target,
            &request("survivor", format!("{delay}").as_bytes(), "r"),
        );
    }
    let images = git(
        &repo,
        &[
            "log",
            &format!("--format=%(trailers:key={TRAILER_IMAGE},valueonly)"),
        ],
    );
    assert!(
        images
            .lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.contains("@sha256:")),
        "{images}"
    );
    assert!(images.lines().filter(|l| !l.is_empty()).count() >= 3);
    git(&repo, &["fsck", "--no-progress"]);
}

/// Every commit builds with kustomize (`kubectl kustomize`, the harness's kubectl 1.37 built
/// from its module), and what it builds is what was rendered: the image by digest, the
/// InferenceService's canary share.
#[test]
fn kustomize_builds_every_commit() {
    let kubectl = std::env::var("WHARF_TEST_KUBECTL").expect(
        "WHARF_TEST_KUBECTL is not set: run `cargo xtask test`, or `cargo xtask backends up` and eval \"$(cargo xtask backends env)\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let kserve: Workload =
        serde_json::from_str(r#"{"kind": "inference-service", "canary_traffic_percent": 10}"#)
            .unwrap();
    let deployments = GitOps::open(&repo, Workload::default()).unwrap();
    let inference = GitOps::open(&repo, kserve).unwrap();
    let build = |app: &str| {
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(repo.join("dev").join(app))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {app}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for (i, content) in [b"v1", b"v2"].into_iter().enumerate() {
        deploy(
            &deployments,
            &request("fraud", content, &format!("run-{i}")),
        );
        deploy(&inference, &request("scorer", content, &format!("run-{i}")));
        let built = build("fraud");
        assert!(built.contains(&image(content).to_string()), "{built}");
        assert!(built.contains("kind: Deployment") && built.contains("kind: Service"));
        let built = build("scorer");
        assert!(
            built.contains("kind: InferenceService") && built.contains("canaryTrafficPercent: 10"),
            "{built}"
        );
    }
}

/// What a GitOps commit holds applies to a real API server (kube-apiserver 1.37 on etcd,
/// from the harness) as Argo CD or Flux would apply it (`kubectl apply --server-side -k`),
/// giving a Deployment with the image by digest; after the next deployment, `kubectl diff
/// --server-side` against the live objects shows the image change our plan named.
#[test]
fn gitops_commits_apply_to_a_real_api_server() {
    let kubectl =
        std::env::var("WHARF_TEST_KUBECTL").expect("WHARF_TEST_KUBECTL: run `cargo xtask test`");
    let kubeconfig = std::env::var("WHARF_TEST_KUBECONFIG")
        .expect("WHARF_TEST_KUBECONFIG: run `cargo xtask test`");
    let run = |args: &[&str]| {
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let namespace = format!(
        "gitops-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (code, _, err) = run(&["create", "namespace", &namespace]);
    assert_eq!(code, Some(0), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let workload: Workload =
        serde_json::from_str(&format!(r#"{{"namespace": "{namespace}", "replicas": 2}}"#)).unwrap();
    let target = GitOps::open(&repo, workload).unwrap();
    let app = repo.join("dev/fraud").display().to_string();

    deploy(&target, &request("fraud", b"v1", "run-1"));
    let (code, _, err) = run(&[
        "apply",
        "--server-side",
        "--field-manager=argocd",
        "-k",
        &app,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (_, live, _) = run(&[
        "get",
        "deployment",
        "fraud",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.spec.replicas}",
    ]);
    assert_eq!(live, format!("{} 2", image(b"v1")));
    // The harness's controller manager, scheduler and kwok node roll it out to Ready.
    let (code, out, err) = run(&[
        "rollout",
        "status",
        "deployment/fraud",
        "-n",
        &namespace,
        "--timeout=60s",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("successfully rolled out"), "{out}");

    let plan = block_on(target.plan(&request("fraud", b"v2", "run-2"))).unwrap();
    deploy(&target, &request("fraud", b"v2", "run-2"));
    let (code, diff, err) = run(&[
        "diff",
        "--server-side",
        "--field-manager=argocd",
        "-k",
        &app,
    ]);
    assert_eq!(
        code,
        Some(1),
        "kubectl diff exits 1 when there are differences: {err}"
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| (l.starts_with('+') || l.starts_with('-')) && l.contains("image:"))
        .collect();
    assert_eq!(changed.len(), 2, "{diff}");
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with('-') && l.contains(Digest::sha256_of(b"v1").hex()))
    );
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with('+') && l.contains(Digest::sha256_of(b"v2").hex()))
    );
    assert!(
        plan.changes
            .iter()
            .any(|c| c.field == "spec.template.spec.containers[0].image"),
        "{plan}"
    );
    let (code, _, err) = run(&["delete", "namespace", &namespace, "--wait=false"]);
    assert_eq!(code, Some(0), "{err}");
}

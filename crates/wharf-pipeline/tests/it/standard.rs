//! `Pipeline::standard`: the project's whole chain from its `wharf.toml` — package into the
//! OCI layout, sign with a key file, attest, verify — and refusals before the run recorded
//! as runs of their own, never with the secret that was refused.

use std::path::Path;

use wharf_core::{Actor, Environment, ErrorKind, RunOutcome, Secret, StageStatus};
use wharf_pipeline::stages::TagPolicy;
use wharf_pipeline::{Config, Pipeline, PipelineError, RunOptions};

use crate::examples_dir;

/// The example project, with its audit log, keys and layout under `dir`, and the key
/// password read from a variable no test sets.
pub(crate) fn project(dir: &Path) -> Config {
    let mut config = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    config.audit.dir = Some(dir.join("audit"));
    config.audit.checkpoint_key = Some(dir.join("checkpoint.pem").display().to_string());
    config.sign.key = Some(dir.join("cosign.key").display().to_string());
    config.sign.password_env = Some("WHARF_TEST_UNSET_PASSWORD_VARIABLE".into());
    config.registry.layout = Some(dir.join("oci"));
    config.scan.reports_dir = Some(dir.join("scan"));
    config
}

/// Why a dev run of `config` is refused before it starts (it must be).
pub(crate) async fn refused(config: &Config) -> String {
    Pipeline::standard(
        config,
        Environment::Dev,
        Actor::local("u"),
        RunOptions::new(),
    )
    .await
    .err()
    .expect("refused")
    .to_string()
}

fn records(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("audit/records"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_standard_pipeline_packages_signs_attests_and_verifies_into_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    let standard = Pipeline::standard(
        &config,
        Environment::Dev,
        Actor::local("u"),
        RunOptions::new()
            .tag(TagPolicy::Fixed("v1".into()))
            .source_commit("0123456789abcdef0123456789abcdef01234567"),
    )
    .await
    .unwrap();
    assert!(
        standard
            .notices
            .iter()
            .any(|n| n.contains("signing key") && n.contains("has no password")),
        "{:?}",
        standard.notices
    );
    let report = standard.builder.build().unwrap().run().await.unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Passed, "{report:?}");
    let names: Vec<&str> = report
        .record
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "governance",
            "package",
            "scan",
            "sign",
            "attest",
            "verify-signature",
            "deploy"
        ]
    );
    assert_eq!(
        report.record.source_commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    let index =
        std::fs::read_to_string(dir.path().join("oci/models/fraud-detector/index.json")).unwrap();
    let digest = report.record.image_digest.as_ref().unwrap().to_string();
    assert!(index.contains("\"v1\""), "tagged as asked: {index}");
    let sig_tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
    assert!(index.contains(&sig_tag), "signed: {index}");
    assert!(
        wharf_sign::public_path(&dir.path().join("cosign.key")).is_file(),
        "the public key is beside the generated key"
    );
    assert_eq!(records(dir.path()), 1);
}

#[tokio::test]
async fn prod_without_a_key_password_is_refused_and_the_refusal_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    let err = Pipeline::standard(
        &config,
        Environment::Prod,
        Actor::local("u"),
        RunOptions::new(),
    )
    .await
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("prod signs only with a password-protected key: set WHARF_TEST_UNSET_PASSWORD_VARIABLE (it is not set)")
            && text.contains("(refused before the run started; recorded as audit record #0 sha256:"),
        "{text}"
    );
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let PipelineError::Refused { recorded, .. } = err else {
        panic!("not a refusal: {text}")
    };
    let report = recorded.unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Failed);
    assert_eq!(report.record.stages.len(), 1);
    assert_eq!(report.record.stages[0].name, "setup");
    assert_eq!(report.record.stages[0].status, StageStatus::Failed);
    assert_eq!(records(dir.path()), 1, "one record: the refusal");
}

#[tokio::test]
async fn a_wrong_key_password_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    // First use makes the key, protected by the right password.
    let right = RunOptions::new().key_password(Secret::new("right-password-x1"));
    Pipeline::standard(&config, Environment::Dev, Actor::local("u"), right)
        .await
        .unwrap();
    let canary = "wharf-canary-password-7Hq2";
    let err = Pipeline::standard(
        &config,
        Environment::Dev,
        Actor::local("u"),
        RunOptions::new().key_password(Secret::new(canary)),
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("[sign] key "), "{shown}");
    assert!(!shown.contains(canary), "the password shows: {shown}");
    for entry in std::fs::read_dir(dir.path().join("audit/records")).unwrap() {
        let record = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!record.contains(canary), "recorded: {record}");
    }
}

#[tokio::test]
async fn keyless_without_a_trust_root_names_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    config.sign.key = Some("keyless".into());
    let err = Pipeline::standard(
        &config,
        Environment::Dev,
        Actor::local("u"),
        RunOptions::new().id_token(Secret::new("header.payload.signature")),
    )
    .await
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.starts_with("[sign] key = \"keyless\" needs trusted_root: "),
        "{text}"
    );
    assert!(!text.contains("header.payload"), "{text}");
    assert_eq!(records(dir.path()), 1);
}

#[tokio::test]
async fn a_registry_url_needs_the_distribution_feature() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    config.registry.url = Some("http://127.0.0.1:9".into());
    let opened = config.open_registry().await;
    if cfg!(feature = "distribution") {
        // Opening a client does not connect: a run would fail at its first push.
        assert!(opened.is_ok(), "{:?}", opened.err());
    } else {
        let err = opened.expect_err("no HTTP client in this build");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("`distribution` feature"), "{err}");
    }
    assert_eq!(config.docker_reference("models/x"), "127.0.0.1:9/models/x");
    config.registry.url = Some("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com".into());
    assert_eq!(config.ecr_region().as_deref(), Some("eu-west-1"));
}

/// `eks`, `aks` and `gke` targets refuse to start, on one line, when `[deploy]` lacks what
/// finds the cluster or no credentials for its cloud were passed — before any API is called.
#[tokio::test]
async fn a_managed_cluster_target_names_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    config.deploy.target = Some("aks".into());
    config.deploy.subscription = Some("0b1f6471-1bf0-4dda-aec3-cb9272f09590".into());
    config.deploy.resource_group = Some("ml-prod".into());
    config.deploy.cluster = Some("scoring".into());
    let text = refused(&config).await;
    if cfg!(feature = "kubernetes") {
        assert!(
            text.contains("target = \"aks\" needs Azure credentials")
                && text.contains("RunOptions::cloud_credentials"),
            "{text}"
        );
    } else {
        assert!(text.contains("`kubernetes` feature"), "{text}");
    }
    assert!(!text.contains('\n'), "{text}");
    config.deploy.target = Some("gke".into());
    let text = refused(&config).await;
    if cfg!(feature = "kubernetes") {
        assert!(text.contains("needs [deploy] project"), "{text}");
    }
    config.deploy.target = Some("eks".into());
    config.deploy.cluster = None;
    let text = refused(&config).await;
    if cfg!(feature = "eks") {
        assert!(text.contains("needs [deploy] cluster"), "{text}");
    } else {
        assert!(text.contains("feature"), "{text}");
    }
}

/// `[deploy] overlays` (with `{environment}`): the overlay of the run's environment is built
/// over the rendered objects, and the GitOps repository gets what it built; an overlay that
/// does not build refuses the run before it starts, naming the overlay.
#[tokio::test]
async fn the_environments_kustomize_overlay_reaches_the_gitops_repository() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    let overlay = dir.path().join("overlays/dev");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "resources:\n- settings.yaml\ncommonAnnotations:\n  owner: ml-platform\n",
    )
    .unwrap();
    std::fs::write(
        overlay.join("settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: model-settings\ndata:\n  threshold: \"0.7\"\n",
    )
    .unwrap();
    config.deploy.gitops_repo = Some(dir.path().join("gitops"));
    config.deploy.overlays = Some(vec![format!(
        "{}/overlays/{{environment}}",
        dir.path().display()
    )]);
    let standard = Pipeline::standard(
        &config,
        Environment::Dev,
        Actor::local("u"),
        RunOptions::new(),
    )
    .await
    .unwrap();
    let report = standard.builder.build().unwrap().run().await.unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Passed, "{report:?}");
    let app = dir.path().join("gitops/dev").join(&config.project.name);
    let settings = std::fs::read_to_string(app.join("configmap-model-settings.yaml")).unwrap();
    assert!(settings.contains("owner: ml-platform"), "{settings}");
    let deployment = std::fs::read_to_string(app.join("deployment.yaml")).unwrap();
    assert!(deployment.contains("owner: ml-platform"), "{deployment}");

    std::fs::write(
        overlay.join("kustomization.yaml"),
        "images:\n- name: x\n  newTag: v2\n",
    )
    .unwrap();
    let text = refused(&config).await;
    assert!(
        text.contains("[deploy] overlays") && text.contains("images: not a field wharf builds"),
        "{text}"
    );
}

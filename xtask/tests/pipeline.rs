//! `cargo xtask pipeline` as a user runs it: the example passes, each invalid manifest is
//! blocked with its violation, bad input exits 2 with a one-line error, and every run
//! leaves exactly one audit record.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the pipeline with its audit log in `scratch/records` and its OCI layout in
/// `scratch/oci` (so tests share neither, and nothing is written into the checkout).
fn pipeline(scratch: &Path, args: &[&str]) -> Output {
    xtask(scratch, "pipeline").args(args).output().unwrap()
}

/// Point `cmd` at moto for every AWS API, with test credentials and no profile or instance
/// metadata (nothing may reach real AWS).
fn on_moto<'a>(cmd: &'a mut Command, moto: &str) -> &'a mut Command {
    cmd.env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
}

/// Assert the command exited with `code` and its stdout holds every one of `needles`;
/// on failure, show both streams.
fn expect_stdout(out: &Output, code: i32, needles: &[&str]) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{stdout}{stderr}");
    for needle in needles {
        assert!(
            stdout.contains(needle),
            "{needle:?} not in:\n{stdout}{stderr}"
        );
    }
}

fn records(scratch: &Path) -> usize {
    std::fs::read_dir(scratch.join("records/records"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn the_example_passes_in_every_environment() {
    let scratch = tempfile::tempdir().unwrap();
    for (i, env) in ["dev", "test", "prod"].into_iter().enumerate() {
        let out = pipeline(scratch.path(), &["--env", env]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{env}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("PASS  governance"), "{stdout}");
        assert!(
            stdout.contains("10 rules passed for fraud-detector 1.4.0"),
            "{stdout}"
        );
        assert!(stdout.contains("result PASSED (exit 0)"), "{stdout}");
        assert_eq!(records(scratch.path()), i + 1, "one audit record per run");
    }
}

#[test]
fn each_invalid_manifest_exits_with_the_gate_code_and_names_value_and_threshold() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = root().join("examples/models/fraud-detector");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rule) = name
            .strip_prefix("invalid-")
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        n += 1;
        let rel = format!("examples/models/fraud-detector/{name}");
        let out = pipeline(scratch.path(), &["--env", "prod", "--manifest", &rel]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("BLOCK governance"), "{stdout}");
        assert!(stdout.contains(&format!("[{rule}]")), "{name}: {stdout}");
        assert!(
            stdout.contains("(threshold: "),
            "{name} names the threshold: {stdout}"
        );
        assert!(
            stdout.contains("result BLOCKED by governance (exit 1)"),
            "{stdout}"
        );
    }
    assert_eq!(n, 10);
    assert_eq!(records(scratch.path()), 10, "blocked runs are recorded too");
}

#[test]
fn json_output_is_the_run_record() {
    let scratch = tempfile::tempdir().unwrap();
    let out = pipeline(
        scratch.path(),
        &[
            "--json",
            "--manifest",
            "examples/models/fraud-detector/invalid-semver_version.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["run"]["outcome"], "blocked");
    assert_eq!(
        v["run"]["stages"][0]["details"]["violations"][0]["rule"],
        "semver_version"
    );
    assert_eq!(
        v["run"]["stages"][0]["details"]["violations"][0]["value"],
        "v1.4-final"
    );
    assert_eq!(v["receipt"]["sequence"], 0);
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_problem() {
    let scratch = tempfile::tempdir().unwrap();
    let bad_toml = scratch.path().join("wharf.toml");
    std::fs::write(
        &bad_toml,
        "[project]\nname = \"x\"\n[model]\ndir = \".\"\n[registry]\nurll = \"x\"\n",
    )
    .unwrap();
    let malformed_toml = scratch.path().join("broken.toml");
    std::fs::write(&malformed_toml, "[project\n").unwrap();
    let bad_yaml = scratch.path().join("model.yaml");
    std::fs::write(&bad_yaml, "apiVersion: wharf.dev/v1\nkind: ModelManifest\nmodel: {name: x, version: 1.0.0}\nmetrics: {accuracy: high, f1: 1}\n").unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--env".into(), "staging".into()],
            "unknown environment \"staging\"".into(),
        ),
        (
            vec!["--config".into(), bad_toml.display().to_string()],
            format!("{}:6:1: unknown field `urll`", bad_toml.display()),
        ),
        (
            vec!["--config".into(), malformed_toml.display().to_string()],
            format!("{}:1:", malformed_toml.display()),
        ),
        (
            vec!["--config".into(), "/no/such/wharf.toml".into()],
            "cannot read /no/such/wharf.toml".into(),
        ),
        (
            vec!["--manifest".into(), bad_yaml.display().to_string()],
            format!("{}:4:", bad_yaml.display()),
        ),
        (
            vec!["--manifest".into(), "/no/such/model.yaml".into()],
            "cannot read /no/such/model.yaml".into(),
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pipeline(scratch.path(), &args);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        assert!(
            all.contains(&needle),
            "{args:?} should say {needle:?}: {all}"
        );
        let line = all.lines().find(|l| l.contains(&needle)).unwrap();
        assert!(!line.contains("panicked"), "{line}");
    }
}

#[test]
fn an_unwritable_audit_dir_fails_the_run() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = pipeline(&file, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr)
            .contains("no run without an audit record: [audit] dir: cannot create audit directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_example_is_packaged_reproducibly_and_its_digest_recorded() {
    let scratch = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    let mut signed = Vec::new();
    for _ in 0..2 {
        let out = pipeline(scratch.path(), &["--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["run"]["stages"][1]["name"], "package");
        assert_eq!(v["run"]["stages"][1]["status"], "passed");
        assert_eq!(v["run"]["stages"][3]["name"], "sign");
        assert_eq!(v["run"]["stages"][4]["name"], "attest");
        assert_eq!(v["run"]["stages"][5]["name"], "verify-signature");
        assert_eq!(
            v["run"]["stages"][5]["status"], "passed",
            "verified after signing"
        );
        digests.push(v["run"]["image_digest"].as_str().unwrap().to_owned());
        signed.push(
            v["run"]["stages"][3]["summary"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let verified = v["run"]["stages"][5]["summary"].as_str().unwrap();
        assert!(
            verified.contains("attestations verified: model evaluation, SLSA provenance"),
            "{verified}"
        );
        let attested = v["run"]["stages"][4]["summary"].as_str().unwrap();
        if digests.len() == 1 {
            assert!(
                attested.contains("attested model evaluation + SLSA provenance"),
                "{attested}"
            );
        }
    }
    assert_eq!(digests[0], digests[1]);
    let index =
        std::fs::read_to_string(scratch.path().join("oci/models/fraud-detector/index.json"))
            .unwrap();
    assert!(index.contains(&digests[0]), "{index}");
    // Signed once (the signature tag in the layout), not again on the second run.
    let sig_tag = format!("sha256-{}.sig", &digests[0]["sha256:".len()..]);
    assert!(index.contains(&sig_tag), "{index}");
    assert!(
        signed[0].contains("signed") && signed[0].contains("(1 signature)"),
        "{}",
        signed[0]
    );
    assert!(
        signed[1].contains("already carries a valid signature"),
        "{}",
        signed[1]
    );
}

#[test]
fn with_a_registry_url_the_example_is_pushed_there_and_skopeo_sees_it() {
    let registry = backend("WHARF_TEST_REGISTRY");
    let skopeo = backend("WHARF_TEST_SKOPEO");
    let scratch = tempfile::tempdir().unwrap();
    // A repository of this run's own: the registry outlives test runs, and an earlier run's
    // signature (by another generated key) would otherwise be the first layer.
    let repo = format!("e2e/fraud-detector-{}", std::process::id());
    let out = xtask(scratch.path(), "pipeline")
        .arg("--json")
        .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
        .env("WHARF__REGISTRY__REPOSITORY", &repo)
        .output()
        .unwrap();
    assert_exit(&out, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["run"]["image_digest"].as_str().unwrap().to_owned();
    let tag = v["run"]["stages"][1]["details"]["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    let inspect = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{registry}/{repo}:{tag}"),
        ])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    use sha2::Digest as _;
    let actual = format!(
        "sha256:{}",
        hex_lower(&sha2::Sha256::digest(&inspect.stdout))
    );
    assert_eq!(
        actual, digest,
        "the registry holds exactly the manifest the run record names"
    );

    // The image is signed as cosign signs: tools we did not write read the signature image
    // (skopeo), fetch its payload (curl) and verify the signature (openssl) with our
    // public key; the payload names this exact image. (Debian's skopeo is built with
    // sigstore verification disabled, so it cannot check the signature itself.)
    assert_eq!(v["run"]["stages"][3]["name"], "sign");
    assert_eq!(v["run"]["stages"][5]["name"], "verify-signature");
    assert_eq!(v["run"]["stages"][5]["status"], "passed");
    // The scan stage read the pushed image's layers back from the registry (through the
    // same client that pushed them) and found the example's pinned numpy and joblib, the
    // latter suppressed by the example's VEX statement.
    let scan = &v["run"]["stages"][2];
    assert_eq!(scan["name"], "scan");
    assert_eq!(scan["status"], "warned", "{scan}");
    assert_eq!(
        scan["details"]["warnings"][0]["id"], "CVE-2021-34141",
        "{scan}"
    );
    assert_eq!(
        scan["details"]["suppressed"][0]["id"], "CVE-2022-21797",
        "{scan}"
    );
    let sig_tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
    let sig_manifest = Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{registry}/{repo}:{sig_tag}"))
        .output()
        .unwrap();
    assert!(
        sig_manifest.status.success(),
        "{}",
        text(&sig_manifest.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&sig_manifest.stdout).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let work = tempfile::tempdir().unwrap();
    let payload_path = work.path().join("payload.json");
    let curl = Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(&payload_path)
        .arg(format!(
            "http://{registry}/v2/{repo}/blobs/{}",
            layer["digest"].as_str().unwrap()
        ))
        .output()
        .unwrap();
    assert!(curl.status.success(), "{}", text(&curl.stderr));
    let payload: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        format!("{registry}/{repo}")
    );
    assert_eq!(
        payload["critical"]["type"],
        "cosign container image signature"
    );
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    std::fs::write(work.path().join("sig.der"), sig).unwrap();
    let openssl = |key: &Path| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(key)
            .arg("-signature")
            .arg(work.path().join("sig.der"))
            .arg(&payload_path)
            .output()
            .unwrap()
    };
    let ok = openssl(&scratch.path().join("keys/cosign.pub"));
    assert_eq!(
        text(&ok.stdout).trim(),
        "Verified OK",
        "{}",
        text(&ok.stderr)
    );
    let other = scratch.path().join("other.pem");
    wharf_sign::EcdsaP256Key::load_or_generate(&other).unwrap();
    let refused = openssl(&wharf_sign::public_path(&other));
    assert!(!refused.status.success(), "another key must not verify");
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A minimal runnable base image in an OCI layout: one empty layer, an entrypoint.
fn make_base_image(root: &Path) {
    use wharf_core::registry::{ManifestBytes, PushManifestOptions, blob_stream_from};
    use wharf_core::{Descriptor, ImageManifest, Registry, media_types};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reg = wharf_registry::layout::LayoutRegistry::open(root).unwrap();
        let empty_tar = vec![0u8; 1024]; // two zero blocks: a valid empty tar
        let layer = Descriptor::for_bytes(media_types::OCI_LAYER_TAR, &empty_tar);
        reg.push_blob(
            "python",
            &layer.digest,
            blob_stream_from(empty_tar),
            &Default::default(),
        )
        .await
        .unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["python3", "/models/fraud-detector/predict.py"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]}
        });
        let config = ManifestBytes::new(
            media_types::OCI_CONFIG,
            serde_json::to_vec(&config).unwrap(),
        );
        reg.push_blob(
            "python",
            &config.descriptor.digest,
            blob_stream_from(config.bytes.clone()),
            &Default::default(),
        )
        .await
        .unwrap();
        let m = ManifestBytes::new(
            media_types::OCI_MANIFEST,
            ImageManifest::new(config.descriptor.clone(), vec![layer]).to_vec(),
        );
        reg.push_manifest("python", &m, &PushManifestOptions::tagged("3.12"))
            .await
            .unwrap();
    });
}

#[test]
fn with_a_base_image_the_model_becomes_a_runnable_image_skopeo_can_read() {
    let skopeo = backend("WHARF_TEST_SKOPEO");
    let scratch = tempfile::tempdir().unwrap();
    make_base_image(&scratch.path().join("bases"));
    let out = xtask(scratch.path(), "pipeline")
        .arg("--json")
        .env(
            "WHARF__REGISTRY__BASE_IMAGE",
            format!("oci:{}:3.12", scratch.path().join("bases/python").display()),
        )
        .output()
        .unwrap();
    assert_exit(&out, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["stages"][1]["details"]["kind"], "image");
    let tag = v["run"]["stages"][1]["details"]["tag"].as_str().unwrap();
    let image = format!(
        "oci:{}:{tag}",
        scratch.path().join("oci/models/fraud-detector").display()
    );
    let config = Command::new(&skopeo)
        .args(["inspect", "--config", &image])
        .output()
        .unwrap();
    assert!(config.status.success(), "{}", text(&config.stderr));
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["WHARF_MODEL_DIR=/models/fraud-detector"])
    );
    assert_eq!(
        config["config"]["Entrypoint"][0], "python3",
        "the base's entrypoint is kept"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // The provenance attestation names the base image, resolved to its digest.
    let digest: wharf_core::Digest = v["run"]["image_digest"].as_str().unwrap().parse().unwrap();
    let base_index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("bases/python/index.json")).unwrap(),
    )
    .unwrap();
    let base_digest = base_index["manifests"][0]["digest"].as_str().unwrap();
    let public = wharf_sign::PublicKey::from_file(&scratch.path().join("keys/cosign.pub")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let provenance = rt
        .block_on(async {
            let reg =
                wharf_registry::layout::LayoutRegistry::open(scratch.path().join("oci")).unwrap();
            wharf_sign::attest::verify_attestations(
                &reg,
                "models/fraud-detector",
                &digest,
                &public,
                Some(wharf_sign::attest::SLSA_PROVENANCE_V1),
            )
            .await
        })
        .unwrap();
    let deps = &provenance[0].predicate["buildDefinition"]["resolvedDependencies"];
    assert!(
        deps.as_array().unwrap().iter().any(|d| d["uri"]
            .as_str()
            .unwrap()
            .ends_with("python:3.12")
            && format!("sha256:{}", d["digest"]["sha256"].as_str().unwrap()) == base_digest),
        "{deps}"
    );

    // A base that does not exist fails the package stage with the reference named.
    let out = xtask(scratch.path(), "pipeline")
        .env(
            "WHARF__REGISTRY__BASE_IMAGE",
            format!("oci:{}:9.9", scratch.path().join("bases/python").display()),
        )
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("FAIL  package") && stdout.contains("tag 9.9 not found"),
        "{stdout}"
    );
    // A malformed spec is refused before the run.
    let out = xtask(scratch.path(), "pipeline")
        .env("WHARF__REGISTRY__BASE_IMAGE", "oci:nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("[registry] base_image \"oci:nowhere\": write oci:<layout directory>:<tag>"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_ecr_the_repository_is_created_immutable_and_the_image_pushed_with_token_auth() {
    // The ECR control plane is moto; the registry endpoint (as for a VPC endpoint) is the
    // harness registry, which accepts the token's basic credentials like any others.
    let registry = backend("WHARF_TEST_REGISTRY");
    let moto = backend("WHARF_TEST_MOTO");
    let skopeo = backend("WHARF_TEST_SKOPEO");
    let scratch = tempfile::tempdir().unwrap();
    let repo = format!("ecr-e2e/fraud-{}", std::process::id());
    let run = || {
        on_moto(&mut xtask(scratch.path(), "pipeline"), &moto)
            .arg("--json")
            .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
            .env("WHARF__REGISTRY__ECR_REGION", "us-east-1")
            .env("WHARF__REGISTRY__REPOSITORY", &repo)
            .output()
            .unwrap()
    };
    let first = run();
    assert_exit(&first, 0, "");
    assert!(
        text(&first.stderr).contains(&format!("ecr: {repo}: created")),
        "{}",
        text(&first.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let tag = v["run"]["stages"][1]["details"]["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    let inspect = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{registry}/{repo}:{tag}"),
        ])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));

    // Second run: the repository already has wharf's policy, the tag holds the same
    // content, so nothing changes and the run passes again.
    let second = run();
    assert_exit(&second, 0, "");
    assert!(
        !text(&second.stderr).contains("ecr: "),
        "no repository change the second time: {}",
        text(&second.stderr)
    );
}

#[test]
fn audit_verify_finds_tampering_and_show_prints_a_run() {
    let scratch = tempfile::tempdir().unwrap();
    // A config that is the example's, with the audit log in the scratch dir.
    let audit = |args: &[&str]| xtask(scratch.path(), "audit").args(args).output().unwrap();
    let out = audit(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("run `cargo xtask pipeline` first"),
        "{}",
        text(&out.stderr)
    );

    let first = pipeline(scratch.path(), &["--json"]);
    let run: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let run_id = run["run"]["run_id"].as_str().unwrap().to_owned();
    pipeline(
        scratch.path(),
        &[
            "--manifest",
            "examples/models/fraud-detector/invalid-min_f1.yaml",
        ],
    );

    expect_stdout(
        &audit(&["verify"]),
        0,
        &[
            "2 records, chain intact",
            "checkpoints: 2 signatures verified",
        ],
    );
    let out = audit(&["show", &run_id]);
    assert_eq!(out.status.code(), Some(0));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["event"]["run_id"], run_id);
    assert_eq!(shown["sequence"], 0);

    // Change one byte of record 0's content (as someone with write access could).
    let path = scratch.path().join("records/records/000000000000.json");
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"passed\"", "\"failed\"", 1);
    std::fs::write(&path, edited).unwrap();
    let out = audit(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("record 0 was altered"),
        "{}",
        text(&out.stdout)
    );
    let out = audit(&["show", "run-nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no run run-nope in the audit log at"),
        "{}",
        text(&out.stderr)
    );
}

/// `audit query` finds runs by id, digest and time; `audit export` writes JSON lines and a
/// report; an auditor holding only the public key verifies the checkpoints, and a wrong key
/// is named.
#[test]
fn audit_query_export_and_an_auditors_public_key() {
    let scratch = tempfile::tempdir().unwrap();
    let audit = |args: &[&str]| xtask(scratch.path(), "audit").args(args).output().unwrap();
    let first = pipeline(scratch.path(), &["--json"]);
    let run: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let digest = run["run"]["image_digest"].as_str().unwrap().to_owned();
    pipeline(
        scratch.path(),
        &[
            "--manifest",
            "examples/models/fraud-detector/invalid-min_f1.yaml",
        ],
    );

    let out = audit(&["query", "--digest", &digest, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the passing run pushed an image");
    assert_eq!(lines[0]["event"]["run_id"], run["run"]["run_id"]);
    let out = audit(&["query", "--since", "2000-01-01T00:00:00Z"]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("blocked"),
        "{}",
        text(&out.stdout)
    );
    let out = audit(&["query", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not an RFC 3339 time"),
        "{}",
        text(&out.stderr)
    );

    let export = scratch.path().join("export.jsonl");
    let out = audit(&["export", "--out", export.to_str().unwrap()]);
    assert_exit(&out, 0, "");
    assert_eq!(std::fs::read_to_string(&export).unwrap().lines().count(), 2);
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("export.jsonl.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["checked"], 2);
    assert_eq!(report["checkpoints_verified"], 2);
    assert_eq!(report["problems"], serde_json::json!([]));

    // The auditor's copy of the public key verifies; another key does not.
    let public = scratch.path().join("keys/audit-checkpoint.pem.pub");
    let out = audit(&["verify", "--public-key", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("k.pem");
    wharf_sign::EcdsaP256Key::load_or_generate(&other_key).unwrap();
    let out = audit(&[
        "verify",
        "--public-key",
        wharf_sign::public_path(&other_key).to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("checkpoint 0 cannot be trusted: the signature does not verify"),
        "{}",
        text(&out.stdout)
    );
}

/// With `[audit] url = "s3://…"` every run's record is a locked object in the bucket (moto),
/// checkpoints beside it; a bucket without Object Lock is refused before the run (exit 4).
#[test]
fn audit_records_go_to_s3_object_lock() {
    let moto = backend("WHARF_TEST_MOTO");
    let scratch = tempfile::tempdir().unwrap();
    let bucket = format!("wharf-e2e-audit-{}", std::process::id());
    let plain = format!("wharf-e2e-nolock-{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = moto_s3(&moto);
    rt.block_on(async {
        s3.create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        s3.create_bucket().bucket(&plain).send().await.unwrap();
    });
    let with_s3 = |subcommand: &str, bucket: &str| {
        let mut cmd = xtask(scratch.path(), subcommand);
        on_moto(&mut cmd, &moto)
            .env("WHARF__AUDIT__URL", format!("s3://{bucket}/fraud-detector"))
            .env("WHARF__AUDIT__FORCE_PATH_STYLE", "true")
            .env("WHARF__AUDIT__RETENTION_DAYS", "30");
        cmd
    };
    let out = with_s3("pipeline", &bucket).output().unwrap();
    assert_exit(&out, 0, "");
    assert!(
        text(&out.stdout).contains(&format!(
            "-> s3://{bucket}/fraud-detector/records/000000000000.json"
        )),
        "{}",
        text(&out.stdout)
    );
    with_s3("pipeline", &bucket).output().unwrap();
    expect_stdout(
        &with_s3("audit", &bucket).arg("verify").output().unwrap(),
        0,
        &["2 records, chain intact", "2 signatures verified"],
    );
    let head = rt.block_on(async {
        s3.head_object()
            .bucket(&bucket)
            .key("fraud-detector/records/000000000001.json")
            .send()
            .await
            .unwrap()
    });
    assert_eq!(
        head.object_lock_mode(),
        Some(&aws_sdk_s3::types::ObjectLockMode::Compliance)
    );
    assert_eq!(
        records(scratch.path()),
        0,
        "nothing went to the local directory"
    );

    let out = with_s3("pipeline", &plain).output().unwrap();
    assert_exit(&out, 4, "");
    assert!(
        text(&out.stderr).contains(&format!(
            "no run without an audit record: [audit] url \"s3://{plain}/fraud-detector\": s3://{plain} does not have Object Lock enabled"
        )),
        "{}",
        text(&out.stderr)
    );
}

/// The signing key is a cosign.key, encrypted with the password from COSIGN_PASSWORD; prod
/// refuses to sign without a password; a wrong password is a one-line error naming the
/// variable; the password never shows in output.
#[test]
fn the_signing_key_is_an_encrypted_cosign_key() {
    let scratch = tempfile::tempdir().unwrap();
    let out = pipeline(scratch.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = std::fs::read_to_string(scratch.path().join("keys/cosign.key")).unwrap();
    assert!(
        key.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{key}"
    );
    assert!(scratch.path().join("keys/cosign.pub").exists());

    let wrong = xtask(scratch.path(), "pipeline")
        .env("COSIGN_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let err = text(&wrong.stderr);
    assert!(
        err.contains("wrong password") && err.contains("COSIGN_PASSWORD"),
        "{err}"
    );

    let fresh = tempfile::tempdir().unwrap();
    let no_password = xtask(fresh.path(), "pipeline")
        .args(["--env", "prod"])
        .env_remove("COSIGN_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(no_password.status.code(), Some(2));
    let err = text(&no_password.stderr);
    assert!(
        err.contains("prod signs only with a password-protected key: set COSIGN_PASSWORD"),
        "{err}"
    );
    let dev = xtask(fresh.path(), "pipeline")
        .env_remove("COSIGN_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(dev.status.code(), Some(0), "{}", text(&dev.stderr));
    assert!(
        text(&dev.stderr).contains("has no password; set COSIGN_PASSWORD"),
        "{}",
        text(&dev.stderr)
    );
    for out in [&out, &wrong, &no_password, &dev] {
        assert!(
            !text(&out.stdout).contains(TEST_KEY_PASSWORD)
                && !text(&out.stderr).contains(TEST_KEY_PASSWORD)
        );
    }
}

/// `[sign] key = "awskms:///…"`: the image is signed by a key that stays in KMS (moto), and
/// the signature verifies with the public key KMS hands out.
#[test]
fn signing_with_a_kms_key() {
    let moto = backend("WHARF_TEST_MOTO");
    let scratch = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .endpoint_url(&moto)
            .build(),
    );
    let (key_id, public_der) = rt.block_on(async {
        let id = kms
            .create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
            .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned();
        let public = kms.get_public_key().key_id(&id).send().await.unwrap();
        (id, public.public_key().unwrap().as_ref().to_vec())
    });
    let out = on_moto(&mut xtask(scratch.path(), "pipeline"), &moto)
        .args(["--json", "--env", "prod"])
        .env("WHARF__SIGN__KEY", format!("awskms:///{key_id}"))
        .env_remove("COSIGN_PASSWORD")
        .output()
        .unwrap();
    assert_exit(&out, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let public = wharf_sign::PublicKey::from_spki_der(&public_der, "kms").unwrap();
    assert_eq!(v["run"]["stages"][3]["details"]["key_id"], public.key_id());
    assert_eq!(v["run"]["stages"][5]["status"], "passed");
    assert!(
        !scratch.path().join("keys/cosign.key").exists(),
        "no local key was made"
    );
    // A key that does not exist: one line naming it, before the run.
    let out = on_moto(&mut xtask(scratch.path(), "pipeline"), &moto)
        .env("WHARF__SIGN__KEY", "awskms:///alias/wharf-missing")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[sign] key awskms:///alias/wharf-missing"),
        "{}",
        text(&out.stderr)
    );
}

/// `[sign] format = "bundle"` on distribution 2.8, which has no referrers API: the bundle
/// referrer is listed in the `sha256-<hex>` index (the tag schema), skopeo reads it, and the
/// signature verifies.
#[test]
fn bundle_signatures_use_the_tag_schema_where_there_is_no_referrers_api() {
    let registry = backend("WHARF_TEST_REGISTRY");
    let skopeo = backend("WHARF_TEST_SKOPEO");
    let scratch = tempfile::tempdir().unwrap();
    let repo = format!("e2e/bundle-{}", std::process::id());
    let run = || {
        xtask(scratch.path(), "pipeline")
            .args(["--json", "--env", "prod"])
            .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
            .env("WHARF__REGISTRY__REPOSITORY", &repo)
            .env("WHARF__SIGN__FORMAT", "bundle")
            .output()
            .unwrap()
    };
    let out = run();
    assert_exit(&out, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["stages"][5]["status"], "passed");
    let digest = v["run"]["image_digest"].as_str().unwrap().to_owned();
    let index = Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!(
            "docker://{registry}/{repo}:sha256-{}",
            &digest["sha256:".len()..]
        ))
        .output()
        .unwrap();
    assert!(index.status.success(), "{}", text(&index.stderr));
    let index: serde_json::Value = serde_json::from_slice(&index.stdout).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["artifactType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    // A second run finds the signature through the index and adds nothing.
    let again: serde_json::Value = serde_json::from_slice(&run().stdout).unwrap();
    let summary = again["run"]["stages"][3]["summary"].as_str().unwrap();
    assert!(
        summary.contains("already carries a valid signature"),
        "{summary}"
    );
}

/// The harness Sigstore's faults are process-wide: the tests that use it run one at a time.
static SIGSTORE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sigstore_lock() -> std::sync::MutexGuard<'static, ()> {
    SIGSTORE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A project of its own: the example's model and `wharf.toml`, signing keylessly with the
/// harness Sigstore (`sigstore`, its base URL) in `format`, the trust root downloaded into
/// `sigstore/trusted_root.json` (relative to the config, as users write it); `sign_extra`
/// is appended to `[sign]`. Everything the runs write stays under the project's `.wharf`.
fn keyless_project(sigstore: &str, format: &str, sign_extra: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let model = project.path().join("models/fraud-detector");
    std::fs::create_dir_all(&model).unwrap();
    for (from, to) in [
        ("models/fraud-detector", "models/fraud-detector"),
        ("osv", "osv"),
        ("vex", "vex"),
    ] {
        std::fs::create_dir_all(project.path().join(to)).unwrap();
        for entry in std::fs::read_dir(root().join("examples").join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                project.path().join(to).join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(project.path().join("sigstore")).unwrap();
    let curl = Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(project.path().join("sigstore/trusted_root.json"))
        .arg(format!("{sigstore}/trusted_root.json"))
        .output()
        .unwrap();
    assert!(curl.status.success(), "{}", text(&curl.stderr));
    let example = std::fs::read_to_string(root().join("examples/wharf.toml")).unwrap();
    let (key_line, format_line) = (
        "key = \".wharf/keys/cosign.key\"\n",
        "format = \"legacy\"\n",
    );
    assert!(
        example.contains(key_line) && example.contains(format_line),
        "the example's [sign] changed: {example}"
    );
    let config = example
        .replacen(
            key_line,
            &format!(
                "key = \"keyless\"\nfulcio_url = \"{sigstore}\"\nrekor_url = \"{sigstore}\"\n\
                 trusted_root = \"sigstore/trusted_root.json\"\n{sign_extra}"
            ),
            1,
        )
        .replacen(format_line, &format!("format = \"{format}\"\n"), 1);
    std::fs::write(project.path().join("wharf.toml"), config).unwrap();
    project
}

/// `[sign] identity` and `issuer` lines naming `subject` (from the tests' issuer).
fn identity_lines(subject: &str) -> String {
    format!("identity = \"{subject}\"\nissuer = \"{TOKEN_ISSUER}\"\n")
}

/// `xtask pipeline` on `project`'s own `wharf.toml` (none of [`xtask`]'s overrides), with
/// `token` in SIGSTORE_ID_TOKEN when given, and no stdin (nothing may prompt).
fn keyless_pipeline(project: &Path, token: Option<&str>) -> Command {
    let mut cmd = xtask(project, "pipeline");
    for var in [
        "WHARF__AUDIT__DIR",
        "WHARF__AUDIT__CHECKPOINT_KEY",
        "WHARF__SIGN__KEY",
        "WHARF__REGISTRY__LAYOUT",
        "WHARF__DEPLOY__GITOPS_REPO",
        "COSIGN_PASSWORD",
        "SIGSTORE_ID_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--config")
        .arg(project.join("wharf.toml"))
        .stdin(std::process::Stdio::null());
    if let Some(token) = token {
        cmd.env("SIGSTORE_ID_TOKEN", token);
    }
    cmd
}

/// How many requests the harness Sigstore has had on `path`.
fn sigstore_requests(sigstore: &str, path: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sSf", &format!("{sigstore}/requests")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[path].as_u64().unwrap_or(0)
}

/// The audit records in `project`'s `.wharf/audit`.
fn project_records(project: &Path) -> usize {
    std::fs::read_dir(project.join(".wharf/audit/records"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Verify the image's keyless signature in `project`'s layout ourselves, requiring
/// `subject` (from the tests' issuer) under the downloaded trust root.
fn verify_keyless(
    project: &Path,
    digest: &str,
    format: &str,
    subject: &str,
) -> wharf_core::Result<usize> {
    let bytes = std::fs::read(project.join("sigstore/trusted_root.json")).unwrap();
    let root = wharf_sign::rekor::TrustedRoot::parse(&bytes, "trusted_root.json").unwrap();
    let identity = wharf_sign::fulcio::Identity::exact(subject, TOKEN_ISSUER);
    let trust = wharf_sign::Trust::Keyless {
        identity: &identity,
        root: &root,
    };
    let digest: wharf_core::Digest = digest.parse().unwrap();
    let reg = wharf_registry::layout::LayoutRegistry::open(project.join(".wharf/oci")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let repo = "models/fraud-detector";
        if format == "bundle" {
            wharf_sign::referrers::verify_image_bundle_with(&reg, repo, &digest, trust)
                .await
                .map(|v| v.len())
        } else {
            let req = wharf_sign::cosign::Requirements::new()
                .reference(wharf_sign::cosign::ReferenceMatch::Exact(repo));
            wharf_sign::cosign::verify_image_with(&reg, repo, &digest, trust, &req)
                .await
                .map(|v| v.len())
        }
    })
}

/// `[sign] key = "keyless"` on the embedded OCI layout, in both formats: the image is signed
/// with a Fulcio certificate for the token's identity and logged in Rekor, attested with
/// keyless bundles, and verified by identity; a second run finds the signature and adds
/// none. Legacy runs in dev with the identity taken from the certificate; bundle in prod
/// with the identity configured.
#[test]
fn keyless_signing_on_the_oci_layout_in_both_formats() {
    let _serial = sigstore_lock();
    let sigstore = backend("WHARF_TEST_SIGSTORE");
    let token = id_token(&[]);
    for (format, env, extra) in [
        ("legacy", "dev", String::new()),
        ("bundle", "prod", identity_lines(TOKEN_SUBJECT)),
    ] {
        let project = keyless_project(&sigstore, format, &extra);
        let dir = project.path();
        let run = || {
            keyless_pipeline(dir, Some(&token))
                .args(["--json", "--env", env])
                .output()
                .unwrap()
        };
        let (certs, entries) = (
            sigstore_requests(&sigstore, "/api/v2/signingCert"),
            sigstore_requests(&sigstore, "/api/v1/log/entries"),
        );
        let first = run();
        assert_exit(&first, 0, format);
        let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
        let stages = &v["run"]["stages"];
        let names: Vec<&str> = (0..7)
            .map(|i| stages[i]["name"].as_str().unwrap())
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
        for i in (0..7).filter(|i| *i != 2) {
            assert_eq!(stages[i]["status"], "passed", "{format}: {}", stages[i]);
        }
        // The example's one unsuppressed finding (numpy, MEDIUM) warns in dev and test,
        // and is below prod's threshold.
        let scan_status = if env == "prod" { "passed" } else { "warned" };
        assert_eq!(
            stages[2]["status"], scan_status,
            "{format} {env}: {}",
            stages[2]
        );
        let digest = v["run"]["image_digest"].as_str().unwrap().to_owned();
        let short = &digest["sha256:".len().."sha256:".len() + 12];
        let sign = stages[3]["summary"].as_str().unwrap();
        assert!(
            sign.contains(&format!(
                "signed {short} with keyless identity {TOKEN_SUBJECT} ({TOKEN_ISSUER})"
            )) && sign.contains("(1 signature)"),
            "{format}: {sign}"
        );
        assert_eq!(stages[3]["details"]["key_id"], TOKEN_SUBJECT);
        let attest = stages[4]["summary"].as_str().unwrap();
        assert!(
            attest.contains(&format!(
                "attested model evaluation + SLSA provenance + CycloneDX SBOM + scan results of {short}"
            )) && attest.contains("(Sigstore bundle referrers)"),
            "{format}: {attest}"
        );
        let verify = stages[5]["summary"].as_str().unwrap();
        assert!(
            verify.contains(&format!(
                "1 signature on {short} verified (identity {TOKEN_SUBJECT})"
            )) && verify.contains("attestations verified: model evaluation, SLSA provenance"),
            "{format}: {verify}"
        );
        // The local Sigstore did the work: certificates from Fulcio (sign, attest, at
        // least), entries in Rekor (the signature and two attestations, at least).
        assert!(
            sigstore_requests(&sigstore, "/api/v2/signingCert") >= certs + 2,
            "{format}: Fulcio was asked for certificates"
        );
        assert!(
            sigstore_requests(&sigstore, "/api/v1/log/entries") >= entries + 3,
            "{format}: the signature and attestations were logged in Rekor"
        );
        // Where the signature went: a legacy `.sig` tag, or a bundle referrer and no `.sig`.
        let index =
            std::fs::read_to_string(dir.join(".wharf/oci/models/fraud-detector/index.json"))
                .unwrap();
        let sig_tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
        assert_eq!(index.contains(&sig_tag), format == "legacy", "{index}");
        assert!(
            !dir.join(".wharf/keys/cosign.key").exists(),
            "keyless makes no key file"
        );
        // Verified independently: by the token's identity, and not by another.
        assert_eq!(
            verify_keyless(dir, &digest, format, TOKEN_SUBJECT).unwrap(),
            1,
            "{format}"
        );
        let other = "https://github.com/acme/models/.github/workflows/other.yml@refs/heads/main";
        let err = verify_keyless(dir, &digest, format, other).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                wharf_core::ErrorKind::Integrity | wharf_core::ErrorKind::NotFound
            ),
            "{format}: {err}"
        );
        // As an auditor checks it: `cargo xtask verify` by identity, issuer and trust root.
        let auditor = |identity: &str| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
            cmd.arg("verify")
                .arg(&digest)
                .arg("--config")
                .arg(dir.join("wharf.toml"))
                .args(["--certificate-identity", identity])
                .args(["--certificate-oidc-issuer", TOKEN_ISSUER])
                .arg("--trusted-root")
                .arg(dir.join("sigstore/trusted_root.json"))
                .args(["--attestation", "https://slsa.dev/provenance/v1"])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        let shown = if format == "legacy" {
            "cosign .sig"
        } else {
            "Sigstore bundle"
        };
        expect_stdout(
            &auditor(TOKEN_SUBJECT),
            0,
            &[
                "VERIFIED models/fraud-detector@",
                &format!("signature  {shown}"),
                &format!("by {TOKEN_SUBJECT}"),
                &format!("attestation https://slsa.dev/provenance/v1 by {TOKEN_SUBJECT}"),
            ],
        );
        expect_stdout(
            &auditor(other),
            1,
            &["NOT VERIFIED", "not to the required identity"],
        );

        // Again: the signature by this identity is found and not repeated.
        let second = run();
        assert_exit(&second, 0, format);
        let v: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
        let stages = &v["run"]["stages"];
        assert_eq!(v["run"]["image_digest"], digest.as_str());
        let sign = stages[3]["summary"].as_str().unwrap();
        assert!(
            sign.contains(&format!(
                "{short} already carries a valid signature by keyless identity {TOKEN_SUBJECT} ({TOKEN_ISSUER}): nothing added"
            )),
            "{format}: {sign}"
        );
        assert_eq!(stages[3]["details"]["added"], false);
        // The evaluation is the same, and the image already carries provenance by this
        // identity (from the build that made these bytes): nothing is added.
        let attest = stages[4]["summary"].as_str().unwrap();
        assert!(
            attest.contains(&format!(
                "{short} already carries these attestations: nothing added"
            )),
            "{format}: {attest}"
        );
        assert_eq!(stages[5]["status"], "passed", "{format}: {}", stages[5]);
        assert_eq!(
            verify_keyless(dir, &digest, format, TOKEN_SUBJECT).unwrap(),
            1,
            "{format}: still one signature"
        );
        assert_eq!(
            project_records(dir),
            2,
            "{format}: one audit record per run"
        );
    }
}

/// Prod verifies keyless signatures only against a configured identity: without one the
/// config is refused before the run, in one line and without a prompt; a token for another
/// identity than the configured one fails the sign stage naming both, and nothing is signed.
#[test]
fn keyless_in_prod_needs_the_identity_and_refuses_a_token_for_another() {
    let _serial = sigstore_lock();
    let sigstore = backend("WHARF_TEST_SIGSTORE");
    let token = id_token(&[]);
    let project = keyless_project(&sigstore, "legacy", "");
    let out = keyless_pipeline(project.path(), Some(&token))
        .args(["--env", "prod"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{err}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: [sign] key = \"keyless\" in prod: set identity and issuer"),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(!err.to_lowercase().contains("password"), "no prompt: {err}");
    assert_eq!(
        project_records(project.path()),
        1,
        "the refusal is recorded as a failed run"
    );
    // Dev does not require it (the certificate's identity is verified instead).
    let dev = keyless_pipeline(project.path(), Some(&token))
        .output()
        .unwrap();
    assert_eq!(dev.status.code(), Some(0), "{}", text(&dev.stdout));

    let other = "https://github.com/acme/models/.github/workflows/deploy.yml@refs/heads/main";
    let project = keyless_project(&sigstore, "legacy", &identity_lines(other));
    let out = keyless_pipeline(project.path(), Some(&token))
        .args(["--json", "--env", "prod"])
        .output()
        .unwrap();
    assert_exit(&out, 3, "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sign = &v["run"]["stages"][3];
    assert_eq!(sign["name"], "sign");
    assert_eq!(sign["status"], "failed");
    let summary = sign["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "the OIDC token's certificate names identity \"{TOKEN_SUBJECT}\" from issuer \"{TOKEN_ISSUER}\", not the configured identity \"{other}\" from issuer \"{TOKEN_ISSUER}\""
        )),
        "{summary}"
    );
    assert_eq!(v["run"]["stages"][4]["status"], "skipped");
    assert_eq!(v["run"]["stages"][5]["status"], "skipped");
    let digest = v["run"]["image_digest"].as_str().unwrap();
    let index = std::fs::read_to_string(
        project
            .path()
            .join(".wharf/oci/models/fraud-detector/index.json"),
    )
    .unwrap();
    assert!(index.contains(digest), "the image was pushed: {index}");
    assert!(
        !index.contains(&format!("sha256-{}", &digest["sha256:".len()..])),
        "but nothing signed or attested it: {index}"
    );
}

/// Keyless without its inputs is a one-line error naming what is missing; a token Fulcio
/// refuses fails the run, and the token (or anything in its claims) shows nowhere: not in
/// the output, not in the audit records.
#[test]
fn keyless_without_a_token_or_trust_root_and_a_refused_token_never_shows() {
    let _serial = sigstore_lock();
    let sigstore = backend("WHARF_TEST_SIGSTORE");
    let project = keyless_project(&sigstore, "legacy", "");
    let dir = project.path();
    let one_line_error = |out: &Output, needle: &str| {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}{err}", text(&out.stdout));
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let out = keyless_pipeline(dir, None).output().unwrap();
    one_line_error(
        &out,
        "[sign] key = \"keyless\": no OIDC ID token in SIGSTORE_ID_TOKEN",
    );
    // token_env names another variable: that one is read (and named).
    let out = keyless_pipeline(dir, Some(&id_token(&[])))
        .env("WHARF__SIGN__TOKEN_ENV", "CI_SIGSTORE_TOKEN")
        .output()
        .unwrap();
    one_line_error(&out, "no OIDC ID token in CI_SIGSTORE_TOKEN");

    let token = id_token(&[]);
    let out = keyless_pipeline(dir, Some(&token))
        .env("WHARF__SIGN__TRUSTED_ROOT", "sigstore/missing.json")
        .output()
        .unwrap();
    one_line_error(
        &out,
        &format!(
            "[sign] trusted_root {}",
            dir.join("sigstore/missing.json").display()
        ),
    );
    let config = std::fs::read_to_string(dir.join("wharf.toml")).unwrap();
    let without_root = config.replace("trusted_root = \"sigstore/trusted_root.json\"\n", "");
    assert_ne!(without_root, config);
    std::fs::write(dir.join("wharf.toml"), without_root).unwrap();
    let out = keyless_pipeline(dir, Some(&token)).output().unwrap();
    std::fs::write(dir.join("wharf.toml"), &config).unwrap();
    one_line_error(&out, "[sign] key = \"keyless\" needs trusted_root");
    assert_eq!(
        project_records(dir),
        4,
        "none of these ran, and each refusal is recorded"
    );

    // Fulcio refuses the token once: the sign stage fails, naming Fulcio's answer.
    let canary = format!("wharf-canary-oidc-{}-Qz81Lm", std::process::id());
    let token = id_token(&[("canary", &canary)]);
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let fault = Command::new("curl")
        .args(["-sSf", "-X", "POST", "-d"])
        .arg(r#"{"path":"/api/v2/signingCert","status":401,"count":1}"#)
        .arg(format!("{sigstore}/faults"))
        .output()
        .unwrap();
    assert!(fault.status.success(), "{}", text(&fault.stderr));
    let before = sigstore_requests(&sigstore, "/api/v2/signingCert");
    let refused = keyless_pipeline(dir, Some(&token))
        .arg("--verbose")
        .output()
        .unwrap();
    let stdout = text(&refused.stdout);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{stdout}{}",
        text(&refused.stderr)
    );
    assert!(
        stdout.contains("FAIL  sign")
            && stdout.contains(&format!(
                "Fulcio at {sigstore}/api/v2/signingCert answered 401"
            )),
        "{stdout}"
    );
    assert!(
        stdout.contains("result FAILED in sign (exit 3)"),
        "{stdout}"
    );
    assert!(sigstore_requests(&sigstore, "/api/v2/signingCert") > before);
    // Accepted the next time (the fault was for one request): the token works.
    let accepted = keyless_pipeline(dir, Some(&token)).output().unwrap();
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        text(&accepted.stdout)
    );
    let audit_files = files_under(&dir.join(".wharf/audit"));
    assert!(
        audit_files.len() >= 2,
        "both runs were recorded: {audit_files:?}"
    );
    for (what, content) in [
        ("refused stdout", stdout.clone()),
        ("refused stderr", text(&refused.stderr)),
        ("accepted stdout", text(&accepted.stdout)),
        ("accepted stderr", text(&accepted.stderr)),
    ]
    .into_iter()
    .chain(audit_files.iter().map(|f| {
        (
            "audit file",
            String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned(),
        )
    })) {
        for secret in [canary.as_str(), payload.as_str(), token.as_str()] {
            assert!(
                !content.contains(secret),
                "{what} holds the token: {content}"
            );
        }
    }
}

/// `[sign] format = "auto"` on distribution 2.8 (no referrers API): legacy `.sig` signatures,
/// which the registry lists as a tag; no bundle index at the digest tag.
#[test]
fn format_auto_signs_legacy_where_the_registry_has_no_referrers_api() {
    let registry = backend("WHARF_TEST_REGISTRY");
    let scratch = tempfile::tempdir().unwrap();
    let repo = format!("e2e/auto-{}", std::process::id());
    let out = xtask(scratch.path(), "pipeline")
        .args(["--json", "--env", "prod"])
        .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
        .env("WHARF__REGISTRY__REPOSITORY", &repo)
        .env("WHARF__SIGN__FORMAT", "auto")
        .output()
        .unwrap();
    assert_exit(&out, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["run"]["image_digest"].as_str().unwrap().to_owned();
    let hex = &digest["sha256:".len()..];
    let sign = v["run"]["stages"][3]["summary"].as_str().unwrap();
    assert!(
        sign.contains(&format!("{repo}:sha256-{hex}.sig (1 signature)")),
        "{sign}"
    );
    assert!(!sign.contains("bundle"), "{sign}");
    assert_eq!(v["run"]["stages"][5]["status"], "passed");
    let tags = Command::new("curl")
        .args(["-sSf", &format!("http://{registry}/v2/{repo}/tags/list")])
        .output()
        .unwrap();
    assert!(tags.status.success(), "{}", text(&tags.stderr));
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    let tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&format!("sha256-{hex}.sig").as_str()),
        "{tags:?}"
    );
    assert!(
        !tags.contains(&format!("sha256-{hex}").as_str()),
        "no bundle referrer index: {tags:?}"
    );
}

/// `cargo xtask verify` as an auditor runs it after the example pipeline: by the project's
/// public key (the default), with the attestations' predicates in JSON; another key, a
/// missing attestation, another repository and a malformed digest each say why.
#[test]
fn verify_checks_an_images_signature_and_attestations_as_an_auditor_would() {
    let scratch = tempfile::tempdir().unwrap();
    let out = pipeline(scratch.path(), &["--json"]);
    assert_exit(&out, 0, "pipeline");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["run"]["image_digest"].as_str().unwrap().to_owned();
    let verify = |args: &[&str]| xtask(scratch.path(), "verify").args(args).output().unwrap();

    let out = verify(&[&digest]);
    expect_stdout(
        &out,
        0,
        &["VERIFIED models/fraud-detector@", "signature  cosign .sig"],
    );
    let out = verify(&[
        &digest,
        "--json",
        "--attestation",
        "https://slsa.dev/provenance/v1",
        "--attestation",
        "https://wharf.dev/attestation/model-evaluation/v1",
    ]);
    assert_exit(&out, 0, "verify --json");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verified"], true);
    let attestations = r["attestations"].as_array().unwrap();
    assert_eq!(attestations.len(), 2);
    let provenance = attestations
        .iter()
        .find(|a| a["predicate_type"] == "https://slsa.dev/provenance/v1")
        .unwrap();
    assert_eq!(
        provenance["predicate"]["buildDefinition"]["internalParameters"]["image"],
        digest.as_str()
    );

    // Another key: refused, naming the key it does not verify with.
    let other = root().join("crates/wharf-sign/tests/fixtures/containers-image/cosign.pub");
    let out = verify(&[&digest, "--key", other.to_str().unwrap()]);
    expect_stdout(&out, 1, &["NOT VERIFIED", "does not verify with key"]);
    // The scan stage's SBOM and results were attested too.
    let out = verify(&[
        &digest,
        "--attestation",
        "https://cyclonedx.org/bom",
        "--attestation",
        "https://cosign.sigstore.dev/attestation/vuln/v1",
    ]);
    expect_stdout(
        &out,
        0,
        &[
            "VERIFIED",
            "attestation https://cosign.sigstore.dev/attestation/vuln/v1 by",
        ],
    );
    // An attestation nobody made.
    let out = verify(&[&digest, "--attestation", "https://spdx.dev/Document"]);
    expect_stdout(
        &out,
        1,
        &[
            "NOT VERIFIED",
            "not verified: attestation https://spdx.dev/Document",
        ],
    );
    // Another repository holds no signature for it.
    let out = verify(&[&format!("models/other@{digest}")]);
    expect_stdout(&out, 1, &["has no cosign signature"]);
    // Bad input: one line, exit 2.
    let out = verify(&["sha256:not-hex"]);
    assert_exit(&out, 2, "bad digest");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("give a digest"), "{stderr}");
    let out = verify(&[&digest, "--certificate-identity", "x@example.com"]);
    assert_exit(&out, 2, "identity without issuer");
    assert!(text(&out.stderr).contains("--certificate-oidc-issuer"));
}

//! Interop with cosign itself, both ways, on the harness registry: cosign 2 and cosign 3
//! (built from their Go modules by `cargo xtask backends up`) verify what `cargo xtask
//! pipeline` signs and attests, and `cargo xtask verify` and `wharf-sign` verify what
//! cosign signs and attests — each with its negative twin (another key, another image)
//! refused.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod support;
use support::*;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `cosign …` (`which`: `WHARF_TEST_COSIGN` or `WHARF_TEST_COSIGN3`) with the key password
/// the tests use, no prompts, and its TUF cache in `scratch` (nothing here reaches the
/// public-good Sigstore: the tests pass `--insecure-ignore-tlog`/`--tlog-upload=false` for
/// keys, and the harness Sigstore for keyless).
fn cosign(which: &str, scratch: &Path) -> Command {
    let mut cmd = Command::new(backend(which));
    cmd.env("COSIGN_PASSWORD", TEST_KEY_PASSWORD)
        .env("COSIGN_YES", "true")
        .env("TUF_ROOT", scratch.join("tuf"))
        .env("HOME", scratch)
        .current_dir(scratch);
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", show(&out));
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn failed(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} must fail: {}", show(&out));
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// A repository name no other test uses.
fn fresh_repo(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cosign-interop/{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Run the example pipeline into `repo` on the harness registry, signing in `format` with
/// the scratch key; returns the image digest.
fn push_and_sign(scratch: &Path, registry: &str, repo: &str, format: &str) -> String {
    let out = xtask(scratch, "pipeline")
        .args(["--json"])
        .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
        .env("WHARF__REGISTRY__REPOSITORY", repo)
        .env("WHARF__SIGN__FORMAT", format)
        .output()
        .unwrap();
    assert_exit(&out, 0, "the pipeline pushes, signs and attests");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["run"]["image_digest"].as_str().unwrap().to_owned()
}

/// `cosign generate-key-pair` in `dir` (encrypted with [`TEST_KEY_PASSWORD`]).
fn cosign_key_pair(which: &str, scratch: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = cosign(which, scratch);
    ok(
        cmd.current_dir(dir)
            .arg("generate-key-pair")
            .output()
            .unwrap(),
        "cosign generate-key-pair",
    );
}

/// `crane copy` `from` to `to` on the registry: the same manifest, another repository.
fn crane_copy(registry: &str, from: &str, to: &str) {
    let out = Command::new(backend("WHARF_TEST_CRANE"))
        .args(["copy", "--insecure"])
        .arg(format!("{registry}/{from}"))
        .arg(format!("{registry}/{to}"))
        .output()
        .unwrap();
    ok(out, "crane copy");
}

/// `openssl ARGS…` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    ok(out, &format!("openssl {args:?}"));
}

/// `cargo xtask verify` against the harness registry; callers add the trust and the image.
fn wharf_verify(scratch: &Path, registry: &str) -> Command {
    let mut cmd = xtask(scratch, "verify");
    cmd.env("WHARF__REGISTRY__URL", format!("http://{registry}"));
    cmd
}

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const MODEL_EVALUATION: &str = "https://wharf.dev/attestation/model-evaluation/v1";

#[test]
fn cosign_2_and_3_verify_what_the_pipeline_signs_and_attests_with_a_key() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let repo = fresh_repo("ours");
    let digest = push_and_sign(s, &registry, &repo, "legacy");
    let image = format!("{registry}/{repo}@{digest}");
    let public = wharf_sign::public_path(&s.join("keys/cosign.key"));
    assert_eq!(
        wharf_sign::attest::MODEL_EVALUATION_V1,
        MODEL_EVALUATION,
        "the predicate type cosign is asked for"
    );
    for which in ["WHARF_TEST_COSIGN", "WHARF_TEST_COSIGN3"] {
        let verify = |args: &[&str], key: &Path, image: &str| {
            cosign(which, s)
                .args(args)
                .arg("--key")
                .arg(key)
                .args(["--allow-http-registry", "--insecure-ignore-tlog=true"])
                .arg(image)
                .output()
                .unwrap()
        };
        let said = ok(verify(&["verify"], &public, &image), which);
        assert!(
            said.contains(&format!("\"docker-manifest-digest\":\"{digest}\"")),
            "{said}"
        );
        for kind in ["slsaprovenance1", MODEL_EVALUATION] {
            let said = ok(
                verify(&["verify-attestation", "--type", kind], &public, &image),
                &format!("{which} verify-attestation --type {kind}"),
            );
            assert!(said.contains("payloadType"), "{said}");
        }
        // Negative twins: another key; an image nobody signed.
        let other = s.join(format!("other-{which}"));
        cosign_key_pair(which, s, &other);
        failed(
            verify(&["verify"], &other.join("cosign.pub"), &image),
            "verify with another key",
        );
        failed(
            verify(
                &["verify-attestation", "--type", "slsaprovenance1"],
                &other.join("cosign.pub"),
                &image,
            ),
            "verify-attestation with another key",
        );
        // The same image in a repository where nobody signed it: no signature to accept.
        let unsigned_repo = fresh_repo("unsigned");
        crane_copy(
            &registry,
            &format!("{repo}@{digest}"),
            &format!("{unsigned_repo}:v1"),
        );
        let said = failed(
            verify(
                &["verify"],
                &public,
                &format!("{registry}/{unsigned_repo}@{digest}"),
            ),
            "verify of an image nobody signed",
        );
        assert!(said.contains("no signatures found"), "{said}");
    }
    // Where cosign looks is where we stored them.
    let tree = ok(
        cosign("WHARF_TEST_COSIGN", s)
            .args(["tree", "--allow-http-registry"])
            .arg(&image)
            .output()
            .unwrap(),
        "cosign tree",
    );
    let tag = format!("sha256-{}", &digest["sha256:".len()..]);
    assert!(
        tree.contains(&format!("{repo}:{tag}.sig")) && tree.contains(&format!("{repo}:{tag}.att")),
        "{tree}"
    );
    for (kind, suffix) in [("signature", ".sig"), ("attestation", ".att")] {
        let said = ok(
            cosign("WHARF_TEST_COSIGN", s)
                .args(["triangulate", "--type", kind])
                .arg(&image)
                .output()
                .unwrap(),
            "cosign triangulate",
        );
        assert_eq!(said.trim(), format!("{registry}/{repo}:{tag}{suffix}"));
    }
}

#[test]
fn cosign_3_verifies_the_pipelines_bundle_referrers() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let repo = fresh_repo("bundle");
    let digest = push_and_sign(s, &registry, &repo, "bundle");
    let image = format!("{registry}/{repo}@{digest}");
    let public = wharf_sign::public_path(&s.join("keys/cosign.key"));
    let said = ok(
        cosign("WHARF_TEST_COSIGN3", s)
            .args(["verify", "--key"])
            .arg(&public)
            .args(["--allow-http-registry", "--insecure-ignore-tlog=true"])
            .arg(&image)
            .output()
            .unwrap(),
        "cosign 3 verify of a bundle referrer",
    );
    assert!(said.contains(&digest), "{said}");
    let other = s.join("other");
    cosign_key_pair("WHARF_TEST_COSIGN3", s, &other);
    failed(
        cosign("WHARF_TEST_COSIGN3", s)
            .args(["verify", "--key"])
            .arg(other.join("cosign.pub"))
            .args(["--allow-http-registry", "--insecure-ignore-tlog=true"])
            .arg(&image)
            .output()
            .unwrap(),
        "cosign 3 verify with another key",
    );
    let tree = ok(
        cosign("WHARF_TEST_COSIGN3", s)
            .args(["tree", "--allow-http-registry"])
            .arg(&image)
            .output()
            .unwrap(),
        "cosign tree",
    );
    assert!(
        tree.contains("https://sigstore.dev/cosign/sign/v1 artifacts via OCI referrer"),
        "{tree}"
    );
}

#[test]
fn wharf_verifies_what_cosign_2_and_3_sign_and_attest_and_reads_their_keys() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let ours = fresh_repo("source");
    let digest = push_and_sign(s, &registry, &ours, "legacy");
    let predicate = s.join("provenance.json");
    std::fs::write(
        &predicate,
        r#"{"buildDefinition":{"buildType":"https://example.com/build","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}"#,
    )
    .unwrap();
    let predicate_v02 = s.join("provenance-v02.json");
    std::fs::write(
        &predicate_v02,
        r#"{"builder":{"id":"https://example.com/v02-builder"},"buildType":"https://example.com/build","invocation":{}}"#,
    )
    .unwrap();
    for (which, extra) in [
        ("WHARF_TEST_COSIGN", &["--tlog-upload=false"][..]),
        (
            // cosign 3: Sigstore bundles as referrers, by default.
            "WHARF_TEST_COSIGN3",
            &["--tlog-upload=false", "--use-signing-config=false"][..],
        ),
    ] {
        let keys = s.join(format!("keys-{which}"));
        cosign_key_pair(which, s, &keys);
        // cosign's encrypted key file and its public key, read by wharf-sign.
        let private = wharf_sign::EcdsaP256Key::load(
            &keys.join("cosign.key"),
            Some(&wharf_core::Secret::new(TEST_KEY_PASSWORD)),
        )
        .unwrap();
        let public = wharf_sign::PublicKey::from_file(&keys.join("cosign.pub")).unwrap();
        assert_eq!(private.public_key().key_id(), public.key_id());
        let wrong = wharf_sign::EcdsaP256Key::load(
            &keys.join("cosign.key"),
            Some(&wharf_core::Secret::new("not-the-password")),
        );
        assert!(wrong.is_err(), "a wrong password is refused");

        let repo = fresh_repo("theirs");
        crane_copy(
            &registry,
            &format!("{ours}@{digest}"),
            &format!("{repo}:v1"),
        );
        let image = format!("{registry}/{repo}@{digest}");
        ok(
            cosign(which, s)
                .args(["sign", "--key"])
                .arg(keys.join("cosign.key"))
                .arg("--allow-http-registry")
                .args(extra)
                .arg(&image)
                .output()
                .unwrap(),
            &format!("{which} sign"),
        );
        ok(
            cosign(which, s)
                .args(["attest", "--key"])
                .arg(keys.join("cosign.key"))
                .args(["--type", "slsaprovenance1", "--predicate"])
                .arg(&predicate)
                .arg("--allow-http-registry")
                .args(extra)
                .arg(&image)
                .output()
                .unwrap(),
            &format!("{which} attest"),
        );
        // SLSA provenance v0.2, cosign's `--type slsaprovenance`.
        ok(
            cosign(which, s)
                .args(["attest", "--key"])
                .arg(keys.join("cosign.key"))
                .args(["--type", "slsaprovenance", "--predicate"])
                .arg(&predicate_v02)
                .arg("--allow-http-registry")
                .args(extra)
                .arg(&image)
                .output()
                .unwrap(),
            &format!("{which} attest --type slsaprovenance"),
        );
        let v02 = wharf_verify(s, &registry)
            .arg("--key")
            .arg(keys.join("cosign.pub"))
            .args([
                "--attestation",
                "https://slsa.dev/provenance/v0.2",
                "--json",
            ])
            .arg(format!("{repo}@{digest}"))
            .output()
            .unwrap();
        assert_exit(&v02, 0, &format!("the v0.2 provenance {which} made"));
        let v: serde_json::Value = serde_json::from_slice(&v02.stdout).unwrap();
        assert_eq!(
            v["attestations"][0]["predicate"]["builder"]["id"], "https://example.com/v02-builder",
            "{v}"
        );
        let verify = |key: &Path, image: &str| {
            wharf_verify(s, &registry)
                .arg("--key")
                .arg(key)
                .args(["--attestation", SLSA_V1, "--json"])
                .arg(image)
                .output()
                .unwrap()
        };
        let out = verify(&keys.join("cosign.pub"), &format!("{repo}@{digest}"));
        assert_exit(&out, 0, &format!("xtask verify of what {which} signed"));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verified"], true, "{v}");
        assert_eq!(v["attestations"][0]["predicate_type"], SLSA_V1, "{v}");
        assert_eq!(
            v["attestations"][0]["predicate"]["runDetails"]["builder"]["id"],
            "https://example.com/builder"
        );
        let format = v["signatures"][0]["format"].as_str().unwrap();
        let expected = if which == "WHARF_TEST_COSIGN" {
            "cosign .sig"
        } else {
            "Sigstore bundle"
        };
        assert_eq!(format, expected, "{v}");
        // Negative twins: another key (ours); another image (ours, which cosign did not
        // sign, under cosign's repository).
        let out = verify(
            &wharf_sign::public_path(&s.join("keys/cosign.key")),
            &format!("{repo}@{digest}"),
        );
        assert_exit(&out, 1, "another key");
        let out = verify(&keys.join("cosign.pub"), &format!("{ours}@{digest}"));
        assert_exit(&out, 1, "an image cosign did not sign");
    }
}

/// cosign keyless against the harness Sigstore: `--fulcio-url`, `--rekor-url`, the token
/// and the trust root; cosign 3 with the service URLs from its flags, not a TUF signing
/// config.
fn cosign_keyless(
    which: &str,
    scratch: &Path,
    sigstore: &str,
    root: &Path,
    subcommand: &[&str],
) -> Command {
    let mut cmd = cosign(which, scratch);
    cmd.args(subcommand)
        .args([
            "--allow-http-registry",
            "--fulcio-url",
            sigstore,
            "--rekor-url",
            sigstore,
        ])
        .arg("--identity-token")
        .arg(id_token(&[]))
        .arg("--trusted-root")
        .arg(root);
    if which == "WHARF_TEST_COSIGN3" {
        cmd.arg("--use-signing-config=false");
    }
    cmd
}

/// `cosign verify`/`verify-attestation` by certificate identity.
fn cosign_verify_identity(
    which: &str,
    scratch: &Path,
    root: &Path,
    identity: &str,
    subcommand: &[&str],
) -> Command {
    let mut cmd = cosign(which, scratch);
    cmd.args(subcommand)
        .args(["--allow-http-registry", "--certificate-identity", identity])
        .args(["--certificate-oidc-issuer", TOKEN_ISSUER])
        .arg("--trusted-root")
        .arg(root);
    cmd
}

const OTHER_IDENTITY: &str =
    "https://github.com/acme/models/.github/workflows/other.yml@refs/heads/main";

#[test]
fn cosign_2_and_3_verify_the_pipelines_keyless_signatures_and_attestations() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let sigstore = backend("WHARF_TEST_SIGSTORE");
    let root = trusted_root(s, &sigstore);
    for format in ["legacy", "bundle"] {
        let repo = fresh_repo(&format!("keyless-{format}"));
        let out = xtask(s, "pipeline")
            .args(["--json"])
            .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
            .env("WHARF__REGISTRY__REPOSITORY", &repo)
            .env("WHARF__SIGN__FORMAT", format)
            .env("WHARF__SIGN__KEY", "keyless")
            .env("WHARF__SIGN__TRUSTED_ROOT", &root)
            .env("WHARF__SIGN__FULCIO_URL", &sigstore)
            .env("WHARF__SIGN__REKOR_URL", &sigstore)
            .env("SIGSTORE_ID_TOKEN", id_token(&[]))
            .output()
            .unwrap();
        assert_exit(&out, 0, "a keyless pipeline run");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let digest = v["run"]["image_digest"].as_str().unwrap();
        let image = format!("{registry}/{repo}@{digest}");
        for which in ["WHARF_TEST_COSIGN", "WHARF_TEST_COSIGN3"] {
            let what = format!("{which} on our keyless {format} signature");
            let said = ok(
                cosign_verify_identity(which, s, &root, TOKEN_SUBJECT, &["verify"])
                    .arg(&image)
                    .output()
                    .unwrap(),
                &what,
            );
            assert!(said.contains(digest), "{said}");
            ok(
                cosign_verify_identity(
                    which,
                    s,
                    &root,
                    TOKEN_SUBJECT,
                    &["verify-attestation", "--type", "slsaprovenance1"],
                )
                .arg(&image)
                .output()
                .unwrap(),
                &format!("{what}: the SLSA attestation"),
            );
            failed(
                cosign_verify_identity(which, s, &root, OTHER_IDENTITY, &["verify"])
                    .arg(&image)
                    .output()
                    .unwrap(),
                &format!("{what}, for another identity"),
            );
        }
    }
}

#[test]
fn wharf_verifies_cosign_2_and_3_keyless_signatures_and_attestations() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let sigstore = backend("WHARF_TEST_SIGSTORE");
    let root = trusted_root(s, &sigstore);
    let ours = fresh_repo("keyless-source");
    let digest = push_and_sign(s, &registry, &ours, "legacy");
    let predicate = s.join("provenance.json");
    std::fs::write(
        &predicate,
        r#"{"buildDefinition":{"buildType":"https://example.com/build","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/keyless-builder"}}}"#,
    )
    .unwrap();
    for (which, expected_format) in [
        ("WHARF_TEST_COSIGN", "cosign .sig"),
        ("WHARF_TEST_COSIGN3", "Sigstore bundle"),
    ] {
        let repo = fresh_repo("keyless-theirs");
        crane_copy(
            &registry,
            &format!("{ours}@{digest}"),
            &format!("{repo}:v1"),
        );
        let image = format!("{registry}/{repo}@{digest}");
        ok(
            cosign_keyless(which, s, &sigstore, &root, &["sign"])
                .arg(&image)
                .output()
                .unwrap(),
            &format!("{which} keyless sign"),
        );
        ok(
            cosign_keyless(
                which,
                s,
                &sigstore,
                &root,
                &[
                    "attest",
                    "--type",
                    "slsaprovenance1",
                    "--predicate",
                    predicate.to_str().unwrap(),
                ],
            )
            .arg(&image)
            .output()
            .unwrap(),
            &format!("{which} keyless attest"),
        );
        let verify = |identity: &str| {
            wharf_verify(s, &registry)
                .args(["--certificate-identity", identity])
                .args(["--certificate-oidc-issuer", TOKEN_ISSUER])
                .arg("--trusted-root")
                .arg(&root)
                .args(["--attestation", SLSA_V1, "--json"])
                .arg(format!("{repo}@{digest}"))
                .output()
                .unwrap()
        };
        let out = verify(TOKEN_SUBJECT);
        assert_exit(&out, 0, &format!("xtask verify of {which} keyless"));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["signatures"][0]["format"], expected_format, "{v}");
        assert_eq!(v["signatures"][0]["signer"], TOKEN_SUBJECT, "{v}");
        assert_eq!(
            v["attestations"][0]["predicate"]["runDetails"]["builder"]["id"],
            "https://example.com/keyless-builder",
            "{v}"
        );
        let out = verify(OTHER_IDENTITY);
        assert_exit(&out, 1, "another identity");
        let said = text(&out.stdout);
        assert!(said.contains("not to the required identity"), "{said}");

        // A trust root without CT logs: the SCT is not skipped silently, only on request.
        let mut stripped: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&root).unwrap()).unwrap();
        stripped.as_object_mut().unwrap().remove("ctlogs");
        let no_ct = s.join("no-ct-logs.json");
        std::fs::write(&no_ct, stripped.to_string()).unwrap();
        let without_ct = |extra: &[&str]| {
            wharf_verify(s, &registry)
                .args(["--certificate-identity", TOKEN_SUBJECT])
                .args(["--certificate-oidc-issuer", TOKEN_ISSUER])
                .arg("--trusted-root")
                .arg(&no_ct)
                .args(extra)
                .arg(format!("{repo}@{digest}"))
                .output()
                .unwrap()
        };
        let out = without_ct(&[]);
        assert_exit(&out, 1, "no CT log in the trust root");
        assert!(
            text(&out.stdout).contains("names no certificate-transparency log"),
            "{}",
            show(&out)
        );
        let out = without_ct(&["--insecure-ignore-sct"]);
        assert_exit(&out, 0, "the SCT check skipped on request");
        assert!(
            text(&out.stdout).contains("SCTs NOT checked (--insecure-ignore-sct)"),
            "{}",
            show(&out)
        );
    }
}

/// Keys of the kinds cosign signs with besides its own P-256 (`cosign import-key-pair` of
/// an openssl key): P-384, P-521, RSA and Ed25519 (which cosign signs with Ed25519ph)
/// signatures cosign made verify with their public keys and not with another's; so does an
/// attestation cosign made with the Ed25519 key (Ed25519ph over the DSSE envelope).
#[test]
fn wharf_verifies_cosign_signatures_made_with_p384_p521_rsa_and_ed25519_keys() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let ours = fresh_repo("key-kinds-source");
    let digest = push_and_sign(s, &registry, &ours, "legacy");
    let openssl = |args: &[&str]| openssl(s, args);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "p384.pem",
    ]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-521",
        "-out",
        "p521.pem",
    ]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:3072",
        "-out",
        "rsa.pem",
    ]);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed25519.pem"]);
    let mut publics = Vec::new();
    for kind in ["p384", "p521", "rsa", "ed25519"] {
        ok(
            cosign("WHARF_TEST_COSIGN", s)
                .args(["import-key-pair", "--key", &format!("{kind}.pem")])
                .args(["--output-key-prefix", &format!("imported-{kind}")])
                .output()
                .unwrap(),
            &format!("cosign import-key-pair {kind}"),
        );
        let repo = fresh_repo(&format!("key-kinds-{kind}"));
        crane_copy(
            &registry,
            &format!("{ours}@{digest}"),
            &format!("{repo}:v1"),
        );
        ok(
            cosign("WHARF_TEST_COSIGN", s)
                .args(["sign", "--key", &format!("imported-{kind}.key")])
                .args(["--tlog-upload=false", "--allow-http-registry"])
                .arg(format!("{registry}/{repo}@{digest}"))
                .output()
                .unwrap(),
            &format!("cosign sign with {kind}"),
        );
        publics.push((kind, s.join(format!("imported-{kind}.pub")), repo));
    }
    let verify = |key: &Path, repo: &str| {
        wharf_verify(s, &registry)
            .arg("--key")
            .arg(key)
            .arg(format!("{repo}@{digest}"))
            .output()
            .unwrap()
    };
    for (i, (kind, public, repo)) in publics.iter().enumerate() {
        let out = verify(public, repo);
        assert_exit(&out, 0, &format!("a {kind} signature cosign made"));
        // The next kind's key (another kind, another key): refused.
        let (_, other, _) = &publics[(i + 1) % publics.len()];
        assert_exit(&verify(other, repo), 1, &format!("{kind} with another key"));
    }
    // An attestation cosign made with the Ed25519 key: Ed25519ph over the DSSE envelope.
    let (_, ed_public, ed_repo) = &publics[3];
    std::fs::write(
        s.join("predicate.json"),
        r#"{"buildDefinition":{"buildType":"https://example.com/ed25519"},"runDetails":{"builder":{"id":"https://example.com/ed25519-builder"}}}"#,
    )
    .unwrap();
    ok(
        cosign("WHARF_TEST_COSIGN", s)
            .args(["attest", "--key", "imported-ed25519.key"])
            .args(["--type", "slsaprovenance1", "--predicate", "predicate.json"])
            .args(["--tlog-upload=false", "--allow-http-registry"])
            .arg(format!("{registry}/{ed_repo}@{digest}"))
            .output()
            .unwrap(),
        "cosign attest with ed25519",
    );
    let attested = |key: &Path| {
        wharf_verify(s, &registry)
            .arg("--key")
            .arg(key)
            .args(["--attestation", SLSA_V1, "--json"])
            .arg(format!("{ed_repo}@{digest}"))
            .output()
            .unwrap()
    };
    let out = attested(ed_public);
    assert_exit(&out, 0, "an attestation cosign made with an Ed25519 key");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["attestations"][0]["predicate"]["runDetails"]["builder"]["id"],
        "https://example.com/ed25519-builder",
        "{v}"
    );
    assert_exit(
        &attested(&publics[0].1),
        1,
        "the Ed25519 attestation with a P-384 key",
    );
}

/// An SBOM (CycloneDX) and a vulnerability scan attested with wharf-sign's library on a
/// registry image: `cosign verify-attestation --type cyclonedx` and `--type vuln` (cosign 2
/// and 3) verify them and print their predicates; another key is refused.
#[test]
fn cosign_verifies_cyclonedx_and_vuln_attestations_made_with_the_library() {
    use wharf_sign::attest::{CYCLONEDX_BOM, VULN_SCAN_V1, attest_image, vuln_predicate};
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let repo = fresh_repo("sbom-vuln");
    let digest = push_and_sign(s, &registry, &repo, "legacy");
    let key_path = s.join("keys/cosign.key");
    let key = wharf_sign::EcdsaP256Key::load(
        &key_path,
        Some(&wharf_core::Secret::new(TEST_KEY_PASSWORD)),
    )
    .unwrap();
    let bom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "numpy", "version": "1.26.4",
                        "purl": "pkg:pypi/numpy@1.26.4"}],
    });
    let now = time::OffsetDateTime::now_utc();
    let vuln = vuln_predicate(
        "pkg:github/aquasecurity/trivy@v0.58.0",
        "0.58.0",
        serde_json::json!({"uri": "ghcr.io/aquasecurity/trivy-db:2", "version": "2"}),
        serde_json::json!({"SchemaVersion": 2, "Results": []}),
        now,
        now,
    );
    let client =
        wharf_registry::distribution::DistributionClient::builder(format!("http://{registry}"))
            .build()
            .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let image: wharf_core::Digest = digest.parse().unwrap();
    for (kind, predicate) in [(CYCLONEDX_BOM, bom), (VULN_SCAN_V1, vuln)] {
        runtime
            .block_on(attest_image(
                &client,
                &repo,
                &image,
                &format!("{registry}/{repo}"),
                kind,
                predicate,
                &key,
                key.public_key(),
            ))
            .unwrap();
    }
    let public = wharf_sign::public_path(&key_path);
    let other = s.join("other");
    cosign_key_pair("WHARF_TEST_COSIGN", s, &other);
    for which in ["WHARF_TEST_COSIGN", "WHARF_TEST_COSIGN3"] {
        for (kind, needle) in [("cyclonedx", "pkg:pypi/numpy@1.26.4"), ("vuln", "trivy-db")] {
            let verify = |key: &Path| {
                cosign(which, s)
                    .args(["verify-attestation", "--type", kind, "--key"])
                    .arg(key)
                    .args(["--allow-http-registry", "--insecure-ignore-tlog=true"])
                    .arg(format!("{registry}/{repo}@{digest}"))
                    .output()
                    .unwrap()
            };
            let said = ok(
                verify(&public),
                &format!("{which} verify-attestation --type {kind}"),
            );
            // cosign prints each verified envelope; the predicate is inside its payload.
            let payloads: Vec<String> = said
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["payload"].as_str().map(str::to_owned))
                .map(|p| {
                    use base64::Engine as _;
                    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(p).unwrap())
                        .unwrap()
                })
                .collect();
            assert!(
                payloads.iter().any(|p| p.contains(needle)),
                "{which} {kind}: {payloads:?}"
            );
            failed(
                verify(&other.join("cosign.pub")),
                &format!("{which} --type {kind} with another key"),
            );
        }
    }
}

/// Certificates of one's own PKI ("bring your own PKI"): an openssl root, an intermediate
/// without an EKU, an RSA leaf for code signing; cosign signs with the leaf (`--cert`,
/// `--cert-chain`, no transparency log) and both cosign and `cargo xtask verify --ca-roots …
/// --insecure-ignore-tlog --insecure-ignore-sct` verify it. Without the explicit skips,
/// against another root, for another identity, or with a leaf not for code signing: refused,
/// each for its reason.
#[test]
fn certificates_of_ones_own_pki_verify_only_with_the_explicit_skips() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let registry = backend("WHARF_TEST_REGISTRY");
    let ours = fresh_repo("byo-source");
    let digest = push_and_sign(s, &registry, &ours, "legacy");
    let openssl = |args: &[&str]| openssl(s, args);
    let root = |name: &str| {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:3072",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    };
    root("byo-root");
    root("other-root");
    std::fs::write(
        s.join("inter.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "inter.key",
        "-out",
        "inter.csr",
        "-subj",
        "/CN=byo intermediate",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "inter.csr",
        "-CA",
        "byo-root.pem",
        "-CAkey",
        "byo-root.key",
        "-CAcreateserial",
        "-out",
        "inter.pem",
        "-days",
        "30",
        "-extfile",
        "inter.ext",
    ]);
    let leaf = |name: &str, eku: &str| {
        std::fs::write(
            s.join(format!("{name}.ext")),
            format!("keyUsage=critical,digitalSignature\n{eku}subjectAltName=email:release@acme.example\n"),
        )
        .unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &format!("{name}.key"),
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            "/CN=release signer",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "7",
            "-extfile",
            &format!("{name}.ext"),
        ]);
        ok(
            cosign("WHARF_TEST_COSIGN", s)
                .args(["import-key-pair", "--key", &format!("{name}.key")])
                .args(["--output-key-prefix", &format!("{name}-cosign")])
                .output()
                .unwrap(),
            "cosign import-key-pair",
        );
    };
    leaf("leaf", "extendedKeyUsage=codeSigning\n");
    leaf("no-eku-leaf", "");
    let chain = [
        std::fs::read_to_string(s.join("inter.pem")).unwrap(),
        std::fs::read_to_string(s.join("byo-root.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(s.join("chain.pem"), chain).unwrap();
    let signed = |leaf: &str| {
        let repo = fresh_repo("byo");
        crane_copy(
            &registry,
            &format!("{ours}@{digest}"),
            &format!("{repo}:v1"),
        );
        ok(
            cosign("WHARF_TEST_COSIGN", s)
                .args(["sign", "--key", &format!("{leaf}-cosign.key")])
                .args([
                    "--cert",
                    &format!("{leaf}.pem"),
                    "--cert-chain",
                    "chain.pem",
                ])
                .args(["--tlog-upload=false", "--allow-http-registry"])
                .arg(format!("{registry}/{repo}@{digest}"))
                .output()
                .unwrap(),
            &format!("cosign sign with {leaf}"),
        );
        repo
    };
    let repo = signed("leaf");
    ok(
        cosign("WHARF_TEST_COSIGN", s)
            .args(["verify", "--certificate-chain", "chain.pem"])
            .args(["--certificate-identity", "release@acme.example"])
            .args(["--certificate-oidc-issuer-regexp", ".*"])
            .args([
                "--insecure-ignore-tlog",
                "--insecure-ignore-sct",
                "--allow-http-registry",
            ])
            .arg(format!("{registry}/{repo}@{digest}"))
            .output()
            .unwrap(),
        "cosign verifies its own BYO-PKI signature",
    );
    let verify = |repo: &str, roots: &str, identity: &str, skips: &[&str]| {
        wharf_verify(s, &registry)
            .args(["--ca-roots", &s.join(roots).display().to_string()])
            .args(["--certificate-identity", identity])
            .args(["--certificate-oidc-issuer-regexp", ".*"])
            .args(skips)
            .arg(format!("{repo}@{digest}"))
            .output()
            .unwrap()
    };
    // An issuer pattern without an identity is a mistake, named, never a silent key check.
    let out = wharf_verify(s, &registry)
        .args(["--certificate-oidc-issuer-regexp", ".*"])
        .arg(format!("{repo}@{digest}"))
        .output()
        .unwrap();
    expect(
        &out,
        2,
        &["needs --certificate-identity or --certificate-identity-regexp"],
    );
    let skips = ["--insecure-ignore-tlog", "--insecure-ignore-sct"];
    let out = verify(&repo, "byo-root.pem", "release@acme.example", &skips);
    let said = expect(
        &out,
        0,
        &[
            "VERIFIED",
            "transparency log NOT checked",
            "SCTs NOT checked",
        ],
    );
    assert!(said.contains("by release@acme.example"), "{said}");
    for (why, out, needle) in [
        (
            "no log entry, without --insecure-ignore-tlog",
            verify(
                &repo,
                "byo-root.pem",
                "release@acme.example",
                &["--insecure-ignore-sct"],
            ),
            "has no dev.sigstore.cosign/bundle annotation",
        ),
        (
            "another root",
            verify(&repo, "other-root.pem", "release@acme.example", &skips),
            "does not chain to a certificate authority",
        ),
        (
            "another identity",
            verify(&repo, "byo-root.pem", "eve@acme.example", &skips),
            "not to the required identity",
        ),
        (
            "a leaf not for code signing",
            verify(
                &signed("no-eku-leaf"),
                "byo-root.pem",
                "release@acme.example",
                &skips,
            ),
            "is not for code signing",
        ),
    ] {
        assert_exit(&out, 1, why);
        assert!(text(&out.stdout).contains(needle), "{why}: {}", show(&out));
    }
    // cosign 3's bundle of a blob signed with the same leaf and no log (it writes the leaf
    // as a v0.3 `x509CertificateChain`): wharf-sign verifies it with the same explicit skips
    // and refuses it without `insecure_ignore_tlog`, naming the missing entry.
    std::fs::write(s.join("model.bin"), b"weights").unwrap();
    ok(
        cosign("WHARF_TEST_COSIGN3", s)
            .args(["sign-blob", "--key", "leaf-cosign.key"])
            .args([
                "--certificate",
                "leaf.pem",
                "--certificate-chain",
                "chain.pem",
            ])
            .args(["--tlog-upload=false", "--use-signing-config=false"])
            .args([
                "--new-bundle-format",
                "--bundle",
                "model.sigstore.json",
                "-y",
            ])
            .arg("model.bin")
            .output()
            .unwrap(),
        "cosign 3 sign-blob with one's own PKI",
    );
    let bundle = wharf_sign::bundle::Bundle::parse(
        &std::fs::read(s.join("model.sigstore.json")).unwrap(),
        "model.sigstore.json",
    )
    .unwrap();
    let ca = wharf_sign::rekor::TrustedRoot::from_ca_pems(
        &std::fs::read_to_string(s.join("chain.pem")).unwrap(),
        "chain.pem",
    )
    .unwrap()
    .insecure_ignore_sct();
    let identity =
        wharf_sign::fulcio::Identity::exact_with_issuer_pattern("release@acme.example", ".*")
            .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verify_blob = |root: &wharf_sign::rekor::TrustedRoot, file: &str| {
        runtime.block_on(wharf_sign::bundle::verify_file(
            &bundle,
            &s.join(file),
            wharf_sign::bundle::SignedBy::Identity(&identity),
            root,
        ))
    };
    let v = verify_blob(&ca.clone().insecure_ignore_tlog(), "model.bin").unwrap();
    assert_eq!(v.log_index, None);
    let cert = v.certificate.unwrap();
    assert_eq!(
        (cert.subject.as_str(), cert.sct_ignored),
        ("release@acme.example", true)
    );
    let err = verify_blob(&ca, "model.bin").unwrap_err().to_string();
    assert!(err.contains("has no transparency-log entry"), "{err}");
    std::fs::write(s.join("other.bin"), b"other weights").unwrap();
    let err = verify_blob(&ca.insecure_ignore_tlog(), "other.bin")
        .unwrap_err()
        .to_string();
    assert!(err.contains("signs another artifact"), "{err}");
}

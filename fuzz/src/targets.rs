//! The targets. Each reads one input and panics only on a bug (see the crate docs).
//!
//! The keys, trust roots, certificates and layout blobs the targets verify against are real
//! fixtures in `data/` (sources in `corpus/SOURCES.md`), embedded so the libFuzzer build
//! needs no files at run time. A fixture that does not load is a broken build of this
//! crate, so loading one panics.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wharf_core::audit::{
    ChainProblem, VerifyRange, canonical_json, is_canonical_json, verify_chain,
};
use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, blob_stream_from};
use wharf_core::{
    AuditLog, Descriptor, Digest, Environment, ImageIndex, ImageManifest, Reference, Registry,
    StoredRecord, media_types,
};
use wharf_sign::PublicKey;
use wharf_sign::attest::{Envelope, Statement, pae, verify_envelope};
use wharf_sign::bundle::{self, Artifact, Bundle, SignedBy};
use wharf_sign::cosign::{Requirements, SimpleSigning, verify_payload, verify_payload_keyless};
use wharf_sign::fulcio::{Identity, verify_certificate, verify_with_certificate};
use wharf_sign::rekor::{RekorBundle, TrustedRoot, verify_bundle};
use wharf_sign::x509::Certificate;

use crate::MAX_INPUT;

// ---------------------------------------------------------------------------------------
// Fixed material.

macro_rules! data {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/", $name))
    };
}

fn key(pem: &[u8], name: &str) -> PublicKey {
    let text = std::str::from_utf8(pem).expect("fixture key is UTF-8");
    PublicKey::from_pem(text, name).expect("fixture key loads")
}

fn root(json: &[u8], name: &str) -> TrustedRoot {
    TrustedRoot::parse(json, name).expect("fixture trust root loads")
}

fn certs(pem: &[u8], name: &str) -> Vec<Certificate> {
    let text = std::str::from_utf8(pem).expect("fixture certificate is UTF-8");
    Certificate::from_pem_chain(text, name).expect("fixture certificate loads")
}

/// containers/image's cosign test key.
static COSIGN_PUB: LazyLock<PublicKey> = LazyLock::new(|| key(data!("cosign.pub"), "cosign.pub"));
/// rekor.sigstore.dev's key.
static REKOR_PUB: LazyLock<PublicKey> = LazyLock::new(|| key(data!("rekor.pub"), "rekor.pub"));
/// The key the example pipeline signed its corpus seeds with.
static PIPELINE_PUB: LazyLock<PublicKey> =
    LazyLock::new(|| key(data!("pipeline-cosign.pub"), "pipeline-cosign.pub"));
/// The example pipeline's audit checkpoint key.
static CHECKPOINT_PUB: LazyLock<PublicKey> = LazyLock::new(|| {
    key(
        data!("pipeline-audit-checkpoint.pem.pub"),
        "pipeline-audit-checkpoint.pem.pub",
    )
});
/// sigstore-conformance's managed key.
static MANAGED_KEY: LazyLock<PublicKey> =
    LazyLock::new(|| key(data!("managed-key.pub"), "managed-key.pub"));
static PRODUCTION: LazyLock<TrustedRoot> =
    LazyLock::new(|| root(data!("production_trusted_root.json"), "production"));
static STAGING: LazyLock<TrustedRoot> =
    LazyLock::new(|| root(data!("staging_trusted_root.json"), "staging"));
/// A Fulcio leaf (mitr@redhat.com) and its chain, logged at [`FULCIO_AT`].
static FULCIO_LEAF: LazyLock<Vec<Certificate>> =
    LazyLock::new(|| certs(data!("fulcio-cert"), "fulcio-cert"));
static FULCIO_CHAIN: LazyLock<Vec<Certificate>> =
    LazyLock::new(|| certs(data!("fulcio-chain"), "fulcio-chain"));
const FULCIO_AT: i64 = 1_670_870_899;
static HAPPY_BUNDLE: LazyLock<Bundle> = LazyLock::new(|| {
    Bundle::parse(data!("happy-path-v0.3.sigstore.json"), "happy-path-v0.3")
        .expect("fixture bundle loads")
});
const A_TXT: &[u8] = data!("a.txt");
/// Artifacts of the corpus bundles, so a seed's message digest can match.
const ARTIFACTS: &[&[u8]] = &[
    A_TXT,
    data!("sigstore-python-bundle.txt"),
    data!("sigstore-python-bundle_v3.txt"),
    data!("sigstore-python-bundle_no_cert_v1.txt"),
];
static CONFORMANCE_IDENTITY: LazyLock<Identity> = LazyLock::new(|| {
    Identity::exact(
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        "https://token.actions.githubusercontent.com",
    )
});
static MITR: LazyLock<Identity> =
    LazyLock::new(|| Identity::exact("mitr@redhat.com", "https://github.com/login/oauth"));
/// The manifests of the example pipeline's layout (a ModelPack image, its `.sig`, `.att`).
const LAYOUT_BLOBS: &[(&str, &[u8])] = &[
    (
        "c4e9e342e8862da3afa06ce9b1cef051aaa5ef648807d1142a4a8e10f7699861",
        data!("layout/c4e9e342e8862da3afa06ce9b1cef051aaa5ef648807d1142a4a8e10f7699861"),
    ),
    (
        "80d530333946a49c747a280d137e5b3454b36837be87468db04df7e01d7ec460",
        data!("layout/80d530333946a49c747a280d137e5b3454b36837be87468db04df7e01d7ec460"),
    ),
    (
        "2277d25e0aa0fd70b739298353188a607f4fe4879b88f1551d04dcd1dd049be8",
        data!("layout/2277d25e0aa0fd70b739298353188a607f4fe4879b88f1551d04dcd1dd049be8"),
    ),
];
/// The example pipeline's first audit record (the checkpoint mode's record 0).
const RECORD_0: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/corpus/audit_record/record-000000000000.json"
));

// ---------------------------------------------------------------------------------------
// Helpers.

fn text(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_INPUT {
        return None;
    }
    std::str::from_utf8(data).ok()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    static SCRATCH: RefCell<Option<(tempfile::TempDir, u64)>> = const { RefCell::new(None) };
}

/// Run `f` on the thread's tokio runtime (the layout and the file log use `tokio::fs`).
fn on_runtime<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

/// Run `f` in a fresh, empty directory, removed afterwards.
fn in_scratch_dir<R>(f: impl FnOnce(&Path) -> R) -> R {
    let dir: PathBuf = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let (base, n) = s.get_or_insert_with(|| {
            // Memory-backed where there is one: the layout and the log sync every write.
            let shm = Path::new("/dev/shm");
            let parent = if shm.is_dir() {
                shm.to_owned()
            } else {
                std::env::temp_dir()
            };
            remove_stale_scratch(&parent);
            let prefix = format!("wharf-fuzz-{}-", std::process::id());
            let builder = tempfile::Builder::new().prefix(&prefix).clone();
            let base = match builder.tempdir_in(&parent) {
                Ok(d) => d,
                Err(_) => builder.tempdir().expect("a temporary directory"),
            };
            (base, 0)
        });
        *n += 1;
        base.path().join(n.to_string())
    });
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let out = f(&dir);
    remove_all(&dir);
    out
}

/// Remove the scratch directories of runs whose process is gone (one that aborted, on a
/// memory limit or libFuzzer's exit, cannot remove its own).
fn remove_stale_scratch(parent: &Path) {
    // Which processes are alive is read from /proc: elsewhere nothing is removed.
    let (true, Ok(entries)) = (Path::new("/proc/self").exists(), std::fs::read_dir(parent)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("wharf-fuzz-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            remove_all(&entry.path());
        }
    }
}

/// Remove `dir`, read-only files (the audit log's) included.
fn remove_all(dir: &Path) {
    if std::fs::remove_dir_all(dir).is_ok() {
        return;
    }
    for entry in walk(dir) {
        if let Ok(meta) = std::fs::metadata(&entry) {
            let mut perms = meta.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            let _ = std::fs::set_permissions(&entry, perms);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
        i += 1;
    }
    out
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("a scratch directory");
    }
    std::fs::write(path, bytes).expect("a scratch file");
}

/// Errors people read are one line (the project's rule for messages).
fn assert_one_line(target: &str, what: &str, err: &dyn std::fmt::Display) {
    let msg = err.to_string();
    if msg.contains('\n') && !crate::pending(target, "one-line errors") {
        panic!("{what}: the error is not one line: {msg:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Model manifest and wharf.toml.

thread_local! {
    static GATE: Option<wharf_policy::GovernanceGate> =
        wharf_policy::GovernanceGate::new(wharf_policy::GovernanceConfig::default()).ok();
}

/// `model.yaml`: [`wharf_policy::ModelManifest::from_yaml_str`]; a manifest that parses is
/// written back as YAML and must parse to the same manifest, and goes through the
/// governance gate for every environment.
pub fn model_manifest(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let m = match wharf_policy::ModelManifest::from_yaml_str(text, "model.yaml") {
        Ok(m) => m,
        Err(e) => return assert_one_line("model_manifest", "model.yaml", &e),
    };
    let yaml = serde_yaml::to_string(&m).expect("a manifest serializes");
    let again = wharf_policy::ModelManifest::from_yaml_str(&yaml, "model.yaml (written back)")
        .unwrap_or_else(|e| {
            panic!("a manifest that parsed does not parse once written back: {e}\n{yaml}")
        });
    assert_eq!(
        again, m,
        "a manifest changed when written back and read again"
    );
    GATE.with(|gate| {
        if let Some(gate) = gate {
            for env in Environment::ALL {
                let _ = gate.evaluate_manifest(&m, env);
            }
        }
    });
}

/// `wharf.toml`: [`wharf_pipeline::Config::from_toml_str`], with `WHARF__…` overrides taken
/// from `# WHARF__KEY=value` comment lines at the top of the input; a config that parses
/// answers every environment's policy and governance thresholds.
pub fn wharf_toml(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let vars: Vec<(String, String)> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').trim().split_once('='))
        .filter(|(k, _)| k.starts_with(wharf_pipeline::config::ENV_PREFIX))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let config = match wharf_pipeline::Config::from_toml_str(
        text,
        "wharf.toml",
        Path::new("/fuzz/project"),
        vars,
    ) {
        Ok(c) => c,
        Err(e) => return assert_one_line("wharf_toml", "wharf.toml", &e),
    };
    for env in Environment::ALL {
        let _ = config.environment_policy(env);
        let g = config.governance(env);
        let _ = g.thresholds_for(env);
    }
    let _ = (config.manifest_path(), config.audit_dir());
}

// ---------------------------------------------------------------------------------------
// OCI.

/// An OCI (or Docker) manifest or index: [`ImageManifest::from_slice`] and
/// [`ImageIndex::from_slice`]; what parses is written back and must read back the same.
pub fn oci_manifest(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    if let Ok(m) = ImageManifest::from_slice(data, "manifest") {
        let again = ImageManifest::from_slice(&m.to_vec(), "manifest (written back)")
            .unwrap_or_else(|e| panic!("a manifest does not parse once written back: {e}"));
        assert_eq!(again, m, "a manifest changed when written back");
        let _ = m.effective_artifact_type();
        let _ = media_types::is_manifest(m.media_type.as_deref().unwrap_or_default());
    }
    if let Ok(i) = ImageIndex::from_slice(data, "index") {
        let again = ImageIndex::from_slice(&i.to_vec(), "index (written back)")
            .unwrap_or_else(|e| panic!("an index does not parse once written back: {e}"));
        assert_eq!(again, i, "an index changed when written back");
    }
}

const REPO: &str = "fuzz/repo";

/// An OCI image layout whose `index.json` is the input (its blobs: the example pipeline's
/// manifests): [`wharf_registry::layout::LayoutRegistry`]'s `list_tags`, `resolve_tag`,
/// `fetch_manifest`, `referrers`, then a push of a tagged referrer over that index, after
/// which the tag must resolve to it and `referrers` (if it answers) must list it.
pub fn oci_layout(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    in_scratch_dir(|dir| {
        let layout = dir.join(REPO);
        write(
            &layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
        write(&layout.join("index.json"), data);
        for (hex, bytes) in LAYOUT_BLOBS {
            write(&layout.join("blobs/sha256").join(hex), bytes);
        }
        let reg = wharf_registry::layout::LayoutRegistry::open(dir).expect("a layout registry");
        on_runtime(layout_ops(&reg, data));
    });
}

async fn layout_ops(reg: &wharf_registry::layout::LayoutRegistry, data: &[u8]) {
    if let Ok(tags) = reg.list_tags(REPO, &Default::default()).await {
        for tag in tags.iter().take(16) {
            if let Ok(d) = reg.resolve_tag(REPO, tag).await {
                let _ = reg.fetch_manifest(REPO, &d.digest).await;
            }
        }
    }
    if let Ok(index) = ImageIndex::from_slice(data, "index.json") {
        for d in index.manifests.iter().take(16) {
            let _ = reg.fetch_manifest(REPO, &d.digest).await;
            let _ = reg.referrers(REPO, &d.digest, &Default::default()).await;
        }
    }
    // Write over the index: a referrer of the ModelPack manifest, tagged.
    let config = b"{}".to_vec();
    let config_desc = Descriptor::for_bytes(media_types::OCI_EMPTY, &config);
    if reg
        .push_blob(
            REPO,
            &config_desc.digest,
            blob_stream_from(config),
            &PushBlobOptions::default(),
        )
        .await
        .is_err()
    {
        return;
    }
    let (subject_hex, subject_bytes) = LAYOUT_BLOBS[0];
    let subject = Descriptor::new(
        media_types::OCI_MANIFEST,
        Digest::parse(&format!("sha256:{subject_hex}")).expect("a fixture digest"),
        subject_bytes.len() as u64,
    );
    let mut referrer = ImageManifest::new(config_desc, vec![]);
    referrer.artifact_type = Some("application/vnd.wharf.fuzz".into());
    referrer.subject = Some(subject.clone());
    let bytes = referrer.to_vec();
    let pushed = reg
        .push_manifest(
            REPO,
            &ManifestBytes::new(media_types::OCI_MANIFEST, bytes),
            &PushManifestOptions::tagged("fuzz"),
        )
        .await;
    let Ok(pushed) = pushed else { return };
    let resolved = reg
        .resolve_tag(REPO, "fuzz")
        .await
        .unwrap_or_else(|e| panic!("the tag just pushed does not resolve: {e}"));
    assert_eq!(
        resolved.digest, pushed.digest,
        "the tag just pushed holds another manifest"
    );
    if let Ok(referrers) = reg
        .referrers(REPO, &subject.digest, &Default::default())
        .await
    {
        assert!(
            referrers.iter().any(|r| r.digest == pushed.digest),
            "the referrer just pushed is not listed among its subject's referrers"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Cosign.

/// A cosign simple-signing payload: [`SimpleSigning::parse`]; what parses is written back
/// and must read back the same.
pub fn cosign_payload(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(p) = SimpleSigning::parse(data) else {
        return;
    };
    let bytes = p.to_bytes();
    let again = SimpleSigning::parse(&bytes)
        .unwrap_or_else(|e| panic!("a payload does not parse once written back: {e}"));
    assert_eq!(again, p, "a payload changed when written back");
}

/// A cosign signature layer in containers/image's signature-file form (`\0sigstore-json\n`
/// and `{mimeType, payload, annotations}`), or a Rekor bundle annotation on its own: the
/// layer is verified keyed (two keys, with and without a required Rekor bundle) and
/// keyless (production trust root), the bundle with rekor.sigstore.dev's key. What
/// verifies must be for the digest asked for.
pub fn cosign_signature(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let body = data.strip_prefix(b"\x00sigstore-json\n").unwrap_or(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    if let Ok(bundle) = RekorBundle::parse(&v.to_string()) {
        let payload = data!("rekor-payload");
        let sig = std::str::from_utf8(data!("rekor-sig"))
            .unwrap_or_default()
            .trim();
        let _ = block_on(verify_bundle(&bundle, &REKOR_PUB, payload, sig));
    }
    let Some(payload) = v["payload"].as_str().and_then(|p| STANDARD.decode(p).ok()) else {
        return;
    };
    let Ok(annotations) =
        serde_json::from_value::<BTreeMap<String, String>>(v["annotations"].clone())
    else {
        return;
    };
    let expected = SimpleSigning::parse(&payload)
        .map(|p| p.manifest_digest)
        .unwrap_or_else(|_| Digest::sha256_of(&payload));
    let mut with_rekor = Requirements::default();
    with_rekor.rekor_key = Some(&*REKOR_PUB);
    for req in [Requirements::default(), with_rekor] {
        for key in [&*COSIGN_PUB, &*PIPELINE_PUB] {
            if let Ok(v) = block_on(verify_payload(&payload, &annotations, &expected, key, &req)) {
                assert_eq!(
                    v.payload.manifest_digest, expected,
                    "a signature verified for another digest"
                );
            }
        }
    }
    for root in [&*PRODUCTION, &*STAGING] {
        if let Ok(v) = block_on(verify_payload_keyless(
            &payload,
            &annotations,
            &expected,
            &MITR,
            root,
            wharf_sign::cosign::ReferenceMatch::Any,
        )) {
            assert_eq!(
                v.payload.manifest_digest, expected,
                "a keyless signature verified for another digest"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sigstore.

/// The issuer a bundle's certificate names, to build an identity that accepts any subject
/// from it (so genuine bundles verify to the end).
fn any_identity_of(bundle: &Bundle) -> Option<Identity> {
    let chain = bundle.certificate_chain().ok()??;
    let issuer = chain.first()?.oidc_issuer()?;
    Identity::matching(".*", issuer).ok()
}

/// What a bundle is about: the corpus artifact whose digest it states, else a.txt, and for
/// a DSSE bundle the digest of its statement's first subject.
fn artifact_of(bundle: &Bundle) -> (&'static [u8], Option<Digest>) {
    let stated = bundle
        .message_signature
        .as_ref()
        .and_then(|m| STANDARD.decode(&m.message_digest.digest).ok());
    let bytes = ARTIFACTS
        .iter()
        .find(|a| {
            stated
                .as_deref()
                .is_some_and(|s| hex(s) == Digest::sha256_of(a).hex())
        })
        .copied()
        .unwrap_or(A_TXT);
    let subject = bundle
        .dsse_envelope
        .as_ref()
        .and_then(|e| e["payload"].as_str())
        .and_then(|p| STANDARD.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<Statement>(&p).ok())
        .and_then(|s| {
            let hex = s.subject.first()?.digest.get("sha256")?.clone();
            Digest::parse(&format!("sha256:{hex}")).ok()
        });
    (bytes, subject)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Sigstore bundle: [`Bundle::parse`], its certificate chain, then offline verification
/// against the production and staging trust roots, by key, by identity (the conformance
/// suite's and any identity of the certificate's issuer) and by digest.
pub fn sigstore_bundle(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(b) = Bundle::parse(data, "bundle.sigstore.json") else {
        return;
    };
    let _ = b.certificate_chain();
    let (artifact, subject) = artifact_of(&b);
    let any = any_identity_of(&b);
    for root in [&*PRODUCTION, &*STAGING] {
        let _ = block_on(bundle::verify_with_key(
            &b,
            artifact,
            Some(&*MANAGED_KEY),
            root,
        ));
        let _ = block_on(bundle::verify_with_key(&b, artifact, None, root));
        let _ = block_on(bundle::verify_with_identity(
            &b,
            artifact,
            &CONFORMANCE_IDENTITY,
            root,
        ));
        if let Some(any) = &any {
            let _ = block_on(bundle::verify_with_identity(&b, artifact, any, root));
            if let Some(d) = &subject {
                let _ = block_on(bundle::verify(
                    &b,
                    Artifact::Digest(d),
                    Some(SignedBy::Identity(any)),
                    root,
                ));
            }
        }
        if let Some(d) = &subject {
            let _ = block_on(bundle::verify(
                &b,
                Artifact::Digest(d),
                Some(SignedBy::Key(&*MANAGED_KEY)),
                root,
            ));
        }
    }
}

/// A Sigstore `trusted_root.json`: [`TrustedRoot::parse`]; a root that parses is asked for
/// its logs and used to verify a real Fulcio certificate and a real keyless bundle.
pub fn trusted_root(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(root) = TrustedRoot::parse(data, "trusted_root.json") else {
        return;
    };
    for log in root.tlogs.iter().chain(&root.ctlogs) {
        let _ = (
            log.valid_at(0),
            log.valid_at(FULCIO_AT),
            root.log(&log.log_id),
        );
    }
    let _ = verify_certificate(&FULCIO_LEAF[0], &FULCIO_CHAIN, &root, FULCIO_AT, &MITR);
    let _ = verify_certificate(&FULCIO_LEAF[0], &[], &root, FULCIO_AT, &MITR);
    let _ = block_on(bundle::verify_with_identity(
        &HAPPY_BUNDLE,
        A_TXT,
        &CONFORMANCE_IDENTITY,
        &root,
    ));
}

/// A DSSE envelope (or an in-toto statement on its own): the envelope is verified with the
/// pipeline's and cosign's test keys, its payload read as a statement; envelopes and
/// statements are written back and must read back the same.
pub fn dsse(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    match serde_json::from_slice::<Envelope>(data) {
        Ok(env) => {
            for key in [&*PIPELINE_PUB, &*COSIGN_PUB] {
                if let Ok((st, _)) = block_on(verify_envelope(&env, key)) {
                    statement(&st);
                }
            }
            if let Ok(payload) = STANDARD.decode(&env.payload) {
                let _ = pae(&env.payload_type, &payload);
                if let Ok(st) = serde_json::from_slice::<Statement>(&payload) {
                    statement(&st);
                }
            }
            let bytes = serde_json::to_vec(&env).expect("an envelope serializes");
            let again: Envelope = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("an envelope does not parse once written back: {e}"));
            assert_eq!(again, env, "an envelope changed when written back");
        }
        Err(_) => {
            if let Ok(st) = serde_json::from_slice::<Statement>(data) {
                statement(&st);
            }
        }
    }
}

fn statement(st: &Statement) {
    let image = Digest::sha256_of(b"image");
    let _ = st.is_about(&image);
    let bytes = serde_json::to_vec(st).expect("a statement serializes");
    let again: Statement = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("a statement does not parse once written back: {e}"));
    assert_eq!(&again, st, "a statement changed when written back");
}

// ---------------------------------------------------------------------------------------
// Audit.

/// The example pipeline's first record, parsed.
static FIRST: LazyLock<StoredRecord> =
    LazyLock::new(|| serde_json::from_slice(RECORD_0).expect("fixture record loads"));

/// The `sequence` an input claims, if it has one.
fn claimed_sequence(data: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()?
        .get("sequence")?
        .as_u64()
}

/// How the log's slow path (and any auditor) decodes a record: parse, drop `hash`,
/// canonicalize, SHA-256. `Some((record, hash matches))` when it is a record.
fn recompute(data: &[u8]) -> Option<(StoredRecord, bool)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    let record: StoredRecord = serde_json::from_value(value.clone()).ok()?;
    value.as_object_mut()?.remove("hash");
    let ok = Digest::sha256_of(&canonical_json(&value)) == record.hash;
    Some((record, ok))
}

/// An audit record (or checkpoint) as stored: RFC 8785 canonical JSON (`canonical_json` and
/// `is_canonical_json` must agree), [`StoredRecord`] and its chain hash, then the input as
/// record 0 (or checkpoint 0 of a real record) of a write-once file log, which
/// `verify_with`, `read`, `query` and `find_run` walk. The log must agree with the
/// recomputed hash: an intact report means the record decodes and its hash recomputes.
pub fn audit_record(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => {
            let c = canonical_json(&v);
            assert!(
                is_canonical_json(&c),
                "is_canonical_json refuses what canonical_json wrote: {}",
                String::from_utf8_lossy(&c)
            );
            let v2: serde_json::Value = serde_json::from_slice(&c).expect("canonical JSON is JSON");
            assert_eq!(
                canonical_json(&v2),
                c,
                "canonical JSON of canonical JSON differs"
            );
            assert_eq!(
                is_canonical_json(data),
                c == data,
                "is_canonical_json and canonical_json disagree on this input"
            );
        }
        Err(_) => assert!(
            !is_canonical_json(data),
            "is_canonical_json accepts bytes that are not JSON"
        ),
    }
    if let Ok(r) = serde_json::from_slice::<StoredRecord>(data) {
        let valid = r.hash_is_valid();
        let report = verify_chain(std::slice::from_ref(&r), r.prev_hash.as_ref());
        // After a real first record: wherever the input claims to sit (a huge sequence is a
        // gap, not a slot per position).
        let _ = verify_chain(&[FIRST.clone(), r.clone()], None);
        if !valid {
            assert!(
                !report.is_intact(),
                "verify_chain calls a record with a wrong hash intact"
            );
        }
        // Written back (as the log stores it) and read again: the same canonical form and
        // the same verdict on the hash (1.0 and 1 are one number in canonical JSON, so
        // the values themselves may differ in type).
        let stored = canonical_json(&serde_json::to_value(&r).expect("a record serializes"));
        let again: StoredRecord = serde_json::from_slice(&stored)
            .unwrap_or_else(|e| panic!("a record does not parse once written back: {e}"));
        let again_stored =
            canonical_json(&serde_json::to_value(&again).expect("a record serializes"));
        assert_eq!(
            String::from_utf8_lossy(&again_stored),
            String::from_utf8_lossy(&stored),
            "a record changed when written back"
        );
        assert_eq!(
            again.hash_is_valid(),
            valid,
            "a record's hash check changed when it was written back"
        );
    }
    let checkpoint = serde_json::from_slice::<serde_json::Value>(data)
        .is_ok_and(|v| v.get("statement").is_some());
    in_scratch_dir(|dir| {
        let log = wharf_audit::FileAuditLog::open(dir.join("audit")).expect("a file audit log");
        let (record, checkpoint_bytes) = if checkpoint {
            (RECORD_0, Some(data))
        } else {
            (data, None)
        };
        write(&dir.join("audit").join(wharf_audit::record_key(0)), record);
        // A record also sits where it claims to (a stray file far past the head).
        if !checkpoint
            && let Some(seq) = claimed_sequence(data)
            && (1..1_000_000_000_000).contains(&seq)
        {
            write(&dir.join("audit").join(wharf_audit::record_key(seq)), data);
        }
        if let Some(cp) = checkpoint_bytes {
            write(&dir.join("audit/checkpoints/000000000000.json"), cp);
        }
        on_runtime(async {
            let report = log
                .verify_with(&VerifyRange::default(), Some(&*CHECKPOINT_PUB))
                .await;
            let _ = log.read(0).await;
            let _ = log.head().await;
            let _ = log.find_run("run-fuzz").await;
            let _ = log.query(&wharf_audit::Query::default()).await;
            let Ok(report) = report else { return };
            let _ = report.to_string();
            if checkpoint_bytes.is_some() {
                if report.is_intact() && report.checkpoints_verified == 1 {
                    let cp: wharf_audit::Checkpoint = serde_json::from_slice(data)
                        .expect("an intact log's checkpoint is a checkpoint");
                    assert!(
                        cp.verify(&*CHECKPOINT_PUB).await.is_ok(),
                        "the log verified a checkpoint whose signature does not verify"
                    );
                }
                return;
            }
            let recomputed = recompute(data);
            if report.is_intact() {
                let (r, ok) = recomputed
                    .as_ref()
                    .expect("an intact log's record decodes as a record");
                assert!(
                    ok,
                    "the log calls intact a record whose hash does not recompute"
                );
                assert_eq!(
                    r.sequence, 0,
                    "the log calls intact record 0 stating another sequence"
                );
                assert!(
                    r.prev_hash.is_none(),
                    "the log calls intact a first record with a prev_hash"
                );
            }
            let mismatch = report
                .problems
                .iter()
                .any(|p| matches!(p, ChainProblem::HashMismatch { sequence: 0 }));
            if let Some((r, true)) = &recomputed
                && r.sequence == 0
            {
                assert!(
                    !mismatch,
                    "the log reports a hash mismatch on a record whose hash recomputes"
                );
            }
        });
    });
}

// ---------------------------------------------------------------------------------------
// X.509, keys, references.

/// A certificate (DER, or a PEM chain) and public keys (PEM, DER): wharf-sign's DER reader
/// and what it says (names, issuer, validity), written back as PEM and DER and read back
/// the same, a signature check with its key and certificate verification against the
/// production trust root at its `notBefore`.
pub fn x509(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    if let Ok(c) = Certificate::from_der(data, "cert.der") {
        certificate(&c);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(chain) = Certificate::from_pem_chain(text, "cert.pem") {
            for c in &chain {
                certificate(c);
            }
            let (nb, _) = chain[0].validity();
            let _ = verify_certificate(&chain[0], &chain[1..], &PRODUCTION, nb, &MITR);
        }
        let _ = PublicKey::from_pem(text, "key.pub");
    }
    let _ = PublicKey::from_spki_der(data, "key.der");
}

fn certificate(c: &Certificate) {
    let _ = (
        c.subject_names(),
        c.oidc_issuer(),
        c.validity(),
        c.spki_der(),
    );
    let _ = format!("{c:?}");
    let pem = c.to_pem();
    let again = Certificate::from_pem_chain(&pem, "written back")
        .unwrap_or_else(|e| panic!("a certificate does not parse once written as PEM: {e}"));
    assert_eq!(again.as_slice(), std::slice::from_ref(c), "PEM round trip");
    let again = Certificate::from_der(c.der(), "written back")
        .unwrap_or_else(|e| panic!("a certificate does not parse from its own DER: {e}"));
    assert_eq!(&again, c, "DER round trip");
    let _ = verify_with_certificate(
        c,
        b"message",
        &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
    );
    let (nb, _) = c.validity();
    let _ = verify_certificate(c, &[], &PRODUCTION, nb, &MITR);
}

/// Image references and digests (the whole input, and each line): `Reference::parse`,
/// `parse_strict`, `parse_docker`, `Digest::parse`, tag validation. What parses is
/// displayed and must parse back the same (the familiar form too, and through serde).
pub fn reference(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let digest = Digest::sha256_of(b"fuzz");
    for s in std::iter::once(text).chain(text.lines()).take(512) {
        if let Ok(r) = Reference::parse(s) {
            let shown = r.to_string();
            assert_eq!(
                Reference::parse(&shown).ok().as_ref(),
                Some(&r),
                "{s:?} parses, is displayed as {shown:?}, which parses to something else"
            );
            // No round trip through `familiar()`: it is for display, and as in
            // distribution/reference it is ambiguous (`docker.io/<64 hex>` becomes an image
            // id, `index.docker.io/a.b/c` becomes domain `a.b`).
            let _ = r.familiar();
            let json = serde_json::to_string(&r).expect("a reference serializes");
            let back: Reference = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{s:?}: serde does not read back {json}: {e}"));
            assert_eq!(back, r, "{s:?}: serde round trip");
            let _ = (r.name(), r.registry_host(), r.repository(), r.is_pinned());
            let _ = (r.with_tag("latest"), r.with_digest(digest.clone()));
        }
        if let Ok(r) = Reference::parse_strict(s) {
            let shown = r.to_string();
            assert_eq!(
                Reference::parse_strict(&shown).ok().as_ref(),
                Some(&r),
                "{s:?} parses strictly, is displayed as {shown:?}, which parses to something else"
            );
        }
        if let Ok(r) = Reference::parse_docker(s) {
            let shown = r.to_string();
            assert_eq!(
                Reference::parse_docker(&shown).ok().as_ref(),
                Some(&r),
                "{s:?} parses as docker does, is displayed as {shown:?}, which parses to something else"
            );
        }
        if let Ok(d) = Digest::parse(s) {
            let shown = d.to_string();
            assert_eq!(
                Digest::parse(&shown).ok().as_ref(),
                Some(&d),
                "{s:?}: digest round trip"
            );
            let _ = (d.tag_form(), d.short());
        }
        let _ = wharf_core::registry::validate_tag(s);
    }
}

//! Signing the pushed image as cosign does, and verifying it right after.

use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{Error, ErrorKind, Evidence, Registry, Secret, Signer, Verifier};
use wharf_sign::Trust;
use wharf_sign::cosign::{ReferenceMatch, Requirements, SignOutcome, sign_image, signature_tag};
use wharf_sign::fulcio::Identity;
use wharf_sign::keyless::{KeylessSession, Sigstore};

use crate::{RunContext, Stage, StageOutcome};

/// How signatures are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignFormat {
    /// cosign's `sha256-<hex>.sig` image (every cosign version reads it).
    #[default]
    Legacy,
    /// cosign 3's Sigstore bundle as an OCI 1.1 referrer (tag-schema fallback).
    Bundle,
    /// [`SignFormat::Bundle`] where the registry serves the referrers API, else
    /// [`SignFormat::Legacy`] (what every verifier reads), probed at each run.
    Auto,
}

/// Who signs, and whose signatures verify.
#[derive(Clone)]
enum Credentials {
    /// A key (file or KMS) and its public half.
    Key {
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
    },
    /// Keyless: the OIDC token is exchanged with Fulcio at each stage; signatures verify
    /// against `identity`, or (when `None`) the identity the sign stage's certificate named.
    Keyless {
        sigstore: Arc<Sigstore>,
        token: KeylessToken,
        identity: Option<Identity>,
    },
}

/// The OIDC token keyless signing exchanges with Fulcio.
#[derive(Clone)]
pub(crate) enum KeylessToken {
    /// One token, given by the caller.
    Fixed(Secret),
    /// A fresh token for audience `sigstore` at every exchange (GitHub Actions, GitLab…).
    Source(Arc<dyn wharf_core::IdTokenSource>),
}

impl KeylessToken {
    async fn get(&self) -> wharf_core::Result<Secret> {
        match self {
            KeylessToken::Fixed(token) => Ok(token.clone()),
            KeylessToken::Source(source) => Ok(source.id_token(SIGSTORE_AUDIENCE).await?.token),
        }
    }
}

/// The audience Fulcio expects ID tokens to have.
pub const SIGSTORE_AUDIENCE: &str = "sigstore";

impl Credentials {
    /// A keyless session, checked against the configured identity.
    async fn session<'a>(
        sigstore: &'a Sigstore,
        token: &KeylessToken,
        identity: Option<&Identity>,
    ) -> wharf_core::Result<KeylessSession<'a>> {
        let session = sigstore.session(&token.get().await?).await?;
        if let Some(want) = identity
            && !want.accepts(session.identity())
        {
            return Err(Error::new(
                ErrorKind::Denied,
                format!(
                    "the OIDC token's certificate names {}, not the configured {}",
                    session.identity().describe(),
                    want.describe()
                ),
            ));
        }
        Ok(session)
    }

    /// The identity signatures must have: configured, or what the sign stage recorded.
    fn expected_identity(
        identity: &Option<Identity>,
        ctx: &RunContext,
    ) -> wharf_core::Result<Identity> {
        if let Some(id) = identity {
            return Ok(id.clone());
        }
        let signed = ctx.outputs.get("signed_by");
        match signed.map(|s| (s["subject"].as_str(), s["issuer"].as_str())) {
            Some((Some(subject), Some(issuer))) => Ok(Identity::exact(subject, issuer)),
            _ => Err(Error::invalid(
                "no certificate identity to verify keyless signatures against: set [sign] identity and issuer",
            )),
        }
    }
}

/// Where the signed image lives and under which name signatures name it.
#[derive(Clone)]
struct Target {
    registry: Arc<dyn Registry>,
    repository: String,
    docker_reference: String,
    format: SignFormat,
}

impl Target {
    fn new(registry: Arc<dyn Registry>, repository: String, docker_reference: String) -> Self {
        Self {
            registry,
            repository,
            docker_reference,
            format: SignFormat::Legacy,
        }
    }

    /// The format to use: [`SignFormat::Auto`] probes the registry.
    async fn format(&self) -> wharf_core::Result<SignFormat> {
        Ok(match self.format {
            SignFormat::Auto => {
                if self.registry.has_referrers_api(&self.repository).await? {
                    SignFormat::Bundle
                } else {
                    SignFormat::Legacy
                }
            }
            other => other,
        })
    }

    /// The `kind` attestations of `image` that `trust` verifies.
    async fn attestations(
        &self,
        image: &wharf_core::Digest,
        trust: Trust<'_>,
        kind: &str,
    ) -> wharf_core::Result<Vec<wharf_sign::attest::VerifiedAttestation>> {
        wharf_sign::attest::verify_image_attestations(
            self.registry.as_ref(),
            &self.repository,
            image,
            trust,
            Some(kind),
        )
        .await
    }

    fn image(&self, ctx: &RunContext) -> wharf_core::Result<wharf_core::Digest> {
        ctx.image_digest
            .clone()
            .ok_or_else(|| Error::invalid("no image to sign: the package stage did not push one"))
    }
}

/// Signs the image the package stage pushed (cosign's `.sig` format), keeping signatures
/// already there; a valid signature by the same key already there is reused, not repeated.
pub struct SignStage {
    target: Target,
    credentials: Credentials,
}

impl SignStage {
    /// Sign images in `repository` of `registry` with `signer`; `verifier` is the signer's
    /// public key (to recognise its own signatures). `docker_reference` is the name the
    /// signature payload gives the image (`registry.example/models/fraud`).
    pub fn new(
        registry: Arc<dyn Registry>,
        repository: impl Into<String>,
        docker_reference: impl Into<String>,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
    ) -> Self {
        Self {
            target: Target::new(registry, repository.into(), docker_reference.into()),
            credentials: Credentials::Key { signer, verifier },
        }
    }

    /// Sign keylessly: `token` (an OIDC ID token) is exchanged with `sigstore`'s Fulcio for a
    /// short-lived certificate, each signature is logged in its Rekor. With `identity`, the
    /// token's certificate must name it, and verification requires it; without, verification
    /// requires the identity the certificate named. Keyless attestations are stored as
    /// Sigstore bundle referrers (cosign 3), whatever the signature format.
    pub fn keyless(
        registry: Arc<dyn Registry>,
        repository: impl Into<String>,
        docker_reference: impl Into<String>,
        sigstore: Arc<Sigstore>,
        token: Secret,
        identity: Option<Identity>,
    ) -> Self {
        Self::keyless_with(
            registry,
            repository.into(),
            docker_reference.into(),
            sigstore,
            KeylessToken::Fixed(token),
            identity,
        )
    }

    /// Sign keylessly as [`SignStage::keyless`] does, with a fresh token for audience
    /// `sigstore` from `source` at each exchange — GitHub Actions' keyless signing with no
    /// variable set by hand.
    pub fn keyless_from_source(
        registry: Arc<dyn Registry>,
        repository: impl Into<String>,
        docker_reference: impl Into<String>,
        sigstore: Arc<Sigstore>,
        source: Arc<dyn wharf_core::IdTokenSource>,
        identity: Option<Identity>,
    ) -> Self {
        Self::keyless_with(
            registry,
            repository.into(),
            docker_reference.into(),
            sigstore,
            KeylessToken::Source(source),
            identity,
        )
    }

    /// Sign keylessly with `token`: [`SignStage::keyless`] and
    /// [`SignStage::keyless_from_source`] in one, for the standard pipeline.
    pub(crate) fn keyless_with(
        registry: Arc<dyn Registry>,
        repository: String,
        docker_reference: String,
        sigstore: Arc<Sigstore>,
        token: KeylessToken,
        identity: Option<Identity>,
    ) -> Self {
        Self {
            target: Target::new(registry, repository, docker_reference),
            credentials: Credentials::Keyless {
                sigstore,
                token,
                identity,
            },
        }
    }

    /// Store signatures in `format` (legacy `.sig` by default).
    pub fn with_format(mut self, format: SignFormat) -> Self {
        self.target.format = format;
        self
    }

    /// The stage that verifies what this one signed, with the same key.
    pub fn verify_stage(&self) -> VerifySignatureStage {
        VerifySignatureStage {
            target: self.target.clone(),
            credentials: self.credentials.clone(),
            attestations: Vec::new(),
        }
    }
}

#[async_trait]
impl Stage for SignStage {
    fn name(&self) -> &str {
        "sign"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let t = &self.target;
        let image = t.image(ctx)?;
        let format = t.format().await?;
        let location = match format {
            SignFormat::Legacy | SignFormat::Auto => {
                format!("{}/{}:{}", t.registry, t.repository, signature_tag(&image))
            }
            SignFormat::Bundle => format!(
                "{}/{}@{} (Sigstore bundle referrer)",
                t.registry,
                t.repository,
                image.short()
            ),
        };
        let (outcome, key, signer_name) = match &self.credentials {
            Credentials::Key { signer, verifier } => {
                let outcome = match format {
                    SignFormat::Legacy | SignFormat::Auto => {
                        sign_image(
                            t.registry.as_ref(),
                            &t.repository,
                            &image,
                            &t.docker_reference,
                            signer.as_ref(),
                            verifier.as_ref(),
                        )
                        .await?
                    }
                    SignFormat::Bundle => {
                        wharf_sign::referrers::sign_image_bundle(
                            t.registry.as_ref(),
                            &t.repository,
                            &image,
                            signer.as_ref(),
                            verifier.as_ref(),
                        )
                        .await?
                    }
                };
                let key = signer.key_id().to_owned();
                let name = format!("key {}", short_key(&key));
                (outcome, key, name)
            }
            Credentials::Keyless {
                sigstore,
                token,
                identity,
            } => {
                let session = Credentials::session(sigstore, token, identity.as_ref()).await?;
                let outcome = match format {
                    SignFormat::Legacy | SignFormat::Auto => {
                        wharf_sign::cosign::sign_image_keyless(
                            t.registry.as_ref(),
                            &t.repository,
                            &image,
                            &t.docker_reference,
                            &session,
                        )
                        .await?
                    }
                    SignFormat::Bundle => {
                        wharf_sign::referrers::sign_image_bundle_keyless(
                            t.registry.as_ref(),
                            &t.repository,
                            &image,
                            &session,
                        )
                        .await?
                    }
                };
                let cert = session.certificate();
                let subject = cert
                    .subject_names()
                    .first()
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default();
                let issuer = cert.oidc_issuer().unwrap_or_default();
                ctx.outputs.insert(
                    "signed_by".into(),
                    serde_json::json!({"subject": subject, "issuer": issuer}),
                );
                let name = format!("keyless identity {subject} ({issuer})");
                (outcome, subject, name)
            }
        };
        let (summary, evidence) = match &outcome {
            SignOutcome::Added {
                signature_manifest,
                signatures,
            } => (
                format!(
                    "signed {} with {signer_name} -> {location} ({signatures} signature{})",
                    image.short(),
                    if *signatures == 1 { "" } else { "s" }
                ),
                Some(
                    Evidence::new("signature-manifest", signature_manifest.clone())
                        .with_location(location.clone()),
                ),
            ),
            SignOutcome::AlreadySigned => (
                format!(
                    "{} already carries a valid signature by {signer_name}: nothing added",
                    image.short(),
                ),
                None,
            ),
            _ => (format!("{outcome:?}"), None),
        };
        let mut out = StageOutcome::passed(summary).with_data(serde_json::json!({
            "image": image,
            "key_id": key,
            "signature_tag": signature_tag(&image),
            "added": matches!(outcome, SignOutcome::Added { .. }),
        }));
        if let Some(e) = evidence {
            ctx.artifacts.insert("signature".into(), e.clone());
            out = out.with_evidence(e);
        }
        Ok(out)
    }
}

/// Verifies the image's cosign signatures with a public key. Where the environment
/// requires a signature (prod), no valid signature blocks the run; elsewhere it warns.
pub struct VerifySignatureStage {
    target: Target,
    credentials: Credentials,
    attestations: Vec<String>,
}

impl VerifySignatureStage {
    /// Verify images in `repository` of `registry` with `verifier` (a public key); the
    /// signature must name `docker_reference`.
    pub fn new(
        registry: Arc<dyn Registry>,
        repository: impl Into<String>,
        docker_reference: impl Into<String>,
        verifier: Arc<dyn Verifier>,
    ) -> Self {
        Self {
            target: Target::new(registry, repository.into(), docker_reference.into()),
            credentials: Credentials::Key {
                signer: Arc::new(NoSigner),
                verifier,
            },
            attestations: Vec::new(),
        }
    }

    /// Also require a verified attestation with this predicate type (same key).
    pub fn require_attestation(mut self, predicate_type: impl Into<String>) -> Self {
        self.attestations.push(predicate_type.into());
        self
    }
}

#[async_trait]
impl Stage for VerifySignatureStage {
    fn name(&self) -> &str {
        "verify-signature"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let t = &self.target;
        let image = t.image(ctx)?;
        // The repository the stage signs in, whatever tag or digest the signer appended
        // (cosign 3 writes the digest).
        let req = Requirements::new().reference(ReferenceMatch::Repository(&t.docker_reference));
        let identity = match &self.credentials {
            Credentials::Keyless { identity, .. } => {
                Some(Credentials::expected_identity(identity, ctx)?)
            }
            Credentials::Key { .. } => None,
        };
        let trust = match (&self.credentials, &identity) {
            (Credentials::Key { verifier, .. }, _) => Trust::Key(verifier.as_ref()),
            (Credentials::Keyless { sigstore, .. }, Some(identity)) => Trust::Keyless {
                identity,
                root: sigstore.root(),
            },
            (Credentials::Keyless { .. }, None) => {
                return Err(Error::internal("keyless verification without an identity"));
            }
        };
        let verified: wharf_core::Result<Vec<String>> = match t.format().await? {
            SignFormat::Legacy | SignFormat::Auto => wharf_sign::cosign::verify_image_with(
                t.registry.as_ref(),
                &t.repository,
                &image,
                trust,
                &req,
            )
            .await
            .map(|v| v.into_iter().map(|v| v.key_id).collect()),
            SignFormat::Bundle => {
                wharf_sign::referrers::verify_image_bundle_with(
                    t.registry.as_ref(),
                    &t.repository,
                    &image,
                    trust,
                )
                .await
            }
        };
        match verified {
            Ok(verified) => {
                let keys: Vec<String> = verified
                    .iter()
                    .map(|k| {
                        if identity.is_some() {
                            k.clone()
                        } else {
                            short_key(k)
                        }
                    })
                    .collect();
                let mut attested = Vec::new();
                for kind in &self.attestations {
                    match t.attestations(&image, trust, kind).await {
                        Ok(_) => attested.push(short_predicate(kind)),
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::Integrity | ErrorKind::NotFound | ErrorKind::Invalid
                            ) =>
                        {
                            let msg =
                                format!("attestation of {} does not verify: {e}", image.short());
                            return Ok(if ctx.policy.require_signature {
                                StageOutcome::blocked(format!(
                                    "{msg} ({} requires it)",
                                    ctx.environment
                                ))
                            } else {
                                StageOutcome::warned(msg)
                            });
                        }
                        Err(e) => return Err(e),
                    }
                }
                ctx.outputs.insert(
                    VERIFIED_OUTPUT.into(),
                    serde_json::json!({
                        "image": image.to_string(),
                        "signatures": verified.len(),
                        "signed_by": keys,
                        "attestations": attested,
                    }),
                );
                Ok(StageOutcome::passed(format!(
                    "{} signature{} on {} verified ({} {}){}",
                    verified.len(),
                    if verified.len() == 1 { "" } else { "s" },
                    image.short(),
                    if identity.is_some() {
                        "identity"
                    } else {
                        "key"
                    },
                    keys.join(", "),
                    if attested.is_empty() {
                        String::new()
                    } else {
                        format!("; attestations verified: {}", attested.join(", "))
                    }
                ))
                .with_data(serde_json::json!({
                    "image": image,
                    "verified": verified.len(),
                    "docker_reference": t.docker_reference,
                })))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Integrity | ErrorKind::NotFound | ErrorKind::Invalid
                ) =>
            {
                let msg = format!("signature of {} does not verify: {e}", image.short());
                Ok(if ctx.policy.require_signature {
                    StageOutcome::blocked(format!(
                        "{msg} ({} requires a verified signature)",
                        ctx.environment
                    ))
                } else {
                    StageOutcome::warned(msg)
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// The signer of a verify-only stage built from a public key: never called.
#[derive(Debug)]
struct NoSigner;

#[async_trait]
impl Signer for NoSigner {
    fn key_id(&self) -> &str {
        ""
    }

    async fn sign(
        &self,
        _payload: &[u8],
        _opts: &wharf_core::sign::SignOptions,
    ) -> wharf_core::Result<wharf_core::sign::Signature> {
        Err(Error::internal("a verify-only stage does not sign"))
    }
}

/// `sha256:0123456789ab` of a key id.
fn short_key(key_id: &str) -> String {
    key_id.chars().take(19).collect()
}

/// The [`RunContext::outputs`] key under which [`VerifySignatureStage`] leaves the digest
/// it verified (`{"image": "sha256:…", "signatures": n, "signed_by": […],
/// "attestations": […]}`); [`DeployStage`](crate::stages::DeployStage) deploys only that
/// digest where the environment requires a signature.
pub const VERIFIED_OUTPUT: &str = "verified_image";

/// The [`RunContext::outputs`] key under which a stage leaves a CycloneDX SBOM (JSON) for
/// [`AttestStage`] to attest.
pub const SBOM_OUTPUT: &str = "sbom";
/// The [`RunContext::outputs`] key under which a scan stage leaves its results as cosign's
/// `vuln/v1` predicate ([`wharf_sign::attest::vuln_predicate`]) for [`AttestStage`].
pub const SCAN_OUTPUT: &str = "scan_attestation";

/// What makes two predicates of `kind` the same evidence, times aside: a scan's findings
/// (id, package, version, severity) and decision, an SBOM's components; `None` for kinds
/// compared whole.
fn content_key(kind: &str, predicate: &serde_json::Value) -> Option<serde_json::Value> {
    use wharf_sign::attest::{CYCLONEDX_BOM, VULN_SCAN_V1};
    match kind {
        VULN_SCAN_V1 => {
            let result = &predicate["scanner"]["result"];
            let mut findings: Vec<serde_json::Value> = result["report"]["findings"]
                .as_array()?
                .iter()
                .map(|f| {
                    serde_json::json!([
                        f["id"],
                        f["package"],
                        f["installed_version"],
                        f["severity"]
                    ])
                })
                .collect();
            findings.sort_by_key(|f| f.to_string());
            Some(serde_json::json!({
                "scanner": result["report"]["scanner"],
                "findings": findings,
                "passed": result["decision"]["passed"],
            }))
        }
        CYCLONEDX_BOM => {
            let mut components: Vec<serde_json::Value> = predicate["components"]
                .as_array()?
                .iter()
                .map(|c| serde_json::json!([c["name"], c["version"], c["purl"]]))
                .collect();
            components.sort_by_key(|c| c.to_string());
            Some(serde_json::Value::Array(components))
        }
        _ => None,
    }
}

/// Attests the signed image (cosign's `.att` format, in-toto v1 in DSSE): SLSA provenance
/// v1 (builder, source commit, parameters, resolved dependencies) and the model-evaluation
/// predicate (the manifest's metrics, fairness and drift) that promotion policy checks.
pub struct AttestStage {
    target: Target,
    credentials: Credentials,
    manifest: std::path::PathBuf,
    builder_id: String,
    dependencies: Vec<serde_json::Value>,
}

impl AttestStage {
    /// Attest with the same key and target as `sign`; the evaluation comes from the model
    /// manifest at `manifest`; `builder_id` names what built the image
    /// (`https://github.com/acme/models/.github/workflows/release.yml`, or the local tool).
    pub fn new(
        sign: &SignStage,
        manifest: impl Into<std::path::PathBuf>,
        builder_id: impl Into<String>,
    ) -> Self {
        Self {
            target: sign.target.clone(),
            credentials: sign.credentials.clone(),
            manifest: manifest.into(),
            builder_id: builder_id.into(),
            dependencies: Vec::new(),
        }
    }

    /// Record a resolved dependency (`uri` + digest), e.g. the base image the model was
    /// appended to.
    pub fn dependency(mut self, uri: impl Into<String>, digest: &wharf_core::Digest) -> Self {
        self.dependencies.push(serde_json::json!({
            "uri": uri.into(),
            "digest": { digest.algorithm().as_str(): digest.hex() },
        }));
        self
    }

    fn provenance(&self, ctx: &RunContext, image: &wharf_core::Digest) -> serde_json::Value {
        let mut deps = self.dependencies.clone();
        if let Some(base) = ctx.outputs.get("base_image")
            && let (Some(uri), Some(Ok(d))) = (
                base["uri"].as_str(),
                base["digest"]
                    .as_str()
                    .map(str::parse::<wharf_core::Digest>),
            )
        {
            deps.push(serde_json::json!({"uri": uri, "digest": {d.algorithm().as_str(): d.hex()}}));
        }
        if let Some(commit) = &ctx.source_commit {
            deps.push(serde_json::json!({"uri": "git+source", "digest": {"gitCommit": commit}}));
        }
        let now = time::OffsetDateTime::now_utc();
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        serde_json::json!({
            "buildDefinition": {
                "buildType": "https://wharf.dev/build/model-package/v1",
                "externalParameters": {
                    "project": ctx.project,
                    "environment": ctx.environment.to_string(),
                    "repository": self.target.repository,
                    "manifest": self.manifest.file_name().map(|f| f.to_string_lossy().into_owned()),
                },
                "internalParameters": {"image": image.to_string()},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": self.builder_id},
                "metadata": {
                    "invocationId": ctx.run_id,
                    "startedOn": rfc3339(ctx.started_at),
                    "finishedOn": rfc3339(now),
                },
            },
        })
    }

    fn evaluation(&self) -> wharf_core::Result<serde_json::Value> {
        let m = wharf_policy::ModelManifest::from_path(&self.manifest)
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(serde_json::json!({
            "model": {"name": m.model.name, "version": m.model.version},
            "metrics": m.metrics,
            "fairness": m.fairness,
            "drift": m.drift,
            "dataSources": m.data_sources,
        }))
    }
}

#[async_trait]
impl Stage for AttestStage {
    fn name(&self) -> &str {
        "attest"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        use wharf_sign::attest::{
            AttestOutcome, CYCLONEDX_BOM, MODEL_EVALUATION_V1, SLSA_PROVENANCE_V1, VULN_SCAN_V1,
            attest_image, attestation_tag,
        };
        let t = &self.target;
        let image = t.image(ctx)?;
        let mut predicates = vec![
            (MODEL_EVALUATION_V1, self.evaluation()?),
            (SLSA_PROVENANCE_V1, self.provenance(ctx, &image)),
        ];
        // What earlier stages produced: an SBOM (CycloneDX JSON) and scan results (cosign's
        // vuln/v1 predicate), attested when they exist.
        if let Some(sbom) = ctx.outputs.get(SBOM_OUTPUT) {
            predicates.push((CYCLONEDX_BOM, sbom.clone()));
        }
        if let Some(scan) = ctx.outputs.get(SCAN_OUTPUT) {
            predicates.push((VULN_SCAN_V1, scan.clone()));
        }
        let mut added = Vec::new();
        let mut evidence = Vec::new();
        let session = match &self.credentials {
            Credentials::Keyless {
                sigstore,
                token,
                identity,
            } => Some(Credentials::session(sigstore, token, identity.as_ref()).await?),
            Credentials::Key { .. } => None,
        };
        let trust = match (&self.credentials, &session) {
            (Credentials::Keyless { sigstore, .. }, Some(session)) => Trust::Keyless {
                identity: session.identity(),
                root: sigstore.root(),
            },
            (Credentials::Key { verifier, .. }, _) => Trust::Key(verifier.as_ref()),
            (Credentials::Keyless { .. }, None) => {
                return Err(Error::internal("keyless attestation without a session"));
            }
        };
        for (kind, predicate) in predicates {
            // Provenance names the run, so it differs every time: an image that already
            // carries provenance by this signer (the build that made these bytes) gets none.
            if kind == SLSA_PROVENANCE_V1
                && t.attestations(&image, trust, kind)
                    .await
                    .is_ok_and(|v| !v.is_empty())
            {
                continue;
            }
            // Scan results and SBOMs carry the time they were made: an image that already
            // carries the same findings (or the same components) by this signer gets no new
            // one; a scan that found something else is attested beside the old.
            if let Some(key) = content_key(kind, &predicate)
                && t.attestations(&image, trust, kind).await.is_ok_and(|v| {
                    v.iter()
                        .any(|a| content_key(kind, &a.predicate).as_ref() == Some(&key))
                })
            {
                continue;
            }
            let outcome = match (&self.credentials, &session) {
                (_, Some(session)) => {
                    wharf_sign::referrers::attest_image_bundle_keyless(
                        t.registry.as_ref(),
                        &t.repository,
                        &image,
                        kind,
                        predicate,
                        session,
                    )
                    .await?
                }
                (Credentials::Key { signer, verifier }, None) => {
                    attest_image(
                        t.registry.as_ref(),
                        &t.repository,
                        &image,
                        &t.docker_reference,
                        kind,
                        predicate,
                        signer.as_ref(),
                        verifier.as_ref(),
                    )
                    .await?
                }
                (Credentials::Keyless { .. }, None) => {
                    return Err(Error::internal("keyless attestation without a session"));
                }
            };
            if let AttestOutcome::Added { manifest, .. } = outcome {
                added.push(short_predicate(kind));
                evidence.push(manifest);
            }
        }
        let location = if session.is_some() {
            format!(
                "{}/{}@{} (Sigstore bundle referrers)",
                t.registry,
                t.repository,
                image.short()
            )
        } else {
            format!(
                "{}/{}:{}",
                t.registry,
                t.repository,
                attestation_tag(&image)
            )
        };
        let summary = if added.is_empty() {
            format!(
                "{} already carries these attestations: nothing added",
                image.short()
            )
        } else {
            format!(
                "attested {} of {} -> {location}",
                added.join(" + "),
                image.short()
            )
        };
        let mut out = StageOutcome::passed(summary);
        if let Some(last) = evidence.pop() {
            let e = Evidence::new("attestation-manifest", last).with_location(location);
            ctx.artifacts.insert("attestations".into(), e.clone());
            out = out.with_evidence(e);
        }
        Ok(out)
    }
}

fn short_predicate(uri: &str) -> &'static str {
    match uri {
        wharf_sign::attest::SLSA_PROVENANCE_V1 => "SLSA provenance",
        wharf_sign::attest::MODEL_EVALUATION_V1 => "model evaluation",
        wharf_sign::attest::CYCLONEDX_BOM => "CycloneDX SBOM",
        wharf_sign::attest::VULN_SCAN_V1 => "scan results",
        _ => "a predicate",
    }
}

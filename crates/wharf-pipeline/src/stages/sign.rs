//! Signing the pushed image as cosign does, and verifying it right after.

use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{Error, ErrorKind, Evidence, Registry, Signer, Verifier};
use wharf_sign::cosign::{Requirements, SignOutcome, sign_image, signature_tag, verify_image};

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
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
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
            signer,
            verifier,
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
            verifier: self.verifier.clone(),
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
        let key = self.signer.key_id().to_owned();
        let (outcome, location) = match t.format {
            SignFormat::Legacy => (
                sign_image(
                    t.registry.as_ref(),
                    &t.repository,
                    &image,
                    &t.docker_reference,
                    self.signer.as_ref(),
                    self.verifier.as_ref(),
                )
                .await?,
                format!("{}/{}:{}", t.registry, t.repository, signature_tag(&image)),
            ),
            SignFormat::Bundle => (
                wharf_sign::bundle::sign_image_bundle(
                    t.registry.as_ref(),
                    &t.repository,
                    &image,
                    self.signer.as_ref(),
                    self.verifier.as_ref(),
                )
                .await?,
                format!(
                    "{}/{}@{} (Sigstore bundle referrer)",
                    t.registry,
                    t.repository,
                    image.short()
                ),
            ),
        };
        let (summary, evidence) = match &outcome {
            SignOutcome::Added {
                signature_manifest,
                signatures,
            } => (
                format!(
                    "signed {} with key {} -> {location} ({signatures} signature{})",
                    image.short(),
                    short_key(&key),
                    if *signatures == 1 { "" } else { "s" }
                ),
                Some(
                    Evidence::new("signature-manifest", signature_manifest.clone())
                        .with_location(location.clone()),
                ),
            ),
            SignOutcome::AlreadySigned => (
                format!(
                    "{} already carries a valid signature by key {}: nothing added",
                    image.short(),
                    short_key(&key)
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
    verifier: Arc<dyn Verifier>,
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
            verifier,
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
        let mut req = Requirements::default();
        req.docker_reference = Some(&t.docker_reference);
        let verified: wharf_core::Result<Vec<String>> = match t.format {
            SignFormat::Legacy => verify_image(
                t.registry.as_ref(),
                &t.repository,
                &image,
                self.verifier.as_ref(),
                &req,
            )
            .await
            .map(|v| v.into_iter().map(|v| v.key_id).collect()),
            SignFormat::Bundle => {
                wharf_sign::bundle::verify_image_bundle(
                    t.registry.as_ref(),
                    &t.repository,
                    &image,
                    self.verifier.as_ref(),
                )
                .await
            }
        };
        match verified {
            Ok(verified) => {
                let keys: Vec<String> = verified.iter().map(|k| short_key(k)).collect();
                let mut attested = Vec::new();
                for kind in &self.attestations {
                    match wharf_sign::attest::verify_attestations(
                        t.registry.as_ref(),
                        &t.repository,
                        &image,
                        self.verifier.as_ref(),
                        Some(kind),
                    )
                    .await
                    {
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
                Ok(StageOutcome::passed(format!(
                    "{} signature{} on {} verified (key {}){}",
                    verified.len(),
                    if verified.len() == 1 { "" } else { "s" },
                    image.short(),
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

/// `sha256:0123456789ab` of a key id.
fn short_key(key_id: &str) -> String {
    key_id.chars().take(19).collect()
}

/// Attests the signed image (cosign's `.att` format, in-toto v1 in DSSE): SLSA provenance
/// v1 (builder, source commit, parameters, resolved dependencies) and the model-evaluation
/// predicate (the manifest's metrics, fairness and drift) that promotion policy checks.
pub struct AttestStage {
    target: Target,
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
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
            signer: sign.signer.clone(),
            verifier: sign.verifier.clone(),
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
            AttestOutcome, MODEL_EVALUATION_V1, SLSA_PROVENANCE_V1, attest_image, attestation_tag,
        };
        let t = &self.target;
        let image = t.image(ctx)?;
        let predicates = [
            (MODEL_EVALUATION_V1, self.evaluation()?),
            (SLSA_PROVENANCE_V1, self.provenance(ctx, &image)),
        ];
        let mut added = Vec::new();
        let mut evidence = Vec::new();
        for (kind, predicate) in predicates {
            let outcome = attest_image(
                t.registry.as_ref(),
                &t.repository,
                &image,
                &t.docker_reference,
                kind,
                predicate,
                self.signer.as_ref(),
                self.verifier.as_ref(),
            )
            .await?;
            if let AttestOutcome::Added { manifest, .. } = outcome {
                added.push(short_predicate(kind));
                evidence.push(manifest);
            }
        }
        let location = format!(
            "{}/{}:{}",
            t.registry,
            t.repository,
            attestation_tag(&image)
        );
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
        _ => "a predicate",
    }
}

//! Signing the pushed image as cosign does, and verifying it right after.

use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{Error, ErrorKind, Evidence, Registry, Signer, Verifier};
use wharf_sign::cosign::{Requirements, SignOutcome, sign_image, signature_tag, verify_image};

use crate::{RunContext, Stage, StageOutcome};

/// Where the signed image lives and under which name signatures name it.
#[derive(Clone)]
struct Target {
    registry: Arc<dyn Registry>,
    repository: String,
    docker_reference: String,
}

impl Target {
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
            target: Target {
                registry,
                repository: repository.into(),
                docker_reference: docker_reference.into(),
            },
            signer,
            verifier,
        }
    }

    /// The stage that verifies what this one signed, with the same key.
    pub fn verify_stage(&self) -> VerifySignatureStage {
        VerifySignatureStage {
            target: self.target.clone(),
            verifier: self.verifier.clone(),
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
        let outcome = sign_image(
            t.registry.as_ref(),
            &t.repository,
            &image,
            &t.docker_reference,
            self.signer.as_ref(),
            self.verifier.as_ref(),
        )
        .await?;
        let location = format!("{}/{}:{}", t.registry, t.repository, signature_tag(&image));
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
            target: Target {
                registry,
                repository: repository.into(),
                docker_reference: docker_reference.into(),
            },
            verifier,
        }
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
        match verify_image(
            t.registry.as_ref(),
            &t.repository,
            &image,
            self.verifier.as_ref(),
            &req,
        )
        .await
        {
            Ok(verified) => {
                let keys: Vec<String> = verified.iter().map(|v| short_key(&v.key_id)).collect();
                Ok(StageOutcome::passed(format!(
                    "{} signature{} on {} verified (key {})",
                    verified.len(),
                    if verified.len() == 1 { "" } else { "s" },
                    image.short(),
                    keys.join(", ")
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

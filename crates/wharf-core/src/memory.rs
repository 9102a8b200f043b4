//! In-memory implementations of every trait, for unit tests of code written against the
//! traits. They keep the same rules as the real backends (digests verified, nothing tagged
//! that is not stored, append-only log, deploy by digest only) so a test that passes here
//! means something; the embedded defaults and cloud backends live in their own crates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::audit::{
    AppendOptions, AuditReceipt, ChainReport, StoredRecord, VerifyRange, verify_chain,
};
use crate::deploy::{Change, DeployRequest, Deployment, Health, HealthState, Plan};
use crate::identity::{CredentialOptions, Credentials, IdToken};
use crate::policy::{Decision, EvaluateOptions};
use crate::registry::{
    BlobStream, ListTagsOptions, ManifestBytes, PushBlobOptions, PushManifestOptions,
    ReferrersOptions, validate_tag,
};
use crate::scan::{ScanOptions, ScanTarget};
use crate::sign::{SignOptions, Signature, Verified, VerifyOptions};
use crate::{
    AuditEvent, AuditLog, CloudCredentials, DeployTarget, Descriptor, Digest, Error, ErrorKind,
    Finding, IdTokenSource, ImageIndex, ImageManifest, PolicyGate, Registry, Result, ScanReport,
    Scanner, Secret, Signer, Verifier, media_types,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Repo {
    blobs: HashMap<Digest, Bytes>,
    manifests: HashMap<Digest, ManifestBytes>,
    tags: BTreeMap<String, Digest>,
}

/// A registry in memory. With [`MemoryRegistry::with_immutable_tags`] it behaves like ECR
/// with tag immutability: re-pointing a tag at other content is a conflict.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    repos: Mutex<HashMap<String, Repo>>,
    immutable_tags: bool,
}

impl MemoryRegistry {
    /// An empty registry with mutable tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse to move a tag once set.
    pub fn with_immutable_tags(mut self) -> Self {
        self.immutable_tags = true;
        self
    }
}

impl std::fmt::Display for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory registry")
    }
}

fn set_tag(repo: &mut Repo, name: &str, digest: &Digest, tag: &str, immutable: bool) -> Result<()> {
    validate_tag(tag)?;
    if let Some(existing) = repo.tags.get(tag)
        && immutable
        && existing != digest
    {
        return Err(Error::conflict(format!(
            "tag {name}:{tag} is immutable and already points at {existing}"
        )));
    }
    repo.tags.insert(tag.to_owned(), digest.clone());
    Ok(())
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        Ok(lock(&self.repos)
            .get(repo)
            .and_then(|r| r.blobs.get(digest))
            .map(|b| b.len() as u64))
    }

    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        mut data: BlobStream,
        opts: &PushBlobOptions,
    ) -> Result<Descriptor> {
        use futures_util::StreamExt;
        let mut hasher = crate::Hasher::new(digest.algorithm());
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let got = hasher.finish();
        if &got != digest {
            return Err(Error::integrity(format!(
                "blob for {repo} hashes to {got}, not the expected {digest}; nothing was stored"
            )));
        }
        if let Some(size) = opts.size
            && size != buf.len() as u64
        {
            return Err(Error::integrity(format!(
                "blob {digest} is {} bytes, not the declared {size}",
                buf.len()
            )));
        }
        let len = buf.len() as u64;
        lock(&self.repos)
            .entry(repo.to_owned())
            .or_default()
            .blobs
            .insert(digest.clone(), buf.freeze());
        Ok(Descriptor::new(
            "application/octet-stream",
            digest.clone(),
            len,
        ))
    }

    async fn fetch_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream> {
        let bytes = lock(&self.repos)
            .get(repo)
            .and_then(|r| r.blobs.get(digest).cloned())
            .ok_or_else(|| Error::not_found(format!("blob {digest} not found in {repo}")))?;
        Ok(crate::registry::blob_stream_from(bytes))
    }

    async fn push_manifest(
        &self,
        repo: &str,
        manifest: &ManifestBytes,
        opts: &PushManifestOptions,
    ) -> Result<Descriptor> {
        let desc = &manifest.descriptor;
        if Digest::sha256_of(&manifest.bytes) != desc.digest {
            return Err(Error::integrity(format!(
                "manifest bytes do not hash to {}",
                desc.digest
            )));
        }
        let mut repos = lock(&self.repos);
        let r = repos.entry(repo.to_owned()).or_default();
        // Like a real registry: every blob and child manifest must already be stored.
        let what = format!("manifest {}", desc.digest);
        if desc.media_type == media_types::OCI_INDEX
            || desc.media_type == media_types::DOCKER_MANIFEST_LIST
        {
            let index = ImageIndex::from_slice(&manifest.bytes, &what)?;
            for m in &index.manifests {
                if !r.manifests.contains_key(&m.digest) {
                    return Err(Error::not_found(format!(
                        "{what} lists {} which is not in {repo}; push it first",
                        m.digest
                    )));
                }
            }
        } else {
            let m = ImageManifest::from_slice(&manifest.bytes, &what)?;
            for b in std::iter::once(&m.config).chain(&m.layers) {
                if !r.blobs.contains_key(&b.digest) {
                    return Err(Error::not_found(format!(
                        "{what} names blob {} which is not in {repo}; push it first",
                        b.digest
                    )));
                }
            }
        }
        if let Some(tag) = &opts.tag {
            // Checked and moved under one lock: a compare-and-swap.
            opts.if_tag
                .check(repo, tag, r.tags.get(tag), &desc.digest)?;
            set_tag(r, repo, &desc.digest, tag, self.immutable_tags)?;
        }
        r.manifests.insert(desc.digest.clone(), manifest.clone());
        Ok(desc.clone())
    }

    async fn fetch_manifest(&self, repo: &str, digest: &Digest) -> Result<ManifestBytes> {
        lock(&self.repos)
            .get(repo)
            .and_then(|r| r.manifests.get(digest).cloned())
            .ok_or_else(|| Error::not_found(format!("manifest {digest} not found in {repo}")))
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Descriptor> {
        let repos = lock(&self.repos);
        let r = repos.get(repo);
        r.and_then(|r| r.tags.get(tag))
            .and_then(|d| r.and_then(|r| r.manifests.get(d)))
            .map(|m| m.descriptor.clone())
            .ok_or_else(|| Error::not_found(format!("tag {repo}:{tag} not found")))
    }

    async fn tag(&self, repo: &str, digest: &Digest, tag: &str) -> Result<()> {
        let mut repos = lock(&self.repos);
        let r = repos
            .get_mut(repo)
            .filter(|r| r.manifests.contains_key(digest))
            .ok_or_else(|| Error::not_found(format!("manifest {digest} not found in {repo}")))?;
        set_tag(r, repo, digest, tag, self.immutable_tags)
    }

    async fn list_tags(&self, repo: &str, opts: &ListTagsOptions) -> Result<Vec<String>> {
        let repos = lock(&self.repos);
        let r = repos
            .get(repo)
            .ok_or_else(|| Error::not_found(format!("repository {repo} not found")))?;
        Ok(r.tags
            .keys()
            .take(opts.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        opts: &ReferrersOptions,
    ) -> Result<Vec<Descriptor>> {
        let repos = lock(&self.repos);
        let Some(r) = repos.get(repo) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Descriptor> = r
            .manifests
            .values()
            .filter_map(|m| {
                let parsed = ImageManifest::from_slice(&m.bytes, "referrer").ok()?;
                if parsed.subject.as_ref()?.digest != *subject {
                    return None;
                }
                let mut d = m.descriptor.clone();
                d.artifact_type = Some(parsed.effective_artifact_type().to_owned());
                d.annotations = parsed.annotations;
                Some(d)
            })
            .filter(|d| opts.artifact_type.is_none() || d.artifact_type == opts.artifact_type)
            .collect();
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// The memory registry finds referrers by their `subject`, as the API does.
    async fn has_referrers_api(&self, _repo: &str) -> Result<bool> {
        Ok(true)
    }
}

/// An append-only audit log in memory, hash-chained like the durable ones.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    records: Mutex<Vec<StoredRecord>>,
}

impl MemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record, in order (for assertions in tests).
    pub fn records(&self) -> Vec<StoredRecord> {
        lock(&self.records).clone()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(&self, event: &AuditEvent, _opts: &AppendOptions) -> Result<AuditReceipt> {
        let mut records = lock(&self.records);
        if let Some(existing) = records.iter().find(|r| r.event.id() == event.id()) {
            return if existing.event == *event {
                Ok(AuditReceipt::new(
                    existing.sequence,
                    existing.hash.clone(),
                    format!("memory:{}", existing.sequence),
                ))
            } else {
                Err(Error::conflict(format!(
                    "audit record {} already holds an event with id {} and other content: record the corrected event under a new id",
                    existing.sequence,
                    event.id()
                )))
            };
        }
        let prev = records.last().map(|r| r.hash.clone());
        let seq = records.len() as u64;
        let rec = StoredRecord::chain(seq, prev, OffsetDateTime::now_utc(), event.clone())?;
        let receipt = AuditReceipt::new(seq, rec.hash.clone(), format!("memory:{seq}"));
        records.push(rec);
        Ok(receipt)
    }

    async fn read(&self, sequence: u64) -> Result<StoredRecord> {
        usize::try_from(sequence)
            .ok()
            .and_then(|i| lock(&self.records).get(i).cloned())
            .ok_or_else(|| Error::not_found(format!("audit record {sequence} does not exist")))
    }

    async fn head(&self) -> Result<Option<AuditReceipt>> {
        Ok(lock(&self.records).last().map(|r| {
            AuditReceipt::new(r.sequence, r.hash.clone(), format!("memory:{}", r.sequence))
        }))
    }

    async fn verify(&self, range: &VerifyRange) -> Result<ChainReport> {
        let records = lock(&self.records);
        let from = range.from.unwrap_or(0);
        let to = range.to.unwrap_or(u64::MAX);
        let slice: Vec<StoredRecord> = records
            .iter()
            .filter(|r| r.sequence >= from && r.sequence <= to)
            .cloned()
            .collect();
        let expected_prev = if from == 0 {
            None
        } else {
            records
                .iter()
                .find(|r| r.sequence == from - 1)
                .map(|r| r.hash.clone())
        };
        Ok(verify_chain(&slice, expected_prev.as_ref()))
    }
}

/// A scanner that reports a fixed list of findings for whatever it is asked to scan.
#[derive(Debug, Clone, Default)]
pub struct StaticScanner {
    findings: Vec<Finding>,
}

impl StaticScanner {
    /// A scanner that always finds `findings`.
    pub fn new(findings: Vec<Finding>) -> Self {
        Self { findings }
    }
}

#[async_trait]
impl Scanner for StaticScanner {
    fn name(&self) -> &str {
        "static"
    }

    async fn scan(&self, target: &ScanTarget, _opts: &ScanOptions) -> Result<ScanReport> {
        Ok(ScanReport::new("static", self.findings.clone()).with_artifact(target.digest().clone()))
    }
}

/// A signer and verifier using HMAC-SHA256 with a shared key: real integrity checks without
/// key files or a KMS, for tests only (it is symmetric, so it proves nothing to a third
/// party).
#[derive(Clone)]
pub struct HmacSigner {
    key: Vec<u8>,
    key_id: String,
}

impl HmacSigner {
    /// A signer over `key`.
    pub fn new(key: &[u8]) -> Self {
        let key_id = format!("hmac-sha256:{}", Digest::sha256_of(key).short());
        Self {
            key: key.to_vec(),
            key_id,
        }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        use sha2::{Digest as _, Sha256};
        let mut k = [0u8; 64];
        if self.key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(&self.key));
        } else {
            k[..self.key.len()].copy_from_slice(&self.key);
        }
        let inner = Sha256::new()
            .chain_update(k.map(|b| b ^ 0x36))
            .chain_update(payload)
            .finalize();
        Sha256::new()
            .chain_update(k.map(|b| b ^ 0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }
}

impl std::fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for HmacSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn sign(&self, payload: &[u8], _opts: &SignOptions) -> Result<Signature> {
        Ok(Signature::new(
            self.mac(payload),
            "hmac-sha256",
            self.key_id.clone(),
        ))
    }
}

#[async_trait]
impl Verifier for HmacSigner {
    async fn verify(
        &self,
        payload: &[u8],
        sig: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified> {
        if sig.key_id != self.key_id {
            return Err(Error::integrity(format!(
                "signature is by {}, not the trusted key {}",
                sig.key_id, self.key_id
            )));
        }
        if opts.require_log_entry && sig.log_entry.is_none() {
            return Err(Error::integrity("signature has no transparency-log entry"));
        }
        let expected = self.mac(payload);
        // Constant-time comparison.
        let diff = expected
            .iter()
            .zip(&sig.bytes)
            .fold(expected.len() ^ sig.bytes.len(), |acc, (a, b)| {
                acc | usize::from(a ^ b)
            });
        if diff != 0 {
            return Err(Error::integrity("signature does not match the payload"));
        }
        Ok(Verified::new(self.key_id.clone()))
    }
}

/// An ID-token source that hands out one fixed token.
#[derive(Debug, Clone)]
pub struct StaticTokenSource {
    token: IdToken,
}

impl StaticTokenSource {
    /// Always return `token` (its audience is replaced by the one asked for).
    pub fn new(token: IdToken) -> Self {
        Self { token }
    }
}

#[async_trait]
impl IdTokenSource for StaticTokenSource {
    async fn id_token(&self, audience: &str) -> Result<IdToken> {
        let mut t = self.token.clone();
        t.audience = audience.to_owned();
        Ok(t)
    }
}

/// Cloud credentials that never change.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    creds: Credentials,
}

impl StaticCredentials {
    /// Always return `creds`; an error once they have expired.
    pub fn new(creds: Credentials) -> Self {
        Self { creds }
    }
}

#[async_trait]
impl CloudCredentials for StaticCredentials {
    async fn credentials(&self, _opts: &CredentialOptions) -> Result<Credentials> {
        if self.creds.expires_at <= OffsetDateTime::now_utc() {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "static credentials have expired",
            ));
        }
        Ok(self.creds.clone())
    }
}

#[derive(Debug, Default)]
struct DeployState {
    /// Revision history per name: (revision, image).
    history: HashMap<String, Vec<(String, String)>>,
    /// Images that report unhealthy.
    unhealthy: Vec<String>,
}

/// A deploy target in memory: keeps a revision history per name; images marked with
/// [`MemoryDeployTarget::fail_health_of`] report unhealthy, to test rollback.
#[derive(Debug, Default)]
pub struct MemoryDeployTarget {
    state: Mutex<DeployState>,
}

impl MemoryDeployTarget {
    /// An empty target.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make deployments of `image` (full reference with digest) report unhealthy.
    pub fn fail_health_of(&self, image: &str) {
        lock(&self.state).unhealthy.push(image.to_owned());
    }

    /// The image currently deployed under `name`.
    pub fn current_image(&self, name: &str) -> Option<String> {
        lock(&self.state)
            .history
            .get(name)
            .and_then(|h| h.last())
            .map(|(_, i)| i.clone())
    }
}

#[async_trait]
impl DeployTarget for MemoryDeployTarget {
    fn name(&self) -> &str {
        "memory"
    }

    async fn plan(&self, request: &DeployRequest) -> Result<Plan> {
        if request.image.digest().is_none() {
            return Err(Error::invalid(format!(
                "refusing to deploy {} by tag",
                request.image
            )));
        }
        let image = request.image.to_string();
        let current = self.current_image(&request.name);
        let changes = if current.as_deref() == Some(image.as_str()) {
            Vec::new()
        } else {
            vec![Change {
                object: format!("Deployment/{}", request.name),
                field: "image".into(),
                from: current,
                to: image,
            }]
        };
        Ok(Plan::new(request.clone(), changes))
    }

    async fn apply(&self, plan: &Plan) -> Result<Deployment> {
        let mut state = lock(&self.state);
        let history = state.history.entry(plan.request.name.clone()).or_default();
        let previous = history.last().map(|(r, _)| r.clone());
        if plan.is_noop()
            && let Some(rev) = previous
        {
            let before = history
                .len()
                .checked_sub(2)
                .and_then(|i| history.get(i))
                .map(|(r, _)| r.clone());
            return Ok(Deployment::new(plan.request.name.clone(), rev, before));
        }
        let revision = (history.len() + 1).to_string();
        history.push((revision.clone(), plan.request.image.to_string()));
        Ok(Deployment::new(
            plan.request.name.clone(),
            revision,
            previous,
        ))
    }

    async fn status(&self, deployment: &Deployment) -> Result<Health> {
        let state = lock(&self.state);
        let image = state
            .history
            .get(&deployment.name)
            .and_then(|h| h.iter().find(|(r, _)| *r == deployment.revision))
            .map(|(_, i)| i.clone())
            .ok_or_else(|| {
                Error::not_found(format!(
                    "deployment {} has no revision {}",
                    deployment.name, deployment.revision
                ))
            })?;
        Ok(if state.unhealthy.contains(&image) {
            Health::new(
                HealthState::Unhealthy,
                format!("{image} failed its health check"),
            )
        } else {
            Health::new(HealthState::Healthy, format!("{image} is ready"))
        })
    }

    async fn rollback(&self, deployment: &Deployment) -> Result<Deployment> {
        let previous = deployment.previous_revision.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "deployment {} has no previous revision to roll back to",
                    deployment.name
                ),
            )
        })?;
        let mut state = lock(&self.state);
        let history = state.history.entry(deployment.name.clone()).or_default();
        let image = history
            .iter()
            .find(|(r, _)| *r == previous)
            .map(|(_, i)| i.clone())
            .ok_or_else(|| {
                Error::not_found(format!(
                    "revision {previous} of {} is gone",
                    deployment.name
                ))
            })?;
        let revision = (history.len() + 1).to_string();
        history.push((revision.clone(), image));
        Ok(Deployment::new(
            deployment.name.clone(),
            revision,
            Some(deployment.revision.clone()),
        ))
    }
}

/// A policy gate that returns one fixed decision.
#[derive(Debug, Clone)]
pub struct StaticPolicyGate {
    decision: Decision,
}

impl StaticPolicyGate {
    /// Always decide `decision`.
    pub fn new(decision: Decision) -> Self {
        Self { decision }
    }
}

#[async_trait]
impl PolicyGate for StaticPolicyGate {
    async fn evaluate(
        &self,
        _input: &serde_json::Value,
        _opts: &EvaluateOptions,
    ) -> Result<Decision> {
        Ok(self.decision.clone())
    }
}

/// A token whose secret is `token`, for tests.
pub fn test_id_token(token: &str, subject: &str) -> IdToken {
    IdToken::new(
        Secret::new(token),
        "https://issuer.invalid",
        subject,
        "wharf",
        OffsetDateTime::now_utc() + time::Duration::hours(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use futures::executor::block_on;

    #[test]
    fn memory_registry_conforms() {
        block_on(conformance::registry(&MemoryRegistry::new(), "wharf"));
    }

    #[test]
    fn immutable_tags_conflict_but_same_content_is_idempotent() {
        block_on(async {
            let reg = MemoryRegistry::new().with_immutable_tags();
            let cfg = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
            reg.push_blob(
                "r",
                &cfg.digest,
                crate::registry::blob_stream_from(&b"{}"[..]),
                &PushBlobOptions::default(),
            )
            .await
            .unwrap();
            let a = ManifestBytes::new(
                media_types::OCI_MANIFEST,
                ImageManifest::new(cfg.clone(), vec![]).to_vec(),
            );
            let mut other = ImageManifest::new(cfg, vec![]);
            other.annotations.insert("x".into(), "y".into());
            let b = ManifestBytes::new(media_types::OCI_MANIFEST, other.to_vec());
            reg.push_manifest("r", &a, &PushManifestOptions::tagged("t"))
                .await
                .unwrap();
            reg.push_manifest("r", &a, &PushManifestOptions::tagged("t"))
                .await
                .unwrap();
            let err = reg
                .push_manifest("r", &b, &PushManifestOptions::tagged("t"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Conflict);
            assert_eq!(
                reg.resolve_tag("r", "t").await.unwrap().digest,
                a.descriptor.digest
            );
        });
    }

    #[test]
    fn memory_audit_log_conforms_and_detects_tampering() {
        let log = MemoryAuditLog::new();
        block_on(conformance::audit_log(&log));
        // Alter one record behind the log's back: verify names it.
        {
            let mut records = lock(&log.records);
            #[allow(irrefutable_let_patterns)]
            if let AuditEvent::Run(r) = &mut records[4].event {
                r.outcome = crate::RunOutcome::Failed;
            }
        }
        let report = block_on(log.verify(&VerifyRange::default())).unwrap();
        assert_eq!(
            report.problems,
            vec![crate::audit::ChainProblem::HashMismatch { sequence: 4 }]
        );
        // Remove one: a gap.
        lock(&log.records).remove(6);
        let report = block_on(log.verify(&VerifyRange::default())).unwrap();
        assert!(
            report
                .problems
                .contains(&crate::audit::ChainProblem::Gap { first: 6, last: 6 }),
            "{report:?}"
        );
    }

    #[test]
    fn hmac_signer_conforms() {
        let a = HmacSigner::new(b"key-a");
        let b = HmacSigner::new(b"key-b");
        block_on(conformance::signer_verifier(&a, &a, &b));
        assert!(!format!("{a:?}").contains("key-a"));
    }

    #[test]
    fn static_scanner_conforms() {
        let s = StaticScanner::new(vec![Finding::new("CVE-1", "p", "1", crate::Severity::High)]);
        let target = ScanTarget::Layout {
            path: "/tmp/layout".into(),
            digest: Digest::sha256_of(b"m"),
        };
        block_on(conformance::scanner(&s, &target));
    }

    #[test]
    fn memory_deploy_target_conforms() {
        let t = MemoryDeployTarget::new();
        let image: crate::Reference = "registry.example.com/models/fraud".parse().unwrap();
        block_on(conformance::deploy_target(&t, "fraud", &image));
    }

    #[test]
    fn unhealthy_deploys_report_it() {
        block_on(async {
            let t = MemoryDeployTarget::new();
            let image: crate::Reference = "r.example.com/m".parse().unwrap();
            let pinned = image.with_digest(Digest::sha256_of(b"bad"));
            t.fail_health_of(&pinned.to_string());
            let req = DeployRequest::new("m", pinned, crate::Environment::Prod).unwrap();
            assert_eq!(req.replicas, 3);
            let d = t.apply(&t.plan(&req).await.unwrap()).await.unwrap();
            assert_eq!(t.status(&d).await.unwrap().state, HealthState::Unhealthy);
        });
    }

    #[test]
    fn static_token_source_conforms() {
        block_on(conformance::id_token_source(&StaticTokenSource::new(
            test_id_token("canary-token-5d1e", "sub"),
        )));
    }

    /// A gate that denies inputs with `"deny": true`, to exercise the policy suite.
    #[derive(Debug)]
    struct FieldGate;

    #[async_trait]
    impl PolicyGate for FieldGate {
        async fn evaluate(
            &self,
            input: &serde_json::Value,
            _: &EvaluateOptions,
        ) -> Result<Decision> {
            let violations = if input["deny"] == true {
                vec![crate::Violation::new("no_deny", "input asks to be denied")]
            } else {
                vec![]
            };
            Ok(Decision::new(violations, vec![], vec!["no_deny".into()]))
        }
    }

    #[test]
    fn policy_gate_suite_checks_both_ways() {
        block_on(conformance::policy_gate(
            &FieldGate,
            &serde_json::json!({}),
            &serde_json::json!({"deny": true}),
        ));
        let always = StaticPolicyGate::new(Decision::new(vec![], vec![], vec![]));
        let r = std::panic::catch_unwind(|| {
            block_on(conformance::policy_gate(
                &always,
                &serde_json::json!({}),
                &serde_json::json!({"deny": true}),
            ))
        });
        assert!(r.is_err(), "the suite must catch a gate that never denies");
    }

    #[test]
    fn static_credentials_expire() {
        let past = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let c = StaticCredentials::new(Credentials::new("aws", "AKID", Secret::new("s"), past));
        let err = block_on(c.credentials(&CredentialOptions::default())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        let src = StaticTokenSource::new(test_id_token("tok", "sub"));
        assert_eq!(
            block_on(src.id_token("sts.amazonaws.com"))
                .unwrap()
                .audience,
            "sts.amazonaws.com"
        );
    }
}

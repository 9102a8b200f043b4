//! Conformance suites: one async function per trait that every backend runs in its tests
//! (object_store's pattern), so the embedded default, the cloud backend and the in-memory
//! implementation keep the same contract. Each panics with a message naming the broken rule.
//!
//! ```text
//! #[tokio::test]
//! async fn layout_registry_conforms() {
//!     let reg = LayoutRegistry::create(tempdir)?;
//!     wharf_core::conformance::registry(&reg, "conformance").await;
//! }
//! ```

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::audit::{AppendOptions, VerifyRange};
use crate::deploy::{DeployRequest, HealthState};
use crate::record::{Actor, ModelId, RunOutcome, StageRecord, StageStatus};
use crate::registry::{
    ListTagsOptions, ManifestBytes, PushBlobOptions, PushManifestOptions, ReferrersOptions,
    TagPrecondition, blob_stream_from, collect_blob,
};
use crate::scan::{ScanOptions, ScanTarget};
use crate::sign::{SignOptions, VerifyOptions};
use crate::{
    AuditEvent, AuditLog, DeployTarget, Descriptor, Digest, Environment, ErrorKind, ImageManifest,
    Reference, Registry, RunRecord, Scanner, Signer, Verifier, media_types,
};

fn unique(prefix: &str) -> String {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!(
        "{prefix}-{}",
        &Digest::sha256_of(nanos.to_string().as_bytes()).hex()[..10]
    )
}

async fn push_bytes(reg: &dyn Registry, repo: &str, bytes: &'static [u8]) -> Descriptor {
    let digest = Digest::sha256_of(bytes);
    reg.push_blob(
        repo,
        &digest,
        blob_stream_from(bytes),
        &PushBlobOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{reg}: push_blob {digest}: {e}"))
}

/// Blobs, manifests, tags and referrers. Uses fresh repositories under `repo_prefix`, so it
/// can run against a long-lived registry.
pub async fn registry(reg: &dyn Registry, repo_prefix: &str) {
    let repo = unique(&format!("{repo_prefix}/conformance"));
    let repo = repo.as_str();

    // Blobs: absent, pushed, present with size, fetched byte for byte.
    let layer: &'static [u8] = b"model weights, pretend these are gigabytes";
    let layer_digest = Digest::sha256_of(layer);
    assert_eq!(
        reg.blob_exists(repo, &layer_digest).await.ok().flatten(),
        None,
        "{reg}: fresh blob must not exist"
    );
    let d = push_bytes(reg, repo, layer).await;
    assert_eq!(
        d.digest, layer_digest,
        "{reg}: push_blob returns the blob's digest"
    );
    assert_eq!(
        reg.blob_exists(repo, &layer_digest)
            .await
            .expect("blob_exists"),
        Some(layer.len() as u64)
    );
    let fetched = collect_blob(
        reg.fetch_blob(repo, &layer_digest)
            .await
            .expect("fetch_blob"),
        1 << 20,
    )
    .await
    .expect("fetch_blob stream");
    assert_eq!(
        &fetched[..],
        layer,
        "{reg}: fetched blob differs from pushed"
    );

    // Wrong digest: Integrity, and nothing stored.
    let wrong = Digest::sha256_of(b"something else");
    let err = reg
        .push_blob(
            repo,
            &wrong,
            blob_stream_from(&b"not that"[..]),
            &PushBlobOptions::default(),
        )
        .await
        .expect_err("push_blob must reject bytes that do not match the digest");
    assert_eq!(
        err.kind(),
        ErrorKind::Integrity,
        "{reg}: wrong digest gives Integrity: {err}"
    );
    assert_eq!(
        reg.blob_exists(repo, &wrong).await.ok().flatten(),
        None,
        "{reg}: mismatched blob must not be stored"
    );

    // Missing content is NotFound.
    let missing = Digest::sha256_of(b"never pushed");
    let err = reg
        .fetch_blob(repo, &missing)
        .await
        .err()
        .expect("fetch of a missing blob must fail");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{reg}: {err}");
    let err = reg
        .fetch_manifest(repo, &missing)
        .await
        .expect_err("missing manifest");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{reg}: {err}");
    let err = reg
        .resolve_tag(repo, "no-such-tag")
        .await
        .expect_err("missing tag");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{reg}: {err}");

    // A manifest naming a blob that is not stored is refused and not tagged.
    let config = push_bytes(reg, repo, b"{}").await;
    let config = Descriptor::new(media_types::OCI_EMPTY, config.digest, 2);
    let dangling = ImageManifest::new(
        config.clone(),
        vec![Descriptor::new(
            media_types::OCI_LAYER_TAR,
            missing.clone(),
            12,
        )],
    );
    let dangling = ManifestBytes::new(media_types::OCI_MANIFEST, dangling.to_vec());
    assert!(
        reg.push_manifest(repo, &dangling, &PushManifestOptions::tagged("dangling"))
            .await
            .is_err(),
        "{reg}: a manifest naming a missing blob must be refused"
    );
    assert!(
        reg.resolve_tag(repo, "dangling").await.is_err(),
        "{reg}: nothing half-pushed may be tagged"
    );

    // Manifest push, fetch (exact bytes), tag, resolve, list.
    let mut manifest = ImageManifest::new(
        config.clone(),
        vec![Descriptor::new(
            media_types::OCI_LAYER_TAR,
            layer_digest.clone(),
            layer.len() as u64,
        )],
    );
    manifest.annotations.insert(
        "org.opencontainers.image.title".into(),
        "conformance".into(),
    );
    let image = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    let pushed = reg
        .push_manifest(repo, &image, &PushManifestOptions::tagged("v1"))
        .await
        .expect("push_manifest");
    assert_eq!(
        pushed.digest, image.descriptor.digest,
        "{reg}: manifest digest is over the exact bytes"
    );
    let back = reg
        .fetch_manifest(repo, &pushed.digest)
        .await
        .expect("fetch_manifest");
    assert_eq!(
        back.bytes, image.bytes,
        "{reg}: manifest bytes must round-trip exactly"
    );
    assert_eq!(
        reg.resolve_tag(repo, "v1")
            .await
            .expect("resolve v1")
            .digest,
        pushed.digest
    );
    reg.tag(repo, &pushed.digest, "3f2a9c1").await.expect("tag");
    assert_eq!(
        reg.resolve_tag(repo, "3f2a9c1")
            .await
            .expect("resolve")
            .digest,
        pushed.digest
    );
    let tags = reg
        .list_tags(repo, &ListTagsOptions::default())
        .await
        .expect("list_tags");
    assert_eq!(
        tags,
        vec!["3f2a9c1".to_owned(), "v1".to_owned()],
        "{reg}: tags listed sorted"
    );
    assert!(
        reg.tag(repo, &pushed.digest, "bad/tag").await.is_err(),
        "{reg}: invalid tag refused"
    );

    // Tag preconditions: an immutable tag is not moved, a read-modify-write whose read is
    // stale is refused, and a re-push of what the tag holds is always fine.
    let mut other = manifest.clone();
    other.annotations.insert("rev".into(), "2".into());
    let other = ManifestBytes::new(media_types::OCI_MANIFEST, other.to_vec());
    let err = reg
        .push_manifest(
            repo,
            &other,
            &PushManifestOptions::tagged("v1").if_tag(TagPrecondition::Absent),
        )
        .await
        .expect_err("Absent must refuse a tag that holds other content");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{reg}: {err}");
    assert_eq!(
        reg.resolve_tag(repo, "v1")
            .await
            .expect("resolve v1")
            .digest,
        pushed.digest,
        "{reg}: a refused push must not move the tag"
    );
    reg.push_manifest(
        repo,
        &image,
        &PushManifestOptions::tagged("v1").if_tag(TagPrecondition::Absent),
    )
    .await
    .expect("re-pushing what the tag holds satisfies any precondition");
    let stale = TagPrecondition::Holds(other.descriptor.digest.clone());
    let err = reg
        .push_manifest(
            repo,
            &other,
            &PushManifestOptions::tagged("v1").if_tag(stale),
        )
        .await
        .expect_err("Holds(d) must refuse when the tag holds something else");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{reg}: {err}");
    reg.push_manifest(
        repo,
        &other,
        &PushManifestOptions::tagged("rmw").if_tag(TagPrecondition::unchanged_from(None)),
    )
    .await
    .expect("Absent on a new tag");
    reg.push_manifest(
        repo,
        &image,
        &PushManifestOptions::tagged("rmw")
            .if_tag(TagPrecondition::Holds(other.descriptor.digest.clone())),
    )
    .await
    .expect("Holds(current) moves the tag");
    assert_eq!(
        reg.resolve_tag(repo, "rmw")
            .await
            .expect("resolve rmw")
            .digest,
        pushed.digest
    );
    let tags = reg
        .list_tags(repo, &ListTagsOptions::default())
        .await
        .expect("list_tags");
    assert_eq!(
        tags,
        vec!["3f2a9c1".to_owned(), "rmw".to_owned(), "v1".to_owned()],
        "{reg}: tags after the precondition checks"
    );

    // Referrers: an artifact whose subject is the image, filterable by artifact type.
    let mut sig = ImageManifest::new(config.clone(), vec![config.clone()]);
    sig.artifact_type = Some(media_types::SIGSTORE_BUNDLE_V03.into());
    sig.subject = Some(pushed.clone());
    let sig = ManifestBytes::new(media_types::OCI_MANIFEST, sig.to_vec());
    let tag = pushed.digest.tag_form();
    reg.push_manifest(repo, &sig, &PushManifestOptions::tagged(tag))
        .await
        .expect("push referrer");
    let refs = reg
        .referrers(repo, &pushed.digest, &ReferrersOptions::default())
        .await
        .expect("referrers");
    assert_eq!(refs.len(), 1, "{reg}: one referrer expected, got {refs:?}");
    assert_eq!(refs[0].digest, sig.descriptor.digest);
    assert_eq!(
        refs[0].artifact_type.as_deref(),
        Some(media_types::SIGSTORE_BUNDLE_V03)
    );
    let none = reg
        .referrers(
            repo,
            &pushed.digest,
            &ReferrersOptions::of_type("application/example"),
        )
        .await
        .expect("filtered referrers");
    assert!(none.is_empty(), "{reg}: artifact-type filter must apply");
}

/// A small, valid run record event with id `run_id`, for audit log tests.
pub fn run_record(run_id: &str) -> AuditEvent {
    let now = OffsetDateTime::now_utc();
    AuditEvent::Run(RunRecord {
        run_id: run_id.to_owned(),
        project: "conformance".into(),
        started_at: now,
        finished_at: now,
        environment: Environment::Dev,
        actor: Actor::local("tester"),
        source_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        model: Some(ModelId::new("m", "1.0.0")),
        image_digest: Some(Digest::sha256_of(run_id.as_bytes())),
        outcome: RunOutcome::Passed,
        stages: vec![StageRecord::new(
            "governance",
            StageStatus::Passed,
            now,
            3,
            "ok",
        )],
    })
}

/// Append, read back, chain and verify. `log` must be empty when the suite starts.
pub async fn audit_log(log: &dyn AuditLog) {
    assert!(
        log.head().await.expect("head").is_none(),
        "{log:?}: a fresh log has no head"
    );
    let err = log.read(0).await.expect_err("read of a missing record");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{log:?}: {err}");

    let events: Vec<AuditEvent> = (0..3).map(|i| run_record(&format!("run-{i}"))).collect();
    let mut receipts = Vec::new();
    for ev in &events {
        receipts.push(
            log.append(ev, &AppendOptions::default())
                .await
                .expect("append"),
        );
    }
    let seqs: Vec<u64> = receipts.iter().map(|r| r.sequence).collect();
    assert_eq!(
        seqs,
        [0, 1, 2],
        "{log:?}: sequences start at 0 and have no gaps"
    );
    let head = log.head().await.expect("head").expect("head after appends");
    assert_eq!(head.sequence, 2);
    assert_eq!(head.hash, receipts[2].hash);

    for (i, receipt) in receipts.iter().enumerate() {
        let rec = log.read(receipt.sequence).await.expect("read");
        assert_eq!(
            rec.hash, receipt.hash,
            "{log:?}: receipt and record hash agree"
        );
        assert!(
            rec.hash_is_valid(),
            "{log:?}: record {i} hash must recompute"
        );
        assert_eq!(
            rec.event, events[i],
            "{log:?}: record {i} reads back as appended"
        );
        let expected_prev = if i == 0 {
            None
        } else {
            Some(receipts[i - 1].hash.clone())
        };
        assert_eq!(
            rec.prev_hash, expected_prev,
            "{log:?}: record {i} links to its predecessor"
        );
    }

    let report = log.verify(&VerifyRange::default()).await.expect("verify");
    assert!(
        report.is_intact(),
        "{log:?}: fresh chain must verify: {:?}",
        report.problems
    );
    assert_eq!(report.checked, 3);
    assert_eq!(report.head.as_ref(), Some(&receipts[2].hash));
    let partial = log
        .verify(&VerifyRange {
            from: Some(1),
            to: Some(2),
        })
        .await
        .expect("verify range");
    assert!(
        partial.is_intact() && partial.checked == 2,
        "{log:?}: a range verifies: {partial:?}"
    );

    // Concurrent appends still form one linear chain.
    let events: Vec<AuditEvent> = (3..11).map(|i| run_record(&format!("run-{i}"))).collect();
    let opts = AppendOptions::default();
    let results =
        futures_util::future::join_all(events.iter().map(|ev| log.append(ev, &opts))).await;
    let mut seqs: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("concurrent append").sequence)
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (3..11).collect::<Vec<u64>>(),
        "{log:?}: concurrent appends get distinct sequences"
    );
    let report = log.verify(&VerifyRange::default()).await.expect("verify");
    assert!(
        report.is_intact() && report.checked == 11,
        "{log:?}: {report:?}"
    );

    // An id is recorded once: the same event again is the first receipt, other content
    // under the id is a conflict, and neither adds a record.
    let recorded = log.read(receipts[1].sequence).await.expect("read").event;
    let again = log
        .append(&recorded, &AppendOptions::default())
        .await
        .expect("appending the same event again");
    assert_eq!(
        (again.sequence, &again.hash),
        (receipts[1].sequence, &receipts[1].hash),
        "{log:?}: the same event again returns the first receipt"
    );
    let mut changed = recorded.clone();
    if let AuditEvent::Run(r) = &mut changed {
        r.outcome = crate::RunOutcome::Failed;
    }
    let err = log
        .append(&changed, &AppendOptions::default())
        .await
        .expect_err("other content under a recorded id");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{log:?}: {err}");
    let event = AuditEvent::Event(
        crate::EventRecord::new("approval-1", "approval", crate::Actor::local("qa"))
            .at(time::OffsetDateTime::from_unix_timestamp(1_764_000_000).expect("a valid time")),
    );
    let first = log
        .append(&event, &AppendOptions::default())
        .await
        .expect("an event");
    let second = log
        .append(&event, &AppendOptions::default())
        .await
        .expect("the event again");
    assert_eq!(
        first.sequence, second.sequence,
        "{log:?}: events are idempotent too"
    );
    assert_eq!(log.read(first.sequence).await.expect("read").event, event);
    let report = log.verify(&VerifyRange::default()).await.expect("verify");
    assert!(
        report.is_intact() && report.checked == 12,
        "{log:?}: {report:?}"
    );
}

/// Several writers — separate log instances over one store, as separate processes would
/// be — append `each` records concurrently to a log that is empty at the start: the result
/// is one linear chain of `writers.len() × each` records, no gaps, no forks. Each
/// writer runs as its own future, so the writers' requests interleave.
pub async fn audit_log_writers(writers: &[&dyn AuditLog], each: usize) {
    async fn write(w: usize, log: &dyn AuditLog, each: usize) -> Vec<u64> {
        let mut seqs = Vec::with_capacity(each);
        for i in 0..each {
            let ev = run_record(&format!("writer-{w}-{i}"));
            let receipt = log.append(&ev, &AppendOptions::default()).await;
            seqs.push(receipt.expect("concurrent append").sequence);
        }
        seqs
    }
    let per_writer = futures_util::future::join_all(
        writers
            .iter()
            .enumerate()
            .map(|(w, log)| write(w, *log, each)),
    )
    .await;
    let total = (writers.len() * each) as u64;
    let mut all: Vec<u64> = per_writer.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..total).collect::<Vec<u64>>(),
        "{:?}: every append got its own sequence, none skipped",
        writers[0]
    );
    let report = writers[0]
        .verify(&VerifyRange::default())
        .await
        .expect("verify");
    assert!(
        report.is_intact() && report.checked == total,
        "{:?}: one linear chain: {report:?}",
        writers[0]
    );
}

/// Sign and verify; tampered payloads, signatures and foreign keys are rejected.
pub async fn signer_verifier(signer: &dyn Signer, verifier: &dyn Verifier, other_key: &dyn Signer) {
    let payload = br#"{"critical":{"type":"cosign container image signature"}}"#;
    let sig = signer
        .sign(payload, &SignOptions::default())
        .await
        .expect("sign");
    assert_eq!(
        sig.key_id,
        signer.key_id(),
        "{signer:?}: signature names its key"
    );
    let ok = verifier
        .verify(payload, &sig, &VerifyOptions::default())
        .await
        .expect("verify own signature");
    assert_eq!(ok.key_id, signer.key_id());

    let err = verifier
        .verify(b"tampered payload", &sig, &VerifyOptions::default())
        .await
        .expect_err("a signature over other bytes must not verify");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{verifier:?}: {err}");

    let mut flipped = sig.clone();
    if let Some(b) = flipped.bytes.last_mut() {
        *b ^= 1;
    }
    assert!(
        verifier
            .verify(payload, &flipped, &VerifyOptions::default())
            .await
            .is_err(),
        "{verifier:?}: a flipped bit must not verify"
    );
    let foreign = other_key
        .sign(payload, &SignOptions::default())
        .await
        .expect("sign with other key");
    assert!(
        verifier
            .verify(payload, &foreign, &VerifyOptions::default())
            .await
            .is_err(),
        "{verifier:?}: a signature by another key must not verify"
    );
}

/// A scanner reports on the digest it was given.
pub async fn scanner(scanner: &dyn Scanner, target: &ScanTarget) {
    let report = scanner
        .scan(target, &ScanOptions::default())
        .await
        .expect("scan");
    assert!(!scanner.name().is_empty());
    assert_eq!(
        report.scanner,
        scanner.name(),
        "{scanner:?}: report names its scanner"
    );
    assert_eq!(
        report.artifact.as_ref(),
        Some(target.digest()),
        "{scanner:?}: report names the scanned digest"
    );
    let counts: BTreeMap<_, _> = report.counts();
    assert_eq!(counts.values().sum::<usize>(), report.findings.len());
}

/// Plan, apply, status, no-op re-plan, and rollback. `image` is a repository reference
/// without digest; the suite pins it to two digests.
pub async fn deploy_target(target: &dyn DeployTarget, name: &str, image: &Reference) {
    let by_tag = image.with_tag("latest").expect("tag");
    assert!(
        DeployRequest::new(name, by_tag, Environment::Dev).is_err(),
        "deploying by tag must be refused"
    );
    let v1 = image.with_digest(Digest::sha256_of(b"v1"));
    let v2 = image.with_digest(Digest::sha256_of(b"v2"));
    let req1 = DeployRequest::new(name, v1, Environment::Dev).expect("request");
    let plan = target.plan(&req1).await.expect("plan");
    assert!(
        !plan.is_noop(),
        "{target:?}: first deploy changes something"
    );
    assert!(
        plan.to_string()
            .contains(&Digest::sha256_of(b"v1").to_string()),
        "{target:?}: plan shows the digest"
    );
    let d1 = target.apply(&plan).await.expect("apply");
    assert_eq!(
        target.status(&d1).await.expect("status").state,
        HealthState::Healthy
    );
    assert!(
        target.plan(&req1).await.expect("re-plan").is_noop(),
        "{target:?}: re-plan is a no-op"
    );
    assert!(
        target.rollback(&d1).await.is_err(),
        "{target:?}: no previous revision on first deploy"
    );

    let req2 = DeployRequest::new(name, v2, Environment::Dev).expect("request");
    let d2 = target
        .apply(&target.plan(&req2).await.expect("plan v2"))
        .await
        .expect("apply v2");
    assert_eq!(d2.previous_revision.as_deref(), Some(d1.revision.as_str()));
    let back = target.rollback(&d2).await.expect("rollback");
    assert!(
        target
            .plan(&req1)
            .await
            .expect("plan after rollback")
            .is_noop(),
        "{target:?}: rollback restores v1"
    );
    assert_eq!(
        target.status(&back).await.expect("status").state,
        HealthState::Healthy
    );
}

/// An ID-token source honours the audience asked for, hands out an unexpired token, and
/// never shows the token in `Debug` output.
pub async fn id_token_source(source: &dyn crate::IdTokenSource) {
    let token = source
        .id_token("sts.amazonaws.com")
        .await
        .expect("id_token");
    assert_eq!(
        token.audience, "sts.amazonaws.com",
        "{source:?}: the token is for the audience asked for"
    );
    assert!(
        token.expires_at > OffsetDateTime::now_utc(),
        "{source:?}: the token is not expired"
    );
    assert!(
        !token.subject.is_empty() && !token.issuer.is_empty(),
        "{source:?}: subject and issuer are set"
    );
    let shown = format!("{token:?} {source:?}");
    assert!(
        !shown.contains(token.token.expose()),
        "{source:?}: Debug output must not contain the token"
    );
}

/// A policy gate allows `allowed` and blocks `denied` with at least one explained violation.
pub async fn policy_gate(
    gate: &dyn crate::PolicyGate,
    allowed: &serde_json::Value,
    denied: &serde_json::Value,
) {
    use crate::policy::EvaluateOptions;
    let opts = EvaluateOptions::for_environment(Environment::Prod);
    let ok = gate
        .evaluate(allowed, &opts)
        .await
        .expect("evaluate allowed input");
    assert!(
        ok.allow && ok.violations.is_empty(),
        "{gate:?}: must allow: {:?}",
        ok.violations
    );
    let no = gate
        .evaluate(denied, &opts)
        .await
        .expect("evaluate denied input");
    assert!(!no.allow, "{gate:?}: must deny");
    assert!(
        !no.violations.is_empty(),
        "{gate:?}: a denial names its violations"
    );
    assert!(
        no.violations
            .iter()
            .all(|v| !v.rule.is_empty() && !v.message.is_empty()),
        "{gate:?}: violations are explained"
    );
}

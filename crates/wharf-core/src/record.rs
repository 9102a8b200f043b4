//! The run record every pipeline run ends in, and the audit events that carry it.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Digest, Environment};

/// Who started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Actor {
    /// The subject: an OIDC `sub` (e.g. `repo:acme/models:ref:refs/heads/main`) or a local
    /// user name.
    pub id: String,
    /// Where the identity came from.
    pub kind: ActorKind,
    /// The OIDC issuer, for token identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// What the token says about the run, decoded but not verified (the cloud that
    /// accepted it verified it): `repository`, `ref`, `workflow`, `run_id`, `environment`,
    /// `triggered_by`. Empty for local users.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub context: std::collections::BTreeMap<String, String>,
}

impl Actor {
    /// A local user (no token exchange).
    pub fn local(user: impl Into<String>) -> Self {
        Self {
            id: user.into(),
            kind: ActorKind::Local,
            issuer: None,
            context: Default::default(),
        }
    }

    /// An identity taken from an OIDC ID token.
    pub fn oidc(subject: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            id: subject.into(),
            kind: ActorKind::Oidc,
            issuer: Some(issuer.into()),
            context: Default::default(),
        }
    }

    /// The same actor with `key` = `value` in its [`Actor::context`].
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.issuer {
            Some(iss) => write!(f, "{} ({iss})", self.id),
            None => write!(f, "{} (local)", self.id),
        }
    }
}

/// Where an [`Actor`]'s identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ActorKind {
    /// The local user running the command.
    Local,
    /// An OIDC ID token (CI workload identity).
    Oidc,
}

/// The outcome of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Did its work; nothing to report.
    Passed,
    /// Did its work; found things a person should look at, but nothing blocking.
    Warned,
    /// Hit an error, or panicked: the run failed.
    Failed,
    /// A gate said no on purpose (a policy violation, a blocking finding, a missing
    /// signature): the run is blocked. Records written before this status existed say
    /// `failed` for these.
    Blocked,
    /// Not run (an earlier stage failed, or not configured).
    Skipped,
}

impl StageStatus {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Passed => "passed",
            StageStatus::Warned => "warned",
            StageStatus::Failed => "failed",
            StageStatus::Blocked => "blocked",
            StageStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A piece of evidence a stage produced (a decision document, a scan report, a signature),
/// named by its digest so the audit record pins exactly what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Evidence {
    /// What it is (`policy-decision`, `scan-report`, `image-manifest`, …).
    pub kind: String,
    /// The digest of its bytes.
    pub digest: Digest,
    /// Where it is stored, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Evidence {
    /// Evidence of `kind` over `bytes`.
    pub fn of_bytes(kind: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            kind: kind.into(),
            digest: Digest::sha256_of(bytes),
            location: None,
        }
    }

    /// Evidence of `kind` with a known digest.
    pub fn new(kind: impl Into<String>, digest: Digest) -> Self {
        Self {
            kind: kind.into(),
            digest,
            location: None,
        }
    }

    /// Set where the evidence is stored.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// What one stage did, for the run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StageRecord {
    /// Stage name (`governance`, `package`, `scan`, …).
    pub name: String,
    /// Its outcome.
    pub status: StageStatus,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// A one-line summary for people.
    pub summary: String,
    /// Evidence it produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Structured details (a policy decision, finding counts), for machines.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl StageRecord {
    /// A record of a stage that started at `started_at` and took `duration_ms`.
    pub fn new(
        name: impl Into<String>,
        status: StageStatus,
        started_at: OffsetDateTime,
        duration_ms: u64,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status,
            started_at,
            duration_ms,
            summary: summary.into(),
            evidence: Vec::new(),
            details: serde_json::Value::Null,
        }
    }
}

/// How a whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Every stage passed or warned.
    Passed,
    /// A gate (governance, scan, signature) blocked the run on purpose.
    Blocked,
    /// A stage hit an error or panicked.
    Failed,
}

impl RunOutcome {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Blocked => "blocked",
            RunOutcome::Failed => "failed",
        }
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record of one pipeline run: who, what, where, and what every stage concluded.
///
/// Not `#[non_exhaustive]`: pipelines written against the traits build it directly, and a
/// new field is a change to the audit format anyway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique run id.
    pub run_id: String,
    /// Project name from the config.
    pub project: String,
    /// When the run started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Target environment.
    pub environment: Environment,
    /// Who ran it.
    pub actor: Actor,
    /// The source commit (git SHA), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    /// Model name and version from the manifest, when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelId>,
    /// The image digest, once the image was pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<Digest>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Every stage, in order, including skipped ones.
    pub stages: Vec<StageRecord>,
}

impl RunRecord {
    /// The stage that stopped the run: the first that failed or blocked, if any.
    pub fn failed_stage(&self) -> Option<&StageRecord> {
        self.stages
            .iter()
            .find(|s| matches!(s.status, StageStatus::Failed | StageStatus::Blocked))
    }

    /// A record of run `run_id` of `project` in `environment` by `actor`, started and
    /// finished now, passed, with no stages yet: set the rest on the builder.
    ///
    /// ```
    /// use wharf_core::{Actor, Environment, RunOutcome, RunRecord, StageRecord, StageStatus};
    ///
    /// let started = time::OffsetDateTime::now_utc();
    /// let record = RunRecord::builder("run-42", "fraud-detector", Environment::Prod, Actor::local("ci"))
    ///     .started_at(started)
    ///     .source_commit("3f2a9c1")
    ///     .stage(StageRecord::new("governance", StageStatus::Passed, started, 4, "10 rules passed"))
    ///     .outcome(RunOutcome::Passed)
    ///     .build();
    /// assert_eq!(record.stages.len(), 1);
    /// ```
    pub fn builder(
        run_id: impl Into<String>,
        project: impl Into<String>,
        environment: Environment,
        actor: Actor,
    ) -> RunRecordBuilder {
        let now = OffsetDateTime::now_utc();
        RunRecordBuilder(RunRecord {
            run_id: run_id.into(),
            project: project.into(),
            started_at: now,
            finished_at: now,
            environment,
            actor,
            source_commit: None,
            model: None,
            image_digest: None,
            outcome: RunOutcome::Passed,
            stages: Vec::new(),
        })
    }
}

/// Builds a [`RunRecord`]; see [`RunRecord::builder`].
#[derive(Debug, Clone)]
#[must_use = "call build() to get the record"]
pub struct RunRecordBuilder(RunRecord);

impl RunRecordBuilder {
    /// When the run started (default: when the builder was made).
    pub fn started_at(mut self, at: OffsetDateTime) -> Self {
        self.0.started_at = at;
        self
    }

    /// When the run ended (default: when the builder was made).
    pub fn finished_at(mut self, at: OffsetDateTime) -> Self {
        self.0.finished_at = at;
        self
    }

    /// The source commit (git SHA).
    pub fn source_commit(mut self, commit: impl Into<String>) -> Self {
        self.0.source_commit = Some(commit.into());
        self
    }

    /// The model's name and version.
    pub fn model(mut self, model: ModelId) -> Self {
        self.0.model = Some(model);
        self
    }

    /// The image digest.
    pub fn image_digest(mut self, digest: Digest) -> Self {
        self.0.image_digest = Some(digest);
        self
    }

    /// How the run ended (default: passed).
    pub fn outcome(mut self, outcome: RunOutcome) -> Self {
        self.0.outcome = outcome;
        self
    }

    /// Add a stage, after those added before.
    pub fn stage(mut self, stage: StageRecord) -> Self {
        self.0.stages.push(stage);
        self
    }

    /// The record.
    pub fn build(self) -> RunRecord {
        self.0
    }
}

/// Something other than a pipeline run that the audit trail must hold: a promotion, a
/// manual approval, a waiver, a deployment made by another tool.
///
/// ```
/// use wharf_core::{Actor, AuditEvent, Digest, Environment, EventRecord};
///
/// let approval = EventRecord::new("approval-2026-12-05-1", "approval", Actor::local("qa-lead"))
///     .subject(Digest::sha256_of(b"the image manifest"))
///     .environment(Environment::Prod)
///     .data(serde_json::json!({"ticket": "CHG-1042", "comment": "validated on the agreed test set"}));
/// let event = AuditEvent::Event(approval);
/// assert_eq!(event.id(), "approval-2026-12-05-1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventRecord {
    /// Unique id: the log records an id once (appending the same event again returns the
    /// first receipt; other content under the same id is refused).
    pub id: String,
    /// What happened: `promotion`, `approval`, `waiver`, `deployment`, or a word of yours.
    pub kind: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it.
    pub actor: Actor,
    /// The image (or other artifact) it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// The environment it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Details, for machines (a JSON object: a ticket, a comment, a waiver's expiry).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl EventRecord {
    /// An event `id` of `kind` by `actor`, happening now.
    pub fn new(id: impl Into<String>, kind: impl Into<String>, actor: Actor) -> Self {
        Self {
            id: id.into(),
            kind: kind.into(),
            at: OffsetDateTime::now_utc(),
            actor,
            subject: None,
            environment: None,
            data: serde_json::Value::Null,
        }
    }

    /// When it happened (default: when it was made).
    pub fn at(mut self, at: OffsetDateTime) -> Self {
        self.at = at;
        self
    }

    /// The digest it concerns.
    pub fn subject(mut self, digest: Digest) -> Self {
        self.subject = Some(digest);
        self
    }

    /// The environment it concerns.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Its details.
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// A model's name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelId {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
}

impl ModelId {
    /// A model id.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }
}

/// An event appended to an [`crate::AuditLog`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// A pipeline run ended.
    Run(RunRecord),
    /// Anything else the trail must hold: a promotion, an approval, a waiver, a deployment
    /// by another tool.
    Event(EventRecord),
}

impl AuditEvent {
    /// The event's unique id: the run id of a run, the id of any other event. A log records
    /// an id once.
    pub fn id(&self) -> &str {
        match self {
            AuditEvent::Run(r) => &r.run_id,
            AuditEvent::Event(e) => &e.id,
        }
    }

    /// The run id (the id of an event that is not a run): the same as [`AuditEvent::id`].
    pub fn run_id(&self) -> &str {
        self.id()
    }

    /// The image digest the event concerns, if any.
    pub fn image_digest(&self) -> Option<&Digest> {
        match self {
            AuditEvent::Run(r) => r.image_digest.as_ref(),
            AuditEvent::Event(e) => e.subject.as_ref(),
        }
    }

    /// When the event happened.
    pub fn timestamp(&self) -> OffsetDateTime {
        match self {
            AuditEvent::Run(r) => r.finished_at,
            AuditEvent::Event(e) => e.at,
        }
    }

    /// What kind of event: `run`, or an event's own kind.
    pub fn kind(&self) -> &str {
        match self {
            AuditEvent::Run(_) => "run",
            AuditEvent::Event(e) => &e.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_record_json_shape() {
        let t = time::macros::datetime!(2026-11-22 10:00:00 UTC);
        let mut stage =
            StageRecord::new("governance", StageStatus::Passed, t, 12, "9 rules passed");
        stage
            .evidence
            .push(Evidence::of_bytes("policy-decision", b"{}"));
        let rec = RunRecord {
            run_id: "run-1".into(),
            project: "fraud".into(),
            started_at: t,
            finished_at: t,
            environment: Environment::Prod,
            actor: Actor::oidc(
                "repo:acme/m:ref:refs/heads/main",
                "https://token.actions.githubusercontent.com",
            ),
            source_commit: Some("3f2a9c1".into()),
            model: Some(ModelId::new("fraud", "1.2.0")),
            image_digest: None,
            outcome: RunOutcome::Passed,
            stages: vec![stage],
        };
        let v = serde_json::to_value(AuditEvent::Run(rec.clone())).unwrap();
        assert_eq!(v["type"], "run");
        assert_eq!(v["environment"], "prod");
        assert_eq!(v["started_at"], "2026-11-22T10:00:00Z");
        assert_eq!(v["actor"]["kind"], "oidc");
        assert_eq!(v["stages"][0]["status"], "passed");
        assert!(v.get("image_digest").is_none());
        let back: AuditEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, AuditEvent::Run(rec));
        assert_eq!(back.run_id(), "run-1");
    }
}

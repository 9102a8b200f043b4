//! S3 with Object Lock: every record is a locked object version that nobody — not the
//! account root, in COMPLIANCE mode — can delete or overwrite until its retention ends.
//!
//! ```no_run
//! # async fn demo() -> wharf_core::Result<()> {
//! use wharf_audit::{WormLog, s3::{RetentionPolicy, S3Store}};
//! let config = aws_config::load_from_env().await;
//! let client = aws_sdk_s3::Client::new(&config);
//! // Refuses a bucket without Object Lock, or whose default retention is shorter.
//! let store = S3Store::connect(client, "acme-audit", "fraud-detector/", RetentionPolicy::default()).await?;
//! let log = WormLog::new(store);
//! # Ok(()) }
//! ```
//!
//! Each put carries `If-None-Match: *` (two writers can never both create a sequence
//! number: the loser gets 412 and re-reads the head), the object's SHA-256 checksum (S3
//! rejects a body that does not match), the lock mode and retain-until date, and optionally
//! a legal hold. After the put, a HEAD confirms the lock was applied.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetentionMode,
};
use base64::Engine as _;
use bytes::Bytes;
use time::OffsetDateTime;
use wharf_core::{Digest, Error, ErrorKind, Result};

use crate::store::{Created, WormStore};

/// Seven years (with two leap days): a common GxP retention.
pub const SEVEN_YEARS: Duration = Duration::from_secs((7 * 365 + 2) * 86_400);

/// How records are locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockMode {
    /// Nobody can shorten the retention or delete the object, not even the root user.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can; everyone else cannot.
    Governance,
}

/// The retention every record gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Lock mode (COMPLIANCE by default).
    pub mode: LockMode,
    /// How long each record is kept from when it is written (7 years by default).
    pub retain_for: Duration,
    /// Also place a legal hold on every record (kept until removed, whatever the retention).
    pub legal_hold: bool,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            mode: LockMode::Compliance,
            retain_for: SEVEN_YEARS,
            legal_hold: false,
        }
    }
}

impl RetentionPolicy {
    /// COMPLIANCE mode for `days`.
    pub fn compliance_days(days: u64) -> Self {
        Self {
            retain_for: Duration::from_secs(days * 86_400),
            ..Self::default()
        }
    }

    /// Use GOVERNANCE mode instead of COMPLIANCE.
    pub fn governance(mut self) -> Self {
        self.mode = LockMode::Governance;
        self
    }

    /// Place a legal hold on every record.
    pub fn with_legal_hold(mut self) -> Self {
        self.legal_hold = true;
        self
    }
}

/// An S3 bucket (and key prefix) with Object Lock, as a [`WormStore`].
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    policy: RetentionPolicy,
}

impl S3Store {
    /// Check the bucket and return the store: the bucket must have Object Lock enabled, and
    /// a default retention, if it has one, must not be shorter than `policy.retain_for`.
    pub async fn connect(
        client: Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        policy: RetentionPolicy,
    ) -> Result<Self> {
        let bucket = bucket.into();
        let mut prefix: String = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let config = match client
            .get_object_lock_configuration()
            .bucket(&bucket)
            .send()
            .await
        {
            Ok(out) => out.object_lock_configuration,
            Err(e) if code_of(&e) == Some("ObjectLockConfigurationNotFoundError") => None,
            Err(e) => {
                return Err(sdk_error(
                    &format!("checking Object Lock on s3://{bucket}"),
                    e,
                ));
            }
        };
        let enabled = config
            .as_ref()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
        if !enabled {
            return Err(Error::invalid(format!(
                "s3://{bucket} does not have Object Lock enabled, so audit records there could be deleted or overwritten: use a bucket created with Object Lock (aws s3api create-bucket --object-lock-enabled-for-bucket)"
            )));
        }
        if let Some(rule) = config
            .as_ref()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
        {
            let days = rule
                .days()
                .map(i64::from)
                .or_else(|| rule.years().map(|y| i64::from(y) * 365))
                .unwrap_or(0);
            let bucket_secs = u64::try_from(days).unwrap_or(0) * 86_400;
            if bucket_secs < policy.retain_for.as_secs() {
                return Err(Error::invalid(format!(
                    "s3://{bucket}'s default Object Lock retention ({days} days{}) is shorter than the configured audit retention ({} days): raise the bucket's default retention or use another bucket",
                    rule.mode()
                        .map(|m| format!(", {}", m.as_str()))
                        .unwrap_or_default(),
                    policy.retain_for.as_secs() / 86_400
                )));
            }
            if policy.mode == LockMode::Compliance
                && rule.mode() == Some(&ObjectLockRetentionMode::Governance)
            {
                tracing::warn!(
                    bucket,
                    "the bucket's default lock mode is GOVERNANCE; audit records are written in COMPLIANCE mode explicitly"
                );
            }
        }
        Ok(Self {
            client,
            bucket,
            prefix,
            policy,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The keys under `prefix` (without the store's prefix), sorted; with `start_after` (a
    /// full key), only those after it, which S3 skips to without listing the rest.
    async fn list_keys(&self, prefix: &str, start_after: Option<String>) -> Result<Vec<String>> {
        let full = self.key(prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .set_start_after(start_after)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(&format!("listing {}", self.url(&full)), e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    keys.push(k.to_owned());
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn lock_mode(&self) -> ObjectLockMode {
        match self.policy.mode {
            LockMode::Compliance => ObjectLockMode::Compliance,
            LockMode::Governance => ObjectLockMode::Governance,
        }
    }

    /// Confirm the object at `key` carries the lock it was written with.
    async fn check_lock(&self, key: &str, retain_until: OffsetDateTime) -> Result<()> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("checking the lock of {}", self.url(key)), e))?;
        let mode_ok = head.object_lock_mode() == Some(&self.lock_mode());
        let until_ok = head
            .object_lock_retain_until_date()
            .is_some_and(|d| d.secs() >= retain_until.unix_timestamp());
        let hold_ok = !self.policy.legal_hold
            || head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On);
        if mode_ok && until_ok && hold_ok {
            Ok(())
        } else {
            Err(Error::integrity(format!(
                "{} was stored without the requested Object Lock (mode {:?}, retain until {:?}, legal hold {:?}): the bucket or a proxy dropped it",
                self.url(key),
                head.object_lock_mode().map(|m| m.as_str()),
                head.object_lock_retain_until_date().map(|d| d.secs()),
                head.object_lock_legal_hold_status().map(|h| h.as_str()),
            )))
        }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

#[async_trait]
impl WormStore for S3Store {
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created> {
        let key = self.key(key);
        let digest = Digest::sha256_of(&bytes);
        let raw: Vec<u8> = (0..digest.hex().len() / 2)
            .filter_map(|i| u8::from_str_radix(&digest.hex()[2 * i..2 * i + 2], 16).ok())
            .collect();
        let checksum = base64::engine::general_purpose::STANDARD.encode(raw);
        let retain_until = OffsetDateTime::now_utc()
            + time::Duration::try_from(self.policy.retain_for).unwrap_or(time::Duration::MAX);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from(bytes.clone()))
                .content_type("application/json")
                .if_none_match("*")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(&checksum)
                .object_lock_mode(self.lock_mode())
                .object_lock_retain_until_date(DateTime::from_secs(retain_until.unix_timestamp()));
            if self.policy.legal_hold {
                put = put.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
            }
            match put.send().await {
                Ok(_) => break,
                Err(e) if status_of(&e) == Some(412) => return Ok(Created::Exists),
                // Another conditional write to the key is in flight: S3 asks to retry.
                Err(e) if status_of(&e) == Some(409) && attempt < 5 => {
                    wharf_core::blocking::sleep(Duration::from_millis(20 * u64::from(attempt)))
                        .await;
                }
                Err(e) => return Err(sdk_error(&format!("writing {}", self.url(&key)), e)),
            }
        }
        self.check_lock(&key, retain_until).await?;
        Ok(Created::Stored)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = self.key(key);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(sdk_error(&format!("reading {}", self.url(&key)), e)),
        };
        let body = out.body.collect().await.map_err(|e| {
            Error::new(
                ErrorKind::Transient,
                format!("reading {}: {e}", self.url(&key)),
            )
        })?;
        Ok(Some(body.into_bytes()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_keys(prefix, None).await
    }

    async fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<String>> {
        self.list_keys(prefix, Some(self.key(after))).await
    }

    async fn overwritten(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let full = self.key(prefix);
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| sdk_error(&format!("listing versions of {}", self.url(&full)), e))?;
            for v in page.versions() {
                if let Some(k) = v.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    *counts.entry(k.to_owned()).or_default() += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(counts.into_iter().filter(|(_, n)| *n > 1).collect())
    }

    fn location(&self, key: &str) -> String {
        self.url(&self.key(key))
    }
}

fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
        _ => None,
    }
}

fn code_of<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// One line saying what failed and why, with S3's error code; the request's signature and
/// credentials never appear (the SDK's errors do not carry them).
fn sdk_error<E>(what: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        SdkError::ServiceError(s) => match s.err().code() {
            Some("AccessDenied") | Some("InvalidAccessKeyId") | Some("SignatureDoesNotMatch") => {
                ErrorKind::Denied
            }
            Some("NoSuchBucket") => ErrorKind::NotFound,
            Some("SlowDown") | Some("InternalError") | Some("ServiceUnavailable") => {
                ErrorKind::Transient
            }
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    let detail = match &e {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or("no message")
        ),
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    };
    Error::new(kind, format!("{what}: {detail}"))
}

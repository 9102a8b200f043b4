//! Keyless signing (feature `keyless`): an OIDC ID token is exchanged with Fulcio for a
//! ten-minute certificate over an ephemeral ECDSA P-256 key; each signature is recorded in
//! Rekor; the result is a Sigstore bundle (or cosign's legacy annotations) that is verified
//! against the trusted root before it is returned, so a misbehaving Fulcio or Rekor is caught
//! before anything is published. Fulcio and Rekor are retried on 5xx, 408, 429 and transport
//! errors with [`RetryPolicy`]; their URLs and the trust root are configuration, for private
//! Sigstore deployments.
//!
//! Wire formats: Fulcio `POST /api/v2/signingCert` (`publicKeyRequest` with a proof of
//! possession over the token's subject; the answer's `signedCertificateEmbeddedSct.chain`),
//! Rekor `POST /api/v1/log/entries` (`hashedrekord` and `dsse` 0.0.1; the answer is
//! `{uuid: {body, integratedTime, logID, logIndex, verification: {inclusionProof,
//! signedEntryTimestamp}}}` with hex hashes, converted to the bundle's base64 form here).
//!
//! ```no_run
//! use wharf_core::{Digest, Secret};
//! use wharf_sign::Trust;
//! use wharf_sign::referrers::{sign_image_bundle_keyless, verify_image_bundle_with};
//! use wharf_sign::fulcio::Identity;
//! use wharf_sign::keyless::{PUBLIC_FULCIO, PUBLIC_REKOR, Sigstore};
//! use wharf_sign::rekor::TrustedRoot;
//! # async fn example(registry: &dyn wharf_core::Registry, image: Digest) -> Result<(), Box<dyn std::error::Error>> {
//! let root = TrustedRoot::parse(&std::fs::read("trusted_root.json")?, "trusted_root.json")?;
//! let sigstore = Sigstore::new(PUBLIC_FULCIO, PUBLIC_REKOR, root)?;
//! let session = sigstore.session(&Secret::new(std::env::var("SIGSTORE_ID_TOKEN")?)).await?;
//! sign_image_bundle_keyless(registry, "models/fraud", &image, &session).await?;
//! let identity = Identity::exact(
//!     "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main",
//!     "https://token.actions.githubusercontent.com",
//! );
//! let trust = Trust::Keyless { identity: &identity, root: sigstore.root() };
//! verify_image_bundle_with(registry, "models/fraud", &image, trust).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
#[cfg(feature = "keyless")]
use wharf_core::ErrorKind;
use wharf_core::retry::RetryPolicy;
use wharf_core::sign::{SignOptions, Signer};
use wharf_core::{Digest, Error, Result, Secret};

use crate::EcdsaP256Key;
use crate::bundle::{Artifact, BUNDLE_V03, Bundle, SignedBy, verify};
use crate::dsse::{Envelope, Statement};
use crate::fulcio::Identity;
use crate::rekor::TrustedRoot;
use crate::x509::Certificate;

/// The public-good Fulcio.
pub const PUBLIC_FULCIO: &str = "https://fulcio.sigstore.dev";
/// The public-good Rekor.
pub const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";

/// A Sigstore deployment: Fulcio, Rekor and the trust root that vouches for them.
pub struct Sigstore {
    #[cfg(feature = "keyless")]
    http: reqwest::Client,
    fulcio: String,
    rekor: String,
    root: TrustedRoot,
    retry: RetryPolicy,
}

impl fmt::Debug for Sigstore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sigstore")
            .field("fulcio", &self.fulcio)
            .field("rekor", &self.rekor)
            .finish_non_exhaustive()
    }
}

impl Sigstore {
    /// Fulcio at `fulcio_url`, Rekor at `rekor_url`, verified against `root`.
    ///
    /// Without the crate's `keyless` feature (the HTTP client) this is an error naming it.
    pub fn new(fulcio_url: &str, rekor_url: &str, root: TrustedRoot) -> Result<Self> {
        #[cfg(not(feature = "keyless"))]
        {
            let _ = (fulcio_url, rekor_url, root);
            Err(Error::invalid(
                "keyless signing talks to Fulcio and Rekor over HTTP: enable wharf-sign's `keyless` feature (verifying keyless signatures needs no feature)",
            ))
        }
        #[cfg(feature = "keyless")]
        {
            let http = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
            let base = |u: &str, what: &str| -> Result<String> {
                let u = u.trim_end_matches('/');
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(Error::invalid(format!(
                        "{what} URL {u:?} is not an http(s) URL"
                    )));
                }
                Ok(u.to_owned())
            };
            Ok(Self {
                http,
                fulcio: base(fulcio_url, "Fulcio")?,
                rekor: base(rekor_url, "Rekor")?,
                root,
                retry: RetryPolicy::default(),
            })
        }
    }

    /// Retry Fulcio and Rekor with `policy` (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The trust root signatures are verified against.
    pub fn root(&self) -> &TrustedRoot {
        &self.root
    }

    /// Exchange `token` (an OIDC ID token) for a certificate over a fresh key: a session
    /// that signs as the certificate's identity for its ten minutes.
    pub async fn session(&self, token: &Secret) -> Result<KeylessSession<'_>> {
        let claims = jwt_claims(token)?;
        // Fulcio's proof of possession: a signature over the token's subject — its email for
        // the email issuers (Google, Sigstore's Dex), its `sub` for every other issuer.
        let email_issuer = matches!(
            claims["iss"].as_str(),
            Some("https://accounts.google.com" | "https://oauth2.sigstore.dev/auth")
        );
        let subject = if email_issuer {
            claims["email"].as_str()
        } else {
            claims["sub"].as_str()
        }
        .ok_or_else(|| {
            Error::invalid(format!(
                "the OIDC token has no {} claim",
                if email_issuer { "\"email\"" } else { "\"sub\"" }
            ))
        })?;
        let key = EcdsaP256Key::generate()?;
        let proof = key
            .sign(subject.as_bytes(), &SignOptions::default())
            .await?;
        let request = json!({
            "credentials": {"oidcIdentityToken": token.expose()},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": key.public_key().to_pem()},
                "proofOfPossession": STANDARD.encode(&proof.bytes),
            },
        });
        let url = format!("{}/api/v2/signingCert", self.fulcio);
        let answer = self.post("Fulcio", &url, &request, Some(token)).await?;
        let chain = answer["signedCertificateEmbeddedSct"]["chain"]["certificates"]
            .as_array()
            .or_else(|| answer["signedCertificateDetachedSct"]["chain"]["certificates"].as_array())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Fulcio at {url} answered without a certificate chain"
                ))
            })?;
        let mut certs = Vec::new();
        for pem in chain {
            certs.extend(Certificate::from_pem_chain(
                pem.as_str().unwrap_or_default(),
                "Fulcio's certificate",
            )?);
        }
        let leaf = certs
            .first()
            .ok_or_else(|| Error::invalid("Fulcio answered an empty certificate chain"))?;
        if leaf.spki_der() != key.public_key().spki_der() {
            return Err(Error::integrity(
                "Fulcio issued a certificate for another key than the one it was asked to certify",
            ));
        }
        let subject = leaf
            .subject_names()
            .first()
            .map(|n| n.as_str().to_owned())
            .ok_or_else(|| Error::invalid("Fulcio's certificate names no subject"))?;
        let issuer = leaf
            .oidc_issuer()
            .ok_or_else(|| Error::invalid("Fulcio's certificate names no OIDC issuer"))?;
        Ok(KeylessSession {
            sigstore: self,
            key,
            chain: certs,
            identity: Identity::exact(subject, issuer),
        })
    }

    /// Without the HTTP client there is nothing to post to ([`Sigstore::new`] refuses first).
    #[cfg(not(feature = "keyless"))]
    async fn post(
        &self,
        service: &str,
        _url: &str,
        _body: &Value,
        _token: Option<&Secret>,
    ) -> Result<Value> {
        Err(Error::invalid(format!(
            "{service}: enable wharf-sign's `keyless` feature"
        )))
    }

    /// POST `body` to `url` as JSON, retrying temporary failures; the answer's JSON. Errors
    /// name the service and the URL, never the token.
    #[cfg(feature = "keyless")]
    async fn post(
        &self,
        service: &str,
        url: &str,
        body: &Value,
        token: Option<&Secret>,
    ) -> Result<Value> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(format!(
                "the keyless signer's {service} client needs a Tokio runtime: call it inside #[tokio::main] or Runtime::block_on (key-file signing works on any executor)"
            )));
        }
        let redact = |text: String| match token {
            Some(t) if !t.expose().is_empty() => text.replace(t.expose(), "[redacted]"),
            _ => text,
        };
        let mut attempt = 1;
        loop {
            let last = attempt >= self.retry.max_attempts.max(1);
            let sent = self
                .http
                .post(url)
                .header("Accept", "application/json")
                .json(body)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    let bytes = resp.bytes().await.map_err(|e| {
                        Error::new(
                            ErrorKind::Transient,
                            format!("{service} at {url}: reading the answer: {e}"),
                        )
                    })?;
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        Error::invalid(format!("{service} at {url} answered non-JSON: {e}"))
                    });
                }
                // Rekor already holds this entry — a retried POST whose first attempt was
                // logged but whose answer was lost: the entry is where Location says.
                Ok(resp)
                    if resp.status() == reqwest::StatusCode::CONFLICT && service == "Rekor" =>
                {
                    let location = resp
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            Error::conflict(format!(
                                "{service} at {url} answered 409 Conflict without a Location for the existing entry"
                            ))
                        })?;
                    return self.get_existing(service, url, &location).await;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            wharf_core::retry::parse_retry_after(
                                v.trim(),
                                time::OffsetDateTime::now_utc(),
                            )
                        });
                    let text = resp.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_owned))
                        .unwrap_or(text);
                    let message = redact(message.trim().replace('\n', " "));
                    let temporary = status.as_u16() == 408
                        || status.as_u16() == 429
                        || status.is_server_error();
                    if !temporary || last {
                        let kind = match status.as_u16() {
                            401 => ErrorKind::Unauthenticated,
                            403 => ErrorKind::Denied,
                            400 | 422 => ErrorKind::Invalid,
                            _ if temporary => ErrorKind::Transient,
                            _ => ErrorKind::Internal,
                        };
                        return Err(Error::new(
                            kind,
                            format!(
                                "{service} at {url} answered {status}{}: {message}",
                                if attempt > 1 {
                                    format!(" after {attempt} attempts")
                                } else {
                                    String::new()
                                }
                            ),
                        ));
                    }
                    tracing::warn!(%url, %status, attempt, "{service} failed; retrying");
                    wharf_core::blocking::sleep(self.retry.delay(attempt, retry_after)).await;
                }
                Err(e) => {
                    if last || e.is_builder() {
                        return Err(Error::new(
                            ErrorKind::Transient,
                            redact(format!(
                                "{service} at {url} cannot be reached after {attempt} attempts: {e}"
                            )),
                        ));
                    }
                    tracing::warn!(%url, attempt, "{service} unreachable; retrying");
                    wharf_core::blocking::sleep(self.retry.delay(attempt, None)).await;
                }
            }
            attempt += 1;
        }
    }

    /// GET the entry a 409 pointed at (`location`, absolute or relative to `url`'s host).
    #[cfg(feature = "keyless")]
    async fn get_existing(&self, service: &str, url: &str, location: &str) -> Result<Value> {
        let target = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            let origin_end = url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
                .unwrap_or(url.len());
            format!("{}{location}", &url[..origin_end])
        };
        let resp = self
            .http
            .get(&target)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Transient,
                    format!("{service} at {target}: fetching the existing entry: {e}"),
                )
            })?;
        if !resp.status().is_success() {
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "{service} at {target} answered {} for the entry it said it holds",
                    resp.status()
                ),
            ));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::new(ErrorKind::Transient, format!("{service} at {target}: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("{service} at {target} answered non-JSON: {e}")))
    }

    /// Record `entry` in Rekor; the log's answer as a bundle `tlogEntries` item.
    async fn log(&self, entry: &Value) -> Result<Value> {
        let url = format!("{}/api/v1/log/entries", self.rekor);
        let answer = self.post("Rekor", &url, entry, None).await?;
        let bad = |what: &str| Error::invalid(format!("Rekor at {url} answered {what}"));
        let (_, e) = answer
            .as_object()
            .and_then(|o| o.iter().next())
            .ok_or_else(|| bad("no entry"))?;
        let hex_b64 = |v: &Value| -> Result<String> {
            let hex = v.as_str().unwrap_or_default();
            let bytes = crate::b64::unhex(hex).ok_or_else(|| bad("a hash that is not hex"))?;
            Ok(STANDARD.encode(bytes))
        };
        let proof = &e["verification"]["inclusionProof"];
        let number = |v: &Value, what: &str| -> Result<String> {
            v.as_i64()
                .map(|n| n.to_string())
                .ok_or_else(|| bad(&format!("no {what}")))
        };
        let hashes = proof["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(hex_b64)
            .collect::<Result<Vec<_>>>()?;
        Ok(json!({
            "logIndex": number(&e["logIndex"], "logIndex")?,
            "logId": {"keyId": hex_b64(&e["logID"])?},
            "kindVersion": {"kind": entry["kind"], "version": entry["apiVersion"]},
            "integratedTime": number(&e["integratedTime"], "integratedTime")?,
            "inclusionPromise": {"signedEntryTimestamp": e["verification"]["signedEntryTimestamp"]},
            "inclusionProof": {
                "logIndex": number(&proof["logIndex"], "inclusionProof.logIndex")?,
                "rootHash": hex_b64(&proof["rootHash"])?,
                "treeSize": number(&proof["treeSize"], "inclusionProof.treeSize")?,
                "hashes": hashes,
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": e["body"],
        }))
    }
}

/// The claims of a JWT, unverified (Fulcio verifies the token; we only read its subject).
fn jwt_claims(token: &Secret) -> Result<Value> {
    let parts: Vec<&str> = token.expose().trim().split('.').collect();
    let [_, claims, _] = parts.as_slice() else {
        return Err(Error::invalid(
            "the OIDC token is not a JWT (three base64url parts separated by dots)",
        ));
    };
    URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::invalid("the OIDC token's claims are not base64url JSON"))
}

/// An ephemeral key with its Fulcio certificate: signs as one identity.
pub struct KeylessSession<'a> {
    sigstore: &'a Sigstore,
    key: EcdsaP256Key,
    chain: Vec<Certificate>,
    identity: Identity,
}

impl fmt::Debug for KeylessSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeylessSession")
            .field("identity", &self.identity.describe())
            .finish_non_exhaustive()
    }
}

impl KeylessSession<'_> {
    /// The identity the certificate was issued to (subject and OIDC issuer).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.chain[0]
    }

    /// The trust root the session's signatures verify against.
    pub fn root(&self) -> &TrustedRoot {
        &self.sigstore.root
    }

    fn cert_b64_pem(&self) -> String {
        STANDARD.encode(self.certificate().to_pem())
    }

    fn bundle(&self, tlog: Value, content: (&str, Value)) -> Value {
        let mut b = json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": {"rawBytes": STANDARD.encode(self.certificate().der())},
                "tlogEntries": [tlog],
            },
        });
        b[content.0] = content.1;
        b
    }

    /// Check a bundle we made before anyone sees it.
    async fn checked(&self, bundle: Value, artifact: Artifact<'_>) -> Result<Vec<u8>> {
        let bytes =
            serde_json::to_vec(&bundle).map_err(|e| Error::internal(format!("bundle: {e}")))?;
        let parsed = Bundle::parse(&bytes, "the bundle just signed")?;
        verify(
            &parsed,
            artifact,
            Some(SignedBy::Identity(&self.identity)),
            &self.sigstore.root,
        )
        .await
        .map_err(|e| {
            Error::integrity(format!(
                "the bundle Fulcio and Rekor helped make does not verify against the trust root: {e}"
            ))
        })?;
        Ok(bytes)
    }

    /// Sign `artifact`'s bytes: a v0.3 message-signature bundle with a `hashedrekord` entry.
    pub async fn sign_artifact(&self, artifact: &[u8]) -> Result<Vec<u8>> {
        let sig = self.key.sign(artifact, &SignOptions::default()).await?;
        let digest = Digest::sha256_of(artifact);
        let tlog = self
            .sigstore
            .log(&hashedrekord(&digest, &sig.bytes, &self.cert_b64_pem()))
            .await?;
        let content = json!({
            "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(hex_bytes(digest.hex()))},
            "signature": STANDARD.encode(&sig.bytes),
        });
        self.checked(
            self.bundle(tlog, ("messageSignature", content)),
            Artifact::Bytes(artifact),
        )
        .await
    }

    /// Sign an in-toto `statement`: a v0.3 DSSE bundle with a `dsse` entry.
    pub async fn sign_statement(&self, statement: &Statement) -> Result<Vec<u8>> {
        let envelope = crate::dsse::sign_statement(statement, &self.key).await?;
        let envelope_json = serde_json::to_string(&envelope)
            .map_err(|e| Error::internal(format!("envelope: {e}")))?;
        let entry = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {"proposedContent": {
                "envelope": envelope_json,
                "verifiers": [self.cert_b64_pem()],
            }},
        });
        let tlog = self.sigstore.log(&entry).await?;
        let subject = statement
            .subject
            .first()
            .and_then(|s| s.digest.get("sha256"))
            .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            .ok_or_else(|| Error::invalid("the statement has no sha256 subject"))?;
        self.checked(
            self.bundle(tlog, ("dsseEnvelope", envelope_to_json(&envelope))),
            Artifact::Digest(&subject),
        )
        .await
    }

    /// Sign a cosign simple-signing `payload` the legacy way: the `.sig` layer annotations
    /// (signature, certificate, chain, and the Rekor bundle of a `hashedrekord` entry).
    pub async fn sign_legacy(&self, payload: &[u8]) -> Result<BTreeMap<String, String>> {
        use crate::simple_signing::{
            ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, ANNOTATION_SIGNATURE,
        };
        let sig = self.key.sign(payload, &SignOptions::default()).await?;
        let digest = Digest::sha256_of(payload);
        let tlog = self
            .sigstore
            .log(&hashedrekord(&digest, &sig.bytes, &self.cert_b64_pem()))
            .await?;
        let log_id = STANDARD
            .decode(tlog["logId"]["keyId"].as_str().unwrap_or_default())
            .map_err(|e| Error::internal(format!("log id: {e}")))?;
        let rekor_bundle = json!({
            "SignedEntryTimestamp": tlog["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": tlog["canonicalizedBody"],
                "integratedTime": tlog["integratedTime"].as_str().and_then(|s| s.parse::<i64>().ok()),
                "logIndex": tlog["logIndex"].as_str().and_then(|s| s.parse::<u64>().ok()),
                "logID": log_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            },
        });
        let chain: String = self.chain[1..].iter().map(Certificate::to_pem).collect();
        let mut annotations = BTreeMap::from([
            (ANNOTATION_SIGNATURE.to_owned(), STANDARD.encode(&sig.bytes)),
            (
                ANNOTATION_CERTIFICATE.to_owned(),
                self.certificate().to_pem(),
            ),
            (ANNOTATION_BUNDLE.to_owned(), rekor_bundle.to_string()),
        ]);
        if !chain.is_empty() {
            annotations.insert(ANNOTATION_CHAIN.to_owned(), chain);
        }
        let parsed = crate::simple_signing::SimpleSigning::parse(payload)?;
        crate::simple_signing::verify_payload_keyless(
            payload,
            &annotations,
            &parsed.manifest_digest,
            &self.identity,
            &self.sigstore.root,
            crate::simple_signing::ReferenceMatch::Any,
        )
        .await
        .map_err(|e| {
            Error::integrity(format!(
                "the signature Fulcio and Rekor helped make does not verify against the trust root: {e}"
            ))
        })?;
        Ok(annotations)
    }
}

fn hashedrekord(digest: &Digest, sig: &[u8], cert_b64_pem: &str) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": STANDARD.encode(sig), "publicKey": {"content": cert_b64_pem}},
        },
    })
}

fn envelope_to_json(envelope: &Envelope) -> Value {
    json!({
        "payload": envelope.payload,
        "payloadType": envelope.payload_type,
        "signatures": envelope.signatures.iter().map(|s| json!({"sig": s.sig, "keyid": s.keyid})).collect::<Vec<_>>(),
    })
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    crate::b64::unhex(hex).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_claims_are_read_and_junk_is_named() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"ci@example.com","iss":"https://oidc"}"#);
        let token = Secret::new(format!("e30.{claims}.sig"));
        assert_eq!(jwt_claims(&token).unwrap()["sub"], "ci@example.com");
        let err = jwt_claims(&Secret::new("not-a-jwt")).unwrap_err();
        assert!(err.to_string().contains("not a JWT"), "{err}");
        let err = jwt_claims(&Secret::new("a.%%%.c")).unwrap_err();
        assert!(err.to_string().contains("not base64url JSON"), "{err}");
    }

    #[test]
    fn urls_must_be_http() {
        let root = TrustedRoot::parse(
            br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
            "empty",
        )
        .unwrap();
        let err = Sigstore::new("fulcio.local", PUBLIC_REKOR, root).unwrap_err();
        // Without the feature, the feature is what is missing, named before any URL.
        let expected = if cfg!(feature = "keyless") {
            "Fulcio URL"
        } else {
            "enable wharf-sign's `keyless` feature"
        };
        assert!(err.to_string().contains(expected), "{err}");
    }
}

//! Sign + attach + verify one image against a registry, per operation, with a key file,
//! with a KMS key (moto) and keylessly (the local Sigstore): `sign-verify URL REPO N
//! [KMS_ENDPOINT] [SIGSTORE_URL]`; and keyless signing of a file written as a bundle, for
//! the side-by-side with sigstore-python: `keyless-artifact SIGSTORE_URL FILE N`.

use std::time::{Duration, Instant};

use anyhow::Context;
use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, blob_stream_from};
use wharf_core::{Digest, Registry, Signer, Verifier};
use wharf_registry::distribution::DistributionClient;
use wharf_sign::attest::{MODEL_EVALUATION_V1, attest_image, verify_attestations};
use wharf_sign::cosign::{Requirements, sign_image, verify_image};

/// Push a small image whose layer holds `content`; its manifest digest.
async fn push_image(reg: &dyn Registry, repo: &str, content: &[u8]) -> anyhow::Result<Digest> {
    let mut d = Vec::new();
    for blob in [&b"{}"[..], content] {
        let digest = Digest::sha256_of(blob);
        reg.push_blob(
            repo,
            &digest,
            blob_stream_from(blob.to_vec()),
            &PushBlobOptions::default(),
        )
        .await?;
        d.push((digest, blob.len()));
    }
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d[0].0, "size": d[0].1},
        "layers": [{"mediaType": "application/octet-stream", "digest": d[1].0, "size": d[1].1}],
    }))?;
    reg.push_manifest(
        repo,
        &ManifestBytes::new("application/vnd.oci.image.manifest.v1+json", m.clone()),
        &PushManifestOptions::default(),
    )
    .await?;
    Ok(Digest::sha256_of(&m))
}

#[derive(Default)]
struct Times(Vec<(&'static str, Vec<Duration>)>);

impl Times {
    fn add(&mut self, op: &'static str, d: Duration) {
        match self.0.iter_mut().find(|(o, _)| *o == op) {
            Some((_, v)) => v.push(d),
            None => self.0.push((op, vec![d])),
        }
    }
}

async fn measure(
    reg: &dyn Registry,
    repo: &str,
    n: usize,
    signer: &dyn Signer,
    verifier: &dyn Verifier,
    tag: &str,
) -> anyhow::Result<Times> {
    let mut t = Times::default();
    for i in 0..n {
        let image = push_image(
            reg,
            repo,
            format!("{tag}-{i}-{}", std::process::id()).as_bytes(),
        )
        .await?;
        let start = Instant::now();
        sign_image(reg, repo, &image, repo, signer, verifier).await?;
        t.add("sign + attach (.sig)", start.elapsed());
        let start = Instant::now();
        verify_image(reg, repo, &image, verifier, &Requirements::default()).await?;
        t.add("verify signature", start.elapsed());
        let predicate = serde_json::json!({"metrics": {"accuracy": 0.9, "run": i}});
        let start = Instant::now();
        attest_image(
            reg,
            repo,
            &image,
            repo,
            MODEL_EVALUATION_V1,
            predicate,
            signer,
            verifier,
        )
        .await?;
        t.add("attest + attach (.att)", start.elapsed());
        let start = Instant::now();
        verify_attestations(reg, repo, &image, verifier, Some(MODEL_EVALUATION_V1)).await?;
        t.add("verify attestation", start.elapsed());
    }
    Ok(t)
}

fn print(label: &str, t: &Times) {
    for (op, v) in &t.0 {
        let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
        println!("| {op} | {label} | {:.1} ms | {:.1} ms |", p(0.5), p(0.9));
    }
}

/// An OIDC ID token the local Fulcio accepts (it reads the claims; the real one also checks
/// the issuer's signature).
pub(crate) fn test_token() -> wharf_core::Secret {
    use base64::Engine as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": BENCH_ISSUER, "sub": BENCH_SUBJECT, "aud": "sigstore",
        "exp": now + 3600, "iat": now, "nbf": now,
    });
    wharf_core::Secret::new(format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"bench")
    ))
}

/// The identity the benchmark's token claims.
pub(crate) const BENCH_SUBJECT: &str =
    "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main";
/// Its issuer.
pub(crate) const BENCH_ISSUER: &str = "https://oidc.wharf.test";

/// The local Sigstore, with its trust root fetched from it.
async fn local_sigstore(base: &str) -> anyhow::Result<wharf_sign::keyless::Sigstore> {
    let root = reqwest::get(format!("{base}/trusted_root.json"))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let root = wharf_sign::rekor::TrustedRoot::parse(&root, "the local trusted_root.json")?;
    Ok(wharf_sign::keyless::Sigstore::new(base, base, root)?)
}

/// Keyless rounds: certificate, sign + attach and verify in both formats, attest + verify.
async fn measure_keyless(
    reg: &dyn Registry,
    repo: &str,
    n: usize,
    sigstore: &wharf_sign::keyless::Sigstore,
) -> anyhow::Result<Times> {
    use wharf_sign::Trust;
    use wharf_sign::cosign::{sign_image_keyless, verify_image_keyless};
    use wharf_sign::referrers::{
        attest_image_bundle_keyless, sign_image_bundle_keyless, verify_bundle_attestations,
        verify_image_bundle_with,
    };
    let identity = wharf_sign::fulcio::Identity::exact(BENCH_SUBJECT, BENCH_ISSUER);
    let trust = Trust::Keyless {
        identity: &identity,
        root: sigstore.root(),
    };
    let mut t = Times::default();
    for i in 0..n {
        let image = push_image(
            reg,
            repo,
            format!("keyless-{i}-{}", std::process::id()).as_bytes(),
        )
        .await?;
        let start = Instant::now();
        let session = sigstore.session(&test_token()).await?;
        t.add("Fulcio certificate (ephemeral key)", start.elapsed());
        let start = Instant::now();
        sign_image_keyless(reg, repo, &image, repo, &session).await?;
        t.add("sign + Rekor + attach (.sig)", start.elapsed());
        let start = Instant::now();
        verify_image_keyless(
            reg,
            repo,
            &image,
            &identity,
            sigstore.root(),
            wharf_sign::cosign::ReferenceMatch::Any,
        )
        .await?;
        t.add(
            "verify signature (.sig: chain, SCT, SET, identity)",
            start.elapsed(),
        );
        let start = Instant::now();
        sign_image_bundle_keyless(reg, repo, &image, &session).await?;
        t.add("sign + Rekor + attach (bundle referrer)", start.elapsed());
        let start = Instant::now();
        verify_image_bundle_with(reg, repo, &image, trust).await?;
        t.add(
            "verify signature (bundle: + inclusion proof, checkpoint)",
            start.elapsed(),
        );
        let predicate = serde_json::json!({"metrics": {"accuracy": 0.9, "run": i}});
        let start = Instant::now();
        attest_image_bundle_keyless(reg, repo, &image, MODEL_EVALUATION_V1, predicate, &session)
            .await?;
        t.add("attest + Rekor + attach (bundle referrer)", start.elapsed());
        let start = Instant::now();
        verify_bundle_attestations(reg, repo, &image, trust, Some(MODEL_EVALUATION_V1)).await?;
        t.add("verify attestation (bundle)", start.elapsed());
    }
    Ok(t)
}

/// Keyless-sign `file` N times into `<file>.sigstore.json` and verify it; prints
/// `sign_ms verify_ms` medians (for the side-by-side with sigstore-python's CLI).
pub(crate) fn keyless_artifact(base: &str, file: &str, n: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sigstore = local_sigstore(base).await?;
        let identity = wharf_sign::fulcio::Identity::exact(BENCH_SUBJECT, BENCH_ISSUER);
        let (mut sign, mut verify) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let start = Instant::now();
            let bytes = tokio::fs::read(file).await?;
            let session = sigstore.session(&test_token()).await?;
            let bundle = session.sign_artifact(&bytes).await?;
            tokio::fs::write(format!("{file}.sigstore.json"), &bundle).await?;
            sign.push(start.elapsed());
            let start = Instant::now();
            let bytes = tokio::fs::read(file).await?;
            let b = tokio::fs::read(format!("{file}.sigstore.json")).await?;
            let b = wharf_sign::bundle::Bundle::parse(&b, "bundle")?;
            wharf_sign::bundle::verify_with_identity(&b, &bytes, &identity, sigstore.root())
                .await?;
            verify.push(start.elapsed());
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1000.0
        };
        println!("{:.1} {:.1}", median(&mut sign), median(&mut verify));
        anyhow::Ok(())
    })
}

/// Run the benchmark and print its table rows.
pub(crate) fn run(
    url: &str,
    repo: &str,
    n: usize,
    kms_endpoint: Option<&str>,
    sigstore: Option<&str>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let reg = DistributionClient::builder(url).build()?;
        let key = wharf_sign::EcdsaP256Key::generate()?;
        let local = measure(&reg, repo, n, &key, key.public_key(), "key").await?;
        println!("| operation | signer | median | p90 |");
        println!("|---|---|---|---|");
        print("key file (ECDSA P-256)", &local);
        if let Some(endpoint) = kms_endpoint {
            use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
            let client = aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
                    .endpoint_url(endpoint)
                    .build(),
            );
            let id = client
                .create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
                .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                .send()
                .await
                .context("creating the KMS key")?
                .key_metadata()
                .map(|m| m.key_id().to_owned())
                .context("no key id")?;
            let kms = wharf_sign::kms::KmsKey::connect(client, &format!("awskms:///{id}")).await?;
            let remote = measure(&reg, repo, n, &kms, kms.public_key(), "kms").await?;
            print("AWS KMS (moto, loopback)", &remote);
        }
        if let Some(base) = sigstore {
            let sigstore = local_sigstore(base).await?;
            let keyless = measure_keyless(&reg, repo, n, &sigstore).await?;
            print("keyless (local Fulcio + Rekor, loopback)", &keyless);
        }
        anyhow::Ok(())
    })
}

/// Push `n` fresh small images to `repo` at `url`; prints their digests, one per line.
pub(crate) fn push_small(url: &str, repo: &str, n: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let reg = DistributionClient::builder(url).build()?;
        for i in 0..n {
            let content = format!("step-{i}-{}-{:?}", std::process::id(), Instant::now());
            println!("{}", push_image(&reg, repo, content.as_bytes()).await?);
        }
        anyhow::Ok(())
    })
}

/// One step as a CI job runs it, one process each: `sign`, `verify`, `attest` or
/// `verify-attestation` of `image` in `repo` at `url`, with the cosign key file `key`
/// (password from `COSIGN_PASSWORD`; verification with `<key>`'s `.pub`), or keylessly
/// (`sign`, `verify`) against the local Sigstore when `key` is `keyless:<URL>`.
pub(crate) fn step(op: &str, url: &str, repo: &str, image: &str, key: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let image: Digest = image.parse()?;
    rt.block_on(async {
        let reg = DistributionClient::builder(url).build()?;
        if let Some(base) = key.strip_prefix("keyless:") {
            let sigstore = local_sigstore(base).await?;
            let identity = wharf_sign::fulcio::Identity::exact(BENCH_SUBJECT, BENCH_ISSUER);
            match op {
                "sign" => {
                    let session = sigstore.session(&test_token()).await?;
                    wharf_sign::cosign::sign_image_keyless(&reg, repo, &image, repo, &session)
                        .await?;
                }
                "verify" => {
                    wharf_sign::cosign::verify_image_keyless(
                        &reg,
                        repo,
                        &image,
                        &identity,
                        sigstore.root(),
                        wharf_sign::cosign::ReferenceMatch::Any,
                    )
                    .await?;
                }
                other => anyhow::bail!("keyless step {other:?}: use sign or verify"),
            }
            return anyhow::Ok(());
        }
        let path = std::path::Path::new(key);
        let public = wharf_sign::PublicKey::from_file(&wharf_sign::public_path(path))?;
        let load = || {
            let password = std::env::var("COSIGN_PASSWORD").unwrap_or_default();
            wharf_sign::EcdsaP256Key::load(path, Some(&wharf_core::Secret::new(password)))
        };
        match op {
            "sign" => {
                sign_image(&reg, repo, &image, repo, &load()?, &public).await?;
            }
            "verify" => {
                verify_image(&reg, repo, &image, &public, &Requirements::default()).await?;
            }
            "attest" => {
                let predicate = serde_json::json!({"metrics": {"accuracy": 0.9}});
                attest_image(
                    &reg,
                    repo,
                    &image,
                    repo,
                    MODEL_EVALUATION_V1,
                    predicate,
                    &load()?,
                    &public,
                )
                .await?;
            }
            "verify-attestation" => {
                verify_attestations(&reg, repo, &image, &public, Some(MODEL_EVALUATION_V1)).await?;
            }
            other => {
                anyhow::bail!("step {other:?}: use sign, verify, attest or verify-attestation")
            }
        }
        anyhow::Ok(())
    })
}

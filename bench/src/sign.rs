//! Sign + attach + verify one image against a registry, per operation, with a key file and
//! with a KMS key (moto): `sign-verify URL REPO N [KMS_ENDPOINT]`.

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

/// Run the benchmark and print its table rows.
pub(crate) fn run(
    url: &str,
    repo: &str,
    n: usize,
    kms_endpoint: Option<&str>,
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
        anyhow::Ok(())
    })
}

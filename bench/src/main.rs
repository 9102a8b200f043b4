//! `wharf-bench OP ARGS…`: one operation of wharf, run once, for `cargo xtask bench` to time
//! with `/usr/bin/time` beside the peer tools. Prints one line of result on stdout.
//!
//! - `sha256 FILE` — the streaming hasher over a file.
//! - `package DIR STAGING` — package a model directory as a ModelPack artifact.
//! - `push-layout DIR STAGING ROOT` — package and push into an OCI layout.
//! - `push-registry LAYOUT URL REPO` — push the image tagged `v1` in the OCI layout
//!   directory LAYOUT to the registry at URL, as REPO:v1 (blobs streamed from the files).
//! - `repush LAYOUT URL REPO` — push as above, then push again and print how long the
//!   second, unchanged push took.
//! - `audit-append DIR N` — append N run records to the file audit log in DIR.
//! - `audit-append-s3 ENDPOINT BUCKET N` — append N run records to an S3 Object Lock bucket
//!   (created with Object Lock first) at ENDPOINT (moto).
//! - `audit-verify DIR` — verify the whole file audit log in DIR.
//! - `sign-verify URL REPO N [KMS_ENDPOINT] [SIGSTORE_URL]` — N times: push a small image,
//!   sign it, verify it, attest it, verify the attestation; median and p90 per operation,
//!   with a key file, (given moto's address) a KMS key and (given the local Sigstore's URL)
//!   keylessly.
//! - `keyless-token` — prints an OIDC token the local Fulcio certifies, its subject and issuer.
//! - `keyless-artifact SIGSTORE_URL FILE N` — N times: sign FILE keylessly into
//!   `FILE.sigstore.json` and verify it; prints the median sign and verify milliseconds.
//! - `push-small URL REPO N` — push N fresh small images; prints their digests.
//! - `step OP URL REPO IMAGE KEY` — one CI step as its own process: `sign`, `verify`,
//!   `attest` or `verify-attestation` with the cosign key file KEY (password from
//!   `COSIGN_PASSWORD`), or `sign`/`verify` keylessly when KEY is `keyless:SIGSTORE_URL` —
//!   what `cosign sign|verify|attest|verify-attestation` does, for the side-by-side.
//! - `deploy KUBECONFIG NAMESPACE CONTENT` — plan, apply and roll out to healthy the
//!   Deployment of an image named by CONTENT's digest; prints each step's milliseconds.
//! - `render NAMESPACE CONTENT FILE` — the same objects as YAML in FILE, for kubectl.
//! - `osv-generate DIR ADVISORIES PACKAGES` — a reproducible OSV database (`DIR/all.zip`)
//!   and inventory (`DIR/inventory.json`).
//! - `osv-match DB INVENTORY` — load DB, match the inventory; prints both times.
//! - `osv-scan LAYOUT DB` — scan the image in the OCI layout LAYOUT against DB.

use std::path::PathBuf;

mod audit;
mod deploy;
mod scan;
mod sign;

use anyhow::{Context, bail};
use wharf_registry::layout::LayoutRegistry;
use wharf_registry::package::{ModelSpec, package_modelpack};

/// Push `layout`'s image tagged v1 to `url` as `repo:v1`.
async fn push_registry(
    layout: &std::path::Path,
    url: &str,
    repo: &str,
) -> anyhow::Result<wharf_core::Digest> {
    use wharf_core::Registry;
    use wharf_registry::distribution::DistributionClient;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "v1")
        })
        .context("no v1 tag in the layout")?;
    let digest: wharf_core::Digest = entry["digest"].as_str().context("digest")?.parse()?;
    let blob = |d: &wharf_core::Digest| {
        layout
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    };
    let bytes = std::fs::read(blob(&digest))?;
    let manifest = wharf_core::ImageManifest::from_slice(&bytes, "bench manifest")?;
    let files: Vec<_> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .map(|d| (d.digest.clone(), blob(&d.digest)))
        .collect();
    let client = DistributionClient::builder(url).build()?;
    client.push_blobs(repo, files).await?;
    let m = wharf_core::registry::ManifestBytes::new(wharf_core::media_types::OCI_MANIFEST, bytes);
    client
        .push_manifest(
            repo,
            &m,
            &wharf_core::registry::PushManifestOptions::tagged("v1"),
        )
        .await?;
    Ok(digest)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<PathBuf> {
        args.get(i)
            .map(PathBuf::from)
            .context("missing argument; see the doc comment of bench/src/main.rs")
    };
    match args.first().map(String::as_str) {
        Some("sha256") => {
            let path = arg(1)?;
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let (digest, n) = wharf_core::Digest::from_reader(wharf_core::Algorithm::Sha256, file)?;
            println!("{digest} {n}");
        }
        Some("package") => {
            let packaged = package_modelpack(&ModelSpec::new(arg(1)?, "bench", "1.0.0"), &arg(2)?)?;
            println!("{}", packaged.digest());
        }
        Some("push-layout") => {
            let packaged = package_modelpack(&ModelSpec::new(arg(1)?, "bench", "1.0.0"), &arg(2)?)?;
            let root = arg(3)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let reg = LayoutRegistry::open(&root)?;
                packaged.push(&reg, "bench/model", Some("v1")).await
            })?;
            println!("{}", packaged.digest());
        }
        Some("push-registry") => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let digest = rt.block_on(push_registry(&arg(1)?, &args[2], &args[3]))?;
            println!("{digest}");
        }
        Some("repush") => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                push_registry(&arg(1)?, &args[2], &args[3]).await?;
                let start = std::time::Instant::now();
                push_registry(&arg(1)?, &args[2], &args[3]).await?;
                println!(
                    "second push: {:.1} ms",
                    start.elapsed().as_secs_f64() * 1000.0
                );
                anyhow::Ok(())
            })?;
        }
        Some("audit-append") => {
            let n: usize = args.get(2).context("N")?.parse()?;
            let log = wharf_audit::FileAuditLog::open(arg(1)?)?;
            audit::append(&log, n)?;
        }
        Some("audit-append-s3") => {
            let n: usize = args.get(3).context("N")?.parse()?;
            audit::append_s3(&args[1], &args[2], n)?;
        }
        Some("audit-verify") => {
            let log = wharf_audit::FileAuditLog::open(arg(1)?)?;
            audit::verify(&log)?;
        }
        Some("sign-verify") => {
            let n: usize = args.get(3).context("N")?.parse()?;
            let opt = |i: usize| args.get(i).map(String::as_str).filter(|s| !s.is_empty());
            sign::run(&args[1], &args[2], n, opt(4), opt(5))?;
        }
        Some("keyless-token") => {
            println!(
                "{} {} {}",
                sign::test_token().expose(),
                sign::BENCH_SUBJECT,
                sign::BENCH_ISSUER
            );
        }
        Some("keyless-artifact") => {
            let n: usize = args.get(3).context("N")?.parse()?;
            sign::keyless_artifact(&args[1], &args[2], n)?;
        }
        Some("push-small") => {
            let n: usize = args.get(3).context("N")?.parse()?;
            sign::push_small(&args[1], &args[2], n)?;
        }
        Some("step") => {
            let [_, op, url, repo, image, key] = &args[..] else {
                bail!("step OP URL REPO IMAGE KEY");
            };
            sign::step(op, url, repo, image, key)?;
        }
        Some("deploy") => {
            let [_, kubeconfig, namespace, content] = &args[..] else {
                bail!("deploy KUBECONFIG NAMESPACE CONTENT");
            };
            deploy::deploy(kubeconfig.as_ref(), namespace, content)?;
        }
        Some("render") => {
            let [_, namespace, content, file] = &args[..] else {
                bail!("render NAMESPACE CONTENT FILE");
            };
            deploy::render_to(namespace, content, file.as_ref())?;
        }
        Some("osv-generate") => {
            let n: usize = args.get(2).context("ADVISORIES")?.parse()?;
            let p: usize = args.get(3).context("PACKAGES")?.parse()?;
            scan::generate(&arg(1)?, n, p)?;
        }
        Some("osv-match") => scan::match_inventory(&arg(1)?, &arg(2)?)?,
        Some("osv-scan") => scan::scan_layout(&arg(1)?, &arg(2)?)?,
        other => bail!(
            "unknown operation {other:?}: use sha256, package, push-layout, push-registry, repush, audit-append, audit-append-s3, audit-verify, sign-verify, keyless-token, keyless-artifact, push-small, step, deploy, render, osv-generate, osv-match or osv-scan"
        ),
    }
    Ok(())
}

//! `cargo xtask verify IMAGE`: what an auditor or an admission check asks of a deployed
//! image — `cosign verify` and `cosign verify-attestation` in one command. Signatures are
//! looked for in both of cosign's formats (the `sha256-<hex>.sig` image and Sigstore bundle
//! referrers), checked by key or by certificate identity and issuer against a trust root,
//! and the required attestations' predicates are returned. Exit 0: verified; 1: not (each
//! candidate's reason named); 2: bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use wharf_core::{Digest, Registry};
use wharf_pipeline::Config;
use wharf_sign::Trust;
use wharf_sign::fulcio::Identity;
use wharf_sign::rekor::TrustedRoot;

use crate::pipeline::exit;

/// Verify an image's signatures (and attestations) by key or by keyless identity.
#[derive(clap::Args)]
pub(crate) struct VerifyCmd {
    /// The image by digest: `sha256:<hex>` in the configured repository, or
    /// `REPOSITORY@sha256:<hex>`.
    image: String,
    /// The wharf.toml naming the registry, repository and `[sign]` settings (default: the
    /// example in examples/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A public key (PEM, as `cosign public-key` writes it) the signature must verify with;
    /// default: the public half of `[sign] key` (`cosign.pub` beside `cosign.key`).
    #[arg(long, conflicts_with_all = ["certificate_identity", "certificate_identity_regexp"])]
    key: Option<PathBuf>,
    /// Keyless: the certificate identity the signature must carry (a workflow URI, an email).
    #[arg(long)]
    certificate_identity: Option<String>,
    /// Keyless: a regular expression the whole certificate identity must match.
    #[arg(long, conflicts_with = "certificate_identity")]
    certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer that must have vouched for the identity.
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the whole OIDC issuer must match (`.*` for
    /// certificates of your own PKI, which name none).
    #[arg(long, conflicts_with = "certificate_oidc_issuer")]
    certificate_oidc_issuer_regexp: Option<String>,
    /// Keyless: the Sigstore trusted_root.json (default: `[sign] trusted_root`).
    #[arg(long, conflicts_with = "ca_roots")]
    trusted_root: Option<PathBuf>,
    /// Certificates of your own PKI: a PEM file of the root certificates (and any
    /// intermediates) to trust instead of a Sigstore trust root (cosign's `--ca-roots`,
    /// `--certificate-chain`); it names no logs, so pass --insecure-ignore-tlog and
    /// --insecure-ignore-sct too.
    #[arg(long, value_name = "PEM")]
    ca_roots: Option<PathBuf>,
    /// Keyless: accept certificate signatures that were never logged in Rekor (cosign's
    /// `--insecure-ignore-tlog`); the certificate must then be valid now. The result says so.
    #[arg(long)]
    insecure_ignore_tlog: bool,
    /// Keyless: accept certificates without checking their SCTs (cosign's
    /// `--insecure-ignore-sct`), for a private Sigstore without a CT log; the result says so.
    #[arg(long)]
    insecure_ignore_sct: bool,
    /// Also require a verified attestation of this predicate type (repeatable), e.g.
    /// `https://slsa.dev/provenance/v1`.
    #[arg(long = "attestation")]
    attestations: Vec<String>,
    /// Print the result (signers, attestations with their predicates) as JSON.
    #[arg(long)]
    json: bool,
    /// Also read every blob the image names (config and layers) and check its digest and
    /// size, not only the manifest: a damaged layer fails verification (reads the whole
    /// image once).
    #[arg(long)]
    deep: bool,
}

impl VerifyCmd {
    /// Runs the command: 0 verified, 1 not verified, 2 bad input.
    pub(crate) fn run(&self) -> ExitCode {
        match self.execute() {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("error: {}", crate::pipeline::one_line(&err));
                ExitCode::from(exit::INVALID)
            }
        }
    }

    fn execute(&self) -> anyhow::Result<u8> {
        let config_path = self
            .config
            .clone()
            .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
        let config = Config::load(&config_path)?;
        let (repo, image) = match self.image.split_once('@') {
            Some((repo, digest)) => (repo.to_owned(), digest),
            None => (config.repository(), self.image.as_str()),
        };
        let image: Digest = image.parse().with_context(|| {
            format!(
                "image {:?}: give a digest, sha256:<hex> or REPOSITORY@sha256:<hex>",
                self.image
            )
        })?;
        if config.registry.url.is_none() && !config.layout_dir().is_dir() {
            bail!(
                "{}: no OCI layout there (registry.layout): nothing has been pushed to verify",
                config.layout_dir().display()
            );
        }
        let how = self.trust_material(&config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let report = runtime.block_on(async {
            let registry = config.open_registry().await?;
            self.check(registry.as_ref(), &repo, &image, &how).await
        })?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        Ok(if report["verified"] == true {
            exit::PASSED
        } else {
            exit::BLOCKED
        })
    }

    /// Whom the signatures must come from: the flags, else `[sign]`.
    fn trust_material(&self, config: &Config) -> anyhow::Result<How> {
        let s = &config.sign;
        let identity = match (
            &self.certificate_identity,
            &self.certificate_identity_regexp,
            // The issuer, exact or as a pattern (clap lets only one be given).
            self.certificate_oidc_issuer
                .as_deref()
                .map(Ok)
                .or(self.certificate_oidc_issuer_regexp.as_deref().map(Err)),
        ) {
            (Some(id), None, Some(Ok(iss))) => Some(Identity::exact(id, iss)),
            (None, Some(re), Some(Ok(iss))) => Some(Identity::matching(re, iss)?),
            (Some(id), None, Some(Err(iss_re))) => {
                Some(Identity::exact_with_issuer_pattern(id, iss_re)?)
            }
            (None, Some(re), Some(Err(iss_re))) => Some(Identity::matching_issuer(re, iss_re)?),
            (Some(_), _, None) | (_, Some(_), None) => {
                bail!(
                    "--certificate-identity needs --certificate-oidc-issuer (or --certificate-oidc-issuer-regexp): the issuer that vouched for it"
                )
            }
            (None, None, Some(_)) => {
                bail!(
                    "--certificate-oidc-issuer[-regexp] needs --certificate-identity or --certificate-identity-regexp"
                )
            }
            (None, None, None) if self.key.is_none() && s.key.as_deref() == Some("keyless") => {
                match (&s.identity, &s.issuer) {
                    (Some(id), Some(iss)) => Some(Identity::exact(id, iss)),
                    _ => bail!(
                        "[sign] is keyless but names no identity and issuer: pass --certificate-identity and --certificate-oidc-issuer"
                    ),
                }
            }
            _ => None,
        };
        if let Some(identity) = identity {
            let mut root = match &self.ca_roots {
                Some(pem) => {
                    let text = std::fs::read_to_string(pem)
                        .with_context(|| format!("--ca-roots {}", pem.display()))?;
                    TrustedRoot::from_ca_pems(&text, &pem.display().to_string())?
                }
                None => {
                    let path = match &self.trusted_root {
                        Some(p) => p.clone(),
                        None => s.trusted_root.as_deref().map(|p| config.resolve(p)).context(
                            "keyless verification needs a trust root: --trusted-root or [sign] trusted_root",
                        )?,
                    };
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("trusted root {}", path.display()))?;
                    TrustedRoot::parse(&bytes, &path.display().to_string())?
                }
            };
            if self.insecure_ignore_sct {
                root = root.insecure_ignore_sct();
            }
            if self.insecure_ignore_tlog {
                root = root.insecure_ignore_tlog();
            }
            return Ok(How::Keyless(identity, root));
        }
        anyhow::ensure!(
            !self.insecure_ignore_sct && !self.insecure_ignore_tlog && self.ca_roots.is_none(),
            "--insecure-ignore-sct, --insecure-ignore-tlog and --ca-roots apply to keyless verification: pass --certificate-identity and --certificate-oidc-issuer too"
        );
        let key_path = match &self.key {
            Some(p) => p.clone(),
            None => match s.key.as_deref() {
                Some(k) if k.starts_with("awskms://") => bail!(
                    "[sign] key is {k}: pass --key with its public key (aws kms get-public-key, as PEM)"
                ),
                _ => wharf_sign::public_path(
                    &config
                        .signing_key_file()
                        .context("[sign] key is keyless: pass --key, or --certificate-identity and --certificate-oidc-issuer")?,
                ),
            },
        };
        Ok(How::Key(wharf_sign::PublicKey::from_file(&key_path)?))
    }

    /// Look for signatures in both formats and for the required attestations.
    async fn check(
        &self,
        registry: &dyn Registry,
        repo: &str,
        image: &Digest,
        how: &How,
    ) -> anyhow::Result<serde_json::Value> {
        let trust = match how {
            How::Key(key) => Trust::Key(key),
            How::Keyless(identity, root) => Trust::Keyless { identity, root },
        };
        let mut signatures = Vec::new();
        let mut failures = Vec::new();
        // What is vouched for must be what is stored: the manifest matches its digest
        // (and, with --deep, every blob it names matches its own).
        let content = check_content(registry, repo, image, self.deep).await;
        if let Err(e) = &content {
            failures.push(format!("content: {}", wharf_core::display_chain(e)));
        }
        let legacy = wharf_sign::cosign::verify_image_with(
            registry,
            repo,
            image,
            trust,
            &Default::default(),
        )
        .await;
        match legacy {
            Ok(found) => signatures.extend(found.into_iter().map(|v| {
                serde_json::json!({
                    "format": "cosign .sig",
                    "signer": v.key_id,
                    "integrated_time": v.integrated_time,
                    "log_index": v.log_index,
                })
            })),
            Err(e) => failures.push(format!("cosign .sig: {e}")),
        }
        match wharf_sign::referrers::verify_image_bundle_with(registry, repo, image, trust).await {
            Ok(found) => {
                signatures.extend(found.into_iter().map(
                    |signer| serde_json::json!({"format": "Sigstore bundle", "signer": signer}),
                ))
            }
            Err(e) => failures.push(format!("Sigstore bundle: {e}")),
        }
        let mut attestations = Vec::new();
        let mut missing = Vec::new();
        for kind in &self.attestations {
            let found = wharf_sign::attest::verify_image_attestations(
                registry,
                repo,
                image,
                trust,
                Some(kind),
            )
            .await;
            match found {
                Ok(found) => attestations.extend(found.into_iter().map(|a| {
                    serde_json::json!({
                        "predicate_type": a.predicate_type,
                        "signer": a.key_id,
                        "predicate": a.predicate,
                    })
                })),
                Err(e) => missing.push(format!("attestation {kind}: {e}")),
            }
        }
        let verified = content.is_ok() && !signatures.is_empty() && missing.is_empty();
        Ok(serde_json::json!({
            "image": format!("{repo}@{image}"),
            "trust": match how {
                How::Key(key) => format!("key {}", key.key_id()),
                How::Keyless(identity, root) => {
                    let mut said = identity.describe();
                    if root.ignores_sct() {
                        said.push_str("; SCTs NOT checked (--insecure-ignore-sct)");
                    }
                    if root.ignores_tlog() {
                        said.push_str("; transparency log NOT checked (--insecure-ignore-tlog)");
                    }
                    said
                }
            },
            "verified": verified,
            "signatures": signatures,
            "attestations": attestations,
            "failures": failures.into_iter().chain(missing).collect::<Vec<_>>(),
        }))
    }
}

/// Fetch `image`'s manifest (every registry checks it against its digest); with `deep`, also
/// read every blob it names (or, for an index, every manifest it lists) to the end,
/// which checks each digest, and compare sizes.
async fn check_content(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    deep: bool,
) -> wharf_core::Result<()> {
    use futures_util::StreamExt;
    let manifest = registry.fetch_manifest(repo, image).await?;
    if !deep {
        return Ok(());
    }
    let what = format!("{repo}@{image}");
    let blobs = match wharf_core::ImageManifest::from_slice(&manifest.bytes, &what) {
        Ok(m) => std::iter::once(m.config)
            .chain(m.layers)
            .collect::<Vec<_>>(),
        Err(_) => {
            let index = wharf_core::ImageIndex::from_slice(&manifest.bytes, &what)?;
            for child in &index.manifests {
                Box::pin(check_content(registry, repo, &child.digest, true)).await?;
            }
            return Ok(());
        }
    };
    for blob in blobs {
        let mut stream = registry.fetch_blob(repo, &blob.digest).await?;
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            size += chunk?.len() as u64;
        }
        if size != blob.size {
            return Err(wharf_core::Error::integrity(format!(
                "blob {} of {what} is {size} bytes, not the {} its manifest says",
                blob.digest, blob.size
            )));
        }
    }
    Ok(())
}

/// Whom signatures must come from.
enum How {
    Key(wharf_sign::PublicKey),
    Keyless(Identity, TrustedRoot),
}

fn print_report(r: &serde_json::Value) {
    let word = if r["verified"] == true {
        "VERIFIED"
    } else {
        "NOT VERIFIED"
    };
    println!(
        "{word} {} ({})",
        r["image"].as_str().unwrap_or_default(),
        r["trust"].as_str().unwrap_or_default()
    );
    for s in r["signatures"].as_array().into_iter().flatten() {
        let logged = match s["log_index"].as_u64() {
            Some(i) => format!(", logged at index {i}"),
            None => String::new(),
        };
        println!(
            "  signature  {:<16} by {}{logged}",
            s["format"].as_str().unwrap_or_default(),
            s["signer"].as_str().unwrap_or_default()
        );
    }
    for a in r["attestations"].as_array().into_iter().flatten() {
        println!(
            "  attestation {} by {}",
            a["predicate_type"].as_str().unwrap_or_default(),
            a["signer"].as_str().unwrap_or_default()
        );
    }
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    // With a signature verified, a format holding none is not worth a line.
    for f in failures {
        let f = f.as_str().unwrap_or_default();
        if r["signatures"].as_array().is_some_and(|s| !s.is_empty())
            && !f.starts_with("attestation")
            && !f.starts_with("content")
        {
            continue;
        }
        println!("  not verified: {f}");
    }
}

#![allow(clippy::unwrap_used)]
//! What we sign in cosign 3's bundle format, verified by an independent Sigstore client:
//! sigstore-js (`@sigstore/verify` from npm, a harness tool) checks the public-key bundle
//! with no transparency log required (`tlogThreshold: 0`), as TESTBED.md prescribes for
//! keyed bundles.

use std::process::Command;

mod support;

use wharf_core::memory::MemoryRegistry;
use wharf_core::registry::{ReferrersOptions, collect_blob};
use wharf_core::{Digest, Registry};
use wharf_sign::EcdsaP256Key;
use wharf_sign::bundle::{BUNDLE_V03, COSIGN_SIGN_PREDICATE};
use wharf_sign::referrers::sign_image_bundle;

const VERIFY_JS: &str = r#"
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const [bundlePath, keyPath] = process.argv.slice(1);
const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
const key = crypto.createPublicKey(fs.readFileSync(keyPath));
const root = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
};
const trust = toTrustMaterial(root, () => ({ publicKey: key, validFor: () => true }));
const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
verifier.verify(toSignedEntity(bundle));
const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString());
console.log(statement.predicateType, statement.subject[0].digest.sha256);
"#;

#[tokio::test]
async fn sigstore_js_verifies_our_bundle_signature_and_rejects_another_key() {
    let reg = MemoryRegistry::new();
    let repo = "models/fraud";
    let image = support::push_image(&reg, repo, b"weights", "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let key = EcdsaP256Key::load_or_generate(&dir.path().join("k.pem")).unwrap();
    sign_image_bundle(&reg, repo, &image, &key, key.public_key())
        .await
        .unwrap();

    let referrer = &reg
        .referrers(repo, &image, &ReferrersOptions::of_type(BUNDLE_V03))
        .await
        .unwrap()[0];
    let m = reg.fetch_manifest(repo, &referrer.digest).await.unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    let layer: Digest = m["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    let bundle = collect_blob(reg.fetch_blob(repo, &layer).await.unwrap(), 1 << 20)
        .await
        .unwrap();
    std::fs::write(dir.path().join("bundle.json"), &bundle).unwrap();

    let node = |key: &std::path::Path| {
        Command::new("node")
            .args(["-e", VERIFY_JS])
            .arg(dir.path().join("bundle.json"))
            .arg(key)
            .env("NODE_PATH", support::sigstore_js_modules())
            .output()
            .unwrap()
    };
    let out = node(&wharf_sign::public_path(&dir.path().join("k.pem")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{COSIGN_SIGN_PREDICATE} {}", image.hex())
    );
    EcdsaP256Key::load_or_generate(&dir.path().join("o.pem")).unwrap();
    let out = node(&wharf_sign::public_path(&dir.path().join("o.pem")));
    assert!(!out.status.success(), "another key must not verify");
}

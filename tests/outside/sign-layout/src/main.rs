//! Package a model into an OCI layout, sign it as `cosign sign --key` does, verify it —
//! without an HTTP client or an async runtime.

use wharf_registry::layout::LayoutRegistry;
use wharf_registry::package::{ModelSpec, package_modelpack};
use wharf_sign::EcdsaP256Key;
use wharf_sign::cosign::ImageRef;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args().nth(1).ok_or("usage: outside-sign-layout DIR")?,
    );
    let model = dir.join("model");
    std::fs::create_dir_all(&model)?;
    std::fs::write(model.join("weights.safetensors"), vec![1u8; 1 << 16])?;
    std::fs::write(model.join("config.json"), "{}")?;
    futures::executor::block_on(async {
        let layout = LayoutRegistry::open(dir.join("oci"))?;
        let packaged = package_modelpack(
            &ModelSpec::new(&model, "fraud-detector", "1.4.0"),
            &dir.join("staging"),
        )?;
        let image = packaged
            .push(&layout, "models/fraud-detector", Some("v1"))
            .await?
            .digest;
        packaged.remove_staged();
        let key = EcdsaP256Key::load_or_generate(&dir.join("signing.pem"))?;
        let image = ImageRef::new("models/fraud-detector", image)
            .with_docker_reference("registry.example.com/models/fraud-detector");
        key.sign_image(&layout, &image).await?;
        let verified = key.public_key().verify_image(&layout, &image).await?;
        println!(
            "sign-layout: {} signed, {} signature verified",
            image.digest,
            verified.len()
        );
        Ok(())
    })
}

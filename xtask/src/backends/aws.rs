//! moto: AWS (S3, ECR, STS, KMS, SageMaker) as a local server, from PyPI in a venv.

use std::ffi::OsString;

use super::Launch;

/// moto's requirements; the token server uses the same venv.
pub(super) const MOTO_REQUIREMENTS: &[&str] = &["moto[server]>=5,<6", "boto3"];

/// Arguments of moto's server: listen on `127.0.0.1:port`.
pub(super) fn moto_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    Ok(vec![
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        launch.port.to_string().into(),
    ])
}

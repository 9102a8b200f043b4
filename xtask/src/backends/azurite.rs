//! Azurite: Azure's Blob service as a local server, from npm, run with `node`.

use std::ffi::OsString;

use super::Launch;

/// The answer of Azurite's Blob service to an unsigned request, which its probe checks.
pub(super) const AZURITE_UNSIGNED: (&str, &str) = ("x-ms-error-code", "AuthorizationFailure");

/// Arguments of Azurite's Blob service (after its script): listen on `127.0.0.1:port`, keep
/// everything in memory, send no telemetry, log no requests, and take any `x-ms-version`.
/// Its workspace is the work dir it runs in (`--location` cannot be combined with
/// `--inMemoryPersistence`).
pub(super) fn azurite_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    Ok(vec![
        "--blobHost".into(),
        "127.0.0.1".into(),
        "--blobPort".into(),
        launch.port.to_string().into(),
        "--disableTelemetry".into(),
        "--inMemoryPersistence".into(),
        "--skipApiVersionCheck".into(),
        "--silent".into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::State;
    use crate::backends::tests::{ctx_in, temp_dir};
    use std::fs;

    #[test]
    fn azurite_listens_on_loopback_only() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let state = State::default();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &dir,
            port: 41242,
            state: &state,
        };
        let azurite = azurite_args(&launch).unwrap();
        assert_eq!(
            azurite,
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "41242",
                "--disableTelemetry",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent"
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }
}

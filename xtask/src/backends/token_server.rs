//! The token server the token-auth registry trusts: `token_server.py`, run with the moto
//! venv's Python.

use std::ffi::OsString;

use super::Launch;
use super::registry::{PASSWORD_FILE, TEST_USER, test_password};

/// The issuer of the token server's tokens.
pub(super) const TOKEN_ISSUER: &str = "wharf-test-token-server";
/// The token server: a Python script run with the moto venv's Python (moto pulls in
/// `cryptography`, which signs the tokens).
pub(super) const TOKEN_SERVER_PY: &str = include_str!("token_server.py");

/// Arguments of the token server: runs `token_server.py` (written into the work dir from
/// [`TOKEN_SERVER_PY`]), which keeps its key and certificate there and reads the test
/// password from its file.
pub(super) fn token_server_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    test_password(launch.ctx)?; // make sure the file exists
    let script = launch.work_dir.join("token_server.py");
    Ok(vec![
        script.into(),
        "--port".into(),
        launch.port.to_string().into(),
        "--dir".into(),
        launch.work_dir.into(),
        "--user".into(),
        TEST_USER.into(),
        "--password-file".into(),
        launch.ctx.state_dir.join(PASSWORD_FILE).into(),
        "--issuer".into(),
        TOKEN_ISSUER.into(),
    ])
}

//! The CNCF distribution registries: plain, with htpasswd (Basic) auth, and with token auth
//! (trusting the token server); and the test user the authenticating ones share with the
//! token server.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};

use super::install::Install;
use super::token_server::TOKEN_ISSUER;
use super::{Ctx, Launch};

/// The test user of the authenticating registries and the token server.
pub(super) const TEST_USER: &str = "wharf-test";
/// The file in the state dir holding the test user's generated password.
pub(super) const PASSWORD_FILE: &str = "test-password";
/// The `service` of the token-auth registry: the audience of its tokens.
const TOKEN_SERVICE: &str = "wharf-test-registry";
/// The registry's answer on every route, which the probes check.
pub(super) const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");
/// Debian's CNCF distribution registry.
pub(super) const DOCKER_REGISTRY: Install = Install::Apt {
    packages: &["docker-registry"],
    binaries: &["/usr/bin/docker-registry"],
};

/// The test user's password: `target/wharf-backends/test-password`, created (mode 0600, 24
/// random hex characters from `/dev/urandom`) when missing.
pub(super) fn test_password(ctx: &Ctx) -> anyhow::Result<String> {
    let path = ctx.state_dir.join(PASSWORD_FILE);
    if let Ok(text) = fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_owned());
    }
    let mut random = [0u8; 12];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("reading /dev/urandom for the test password")?;
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    fs::create_dir_all(&ctx.state_dir)
        .with_context(|| format!("creating {}", ctx.show(&ctx.state_dir)))?;
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", ctx.show(&tmp)))?;
        writeln!(file, "{password}").with_context(|| format!("writing {}", ctx.show(&tmp)))?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("renaming {}", ctx.show(&tmp)))?;
    Ok(password)
}

/// Arguments of the CNCF distribution registry, plain: writes `config.yml` (filesystem
/// storage in `data/`, deletes enabled, listening on `127.0.0.1:port`) and returns
/// `serve config.yml`.
pub(super) fn registry_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    registry_config(launch, "")
}

/// Arguments of the registry with htpasswd (Basic) auth for the test user: writes
/// `htpasswd` (bcrypt, by `htpasswd -Bin`, the password on stdin) and the config.
pub(super) fn registry_basic_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let password = test_password(launch.ctx)?;
    let mut child = Command::new("/usr/bin/htpasswd")
        .args(["-Bin", TEST_USER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running htpasswd (from apache2-utils)")?;
    child
        .stdin
        .take()
        .context("htpasswd's stdin")?
        .write_all(password.as_bytes())
        .context("writing the password to htpasswd")?;
    let out = child.wait_with_output().context("waiting for htpasswd")?;
    ensure!(
        out.status.success(),
        "htpasswd failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let htpasswd = launch.work_dir.join("htpasswd");
    fs::write(&htpasswd, &out.stdout).with_context(|| format!("writing {}", htpasswd.display()))?;
    let path = serde_json::to_string(&htpasswd.to_string_lossy()).context("quoting a path")?;
    registry_config(
        launch,
        &format!("auth:\n  htpasswd:\n    realm: wharf-test-basic\n    path: {path}\n"),
    )
}

/// Arguments of the registry with token auth: its realm is the token server (which must be
/// running: its certificate is the `rootcertbundle`).
pub(super) fn registry_token_args(launch: &Launch<'_>) -> anyhow::Result<Vec<OsString>> {
    let token_port = launch.port_of("token-server")?;
    let cert = launch.work_dir_of("token-server").join("cert.pem");
    ensure!(
        cert.is_file(),
        "the token server has not written its certificate {}",
        cert.display()
    );
    let cert = serde_json::to_string(&cert.to_string_lossy()).context("quoting a path")?;
    registry_config(
        launch,
        &format!(
            "auth:\n  token:\n    realm: \"http://127.0.0.1:{token_port}/token\"\n    \
             service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {cert}\n"
        ),
    )
}

/// Writes a registry's `config.yml` with `extra` (an `auth:` section) appended.
fn registry_config(launch: &Launch<'_>, extra: &str) -> anyhow::Result<Vec<OsString>> {
    let work_dir = launch.work_dir;
    let port = launch.port;
    let data = work_dir.join("data");
    fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    // A JSON string is a valid YAML scalar, and quotes whatever the path holds.
    let root =
        serde_json::to_string(&data.to_string_lossy()).context("quoting the registry data path")?;
    let config = format!(
        "# written by `cargo xtask backends up`; rewritten on every start\n\
         version: 0.1\n\
         log:\n  level: info\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: wharf-local-test-registry\n{extra}"
    );
    let path = work_dir.join("config.yml");
    fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(vec!["serve".into(), path.into()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::aws::moto_args;
    use crate::backends::process::loopback;
    use crate::backends::tests::{ctx_in, temp_dir};
    use crate::backends::{BACKENDS, State};
    use std::collections::BTreeMap;

    #[test]
    fn registry_config_listens_on_loopback_only() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let state = State::default();
        let work_dir = dir.join("registry");
        fs::create_dir_all(&work_dir).unwrap();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &work_dir,
            port: 41235,
            state: &state,
        };
        let args = registry_args(&launch).unwrap();
        assert_eq!(
            args,
            [OsString::from("serve"), work_dir.join("config.yml").into()]
        );
        let config = fs::read_to_string(work_dir.join("config.yml")).unwrap();
        assert!(config.contains("  addr: 127.0.0.1:41235\n"), "{config}");
        assert!(
            config.contains(&format!(
                "rootdirectory: \"{}\"",
                work_dir.join("data").display()
            )),
            "{config}"
        );
        assert!(!config.contains("auth:"), "{config}");
        assert!(work_dir.join("data").is_dir());
        let moto = Launch { port: 7, ..launch };
        assert_eq!(moto_args(&moto).unwrap(), ["-H", "127.0.0.1", "-p", "7"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn token_registry_config_names_the_token_server() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let state = State {
            ports: BTreeMap::from([("token-server".to_owned(), 41240)]),
        };
        let work_dir = dir.join("registry-token");
        fs::create_dir_all(&work_dir).unwrap();
        fs::create_dir_all(dir.join("token-server")).unwrap();
        let launch = Launch {
            ctx: &ctx,
            work_dir: &work_dir,
            port: 41241,
            state: &state,
        };
        let err = registry_token_args(&launch).unwrap_err();
        assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");
        fs::write(dir.join("token-server/cert.pem"), "pem").unwrap();
        registry_token_args(&launch).unwrap();
        let config = fs::read_to_string(work_dir.join("config.yml")).unwrap();
        for needle in [
            "auth:\n  token:\n",
            "realm: \"http://127.0.0.1:41240/token\"\n",
            "service: wharf-test-registry\n",
            "issuer: wharf-test-token-server\n",
            "token-server/cert.pem\"\n",
            "addr: 127.0.0.1:41241\n",
        ] {
            assert!(config.contains(needle), "{needle:?} in {config}");
        }
        let no_port = Launch {
            state: &State::default(),
            ..launch
        };
        assert!(registry_token_args(&no_port).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_test_password_is_generated_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let first = test_password(&ctx).unwrap();
        assert_eq!(first.len(), 24);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(test_password(&ctx).unwrap(), first);
        let mode = fs::metadata(dir.join(PASSWORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let env = BACKENDS
            .iter()
            .find(|b| b.name == "registry-basic")
            .unwrap()
            .env(&ctx, Some(loopback(9)))
            .unwrap();
        assert_eq!(
            env,
            [
                (
                    "WHARF_TEST_REGISTRY_BASIC".to_owned(),
                    "127.0.0.1:9".to_owned()
                ),
                ("WHARF_TEST_REGISTRY_USER".to_owned(), TEST_USER.to_owned()),
                ("WHARF_TEST_REGISTRY_PASSWORD".to_owned(), first),
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }
}

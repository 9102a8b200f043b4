//! Key files under concurrent first use, with real processes: this test binary starts
//! copies of itself that all call `load_or_generate_with` on one fresh path at the same
//! moment; exactly one key is created and every process ends up with it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wharf_core::Secret;
use wharf_sign::{EcdsaP256Key, PublicKey, public_path};

/// Set in the child processes: the key path they load or generate.
const CHILD_KEY: &str = "WHARF_SIGN_TEST_CHILD_KEY";
/// Set in the child processes: a file whose appearance starts them all at once.
const CHILD_GO: &str = "WHARF_SIGN_TEST_CHILD_GO";
/// Set in the child processes when the key is password-protected.
const CHILD_PASSWORD: &str = "WHARF_SIGN_TEST_CHILD_PASSWORD";

/// The body of each child process (a no-op in a normal test run): wait for the start
/// signal, load or generate the key, print its id.
#[test]
fn child_loads_or_generates_the_key() {
    let (Ok(path), Ok(go)) = (std::env::var(CHILD_KEY), std::env::var(CHILD_GO)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&go).exists() {
        assert!(Instant::now() < deadline, "no start signal");
        std::thread::yield_now();
    }
    let password = std::env::var(CHILD_PASSWORD).ok().map(Secret::new);
    match EcdsaP256Key::load_or_generate_with(Path::new(&path), password.as_ref()) {
        Ok(key) => println!("key-id {}", key.public_key().key_id()),
        Err(e) => println!("key-error {e}"),
    }
}

/// Start `n` processes on one fresh key path at once; return each one's output line.
fn race(dir: &Path, name: &str, password: Option<&str>, n: usize) -> Vec<String> {
    let path = dir.join("keys").join(name);
    let go = dir.join(format!("go-{name}"));
    let children: Vec<_> = (0..n)
        .map(|_| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "--exact",
                "child_loads_or_generates_the_key",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_KEY, &path)
            .env(CHILD_GO, &go)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            if let Some(p) = password {
                cmd.env(CHILD_PASSWORD, p);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, "").unwrap();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
                .lines()
                .find(|l| l.starts_with("key-"))
                .unwrap_or_else(|| panic!("no key line in {stdout}"))
                .to_owned()
        })
        .collect()
}

fn check_one_key(dir: &Path, name: &str, password: Option<&str>) {
    let lines = race(dir, name, password, 8);
    let first = &lines[0];
    assert!(first.starts_with("key-id sha256:"), "{lines:#?}");
    assert!(
        lines.iter().all(|l| l == first),
        "one key for all: {lines:#?}"
    );
    let path = dir.join("keys").join(name);
    let password = password.map(Secret::new);
    let key = EcdsaP256Key::load_or_generate_with(&path, password.as_ref()).unwrap();
    assert_eq!(first, &format!("key-id {}", key.public_key().key_id()));
    let public = PublicKey::from_file(&public_path(&path)).unwrap();
    assert_eq!(public.key_id(), key.public_key().key_id());
}

/// Eight first uses at once, of an unencrypted key (the audit checkpoint key) and of a
/// cosign.key with a password: all succeed with the same key, its .pub matches it, and no
/// temp file is left behind.
#[test]
fn eight_processes_creating_one_key_at_once_all_get_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    check_one_key(dir.path(), "audit-checkpoint.pem", None);
    check_one_key(dir.path(), "cosign.key", Some("wharf-test-pw"));
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit-checkpoint.pem",
            "audit-checkpoint.pem.pub",
            "cosign.key",
            "cosign.pub"
        ],
        "exactly one key pair each, no temp files"
    );
    #[cfg(unix)]
    for private in ["audit-checkpoint.pem", "cosign.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys").join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{private}");
    }
}

/// A 0-byte key file (an older version killed while writing it) fails every process with
/// the same one-line advice, and none of them replaces it.
#[test]
fn a_zero_byte_key_left_by_a_killed_writer_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let path = dir.path().join("keys/cosign.key");
    std::fs::write(&path, "").unwrap();
    let lines = race(dir.path(), "cosign.key", Some("pw"), 3);
    for line in &lines {
        assert!(
            line.starts_with(&format!("key-error key file {} is empty", path.display()))
                && line.contains("delete it"),
            "{line}"
        );
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

//! The `-v` log: wharf's own stage logs at DEBUG on stderr, other crates (the AWS SDK,
//! HTTP clients) at INFO, and every secret value the process knows masked wherever it shows
//! in a line — the AWS SDK prints the access key id in its debug output, as any crate may
//! print a value it was handed.

use std::io::Write;
use std::sync::RwLock;

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What a masked value is replaced by (as `wharf_core::Secret` prints).
const MASK: &str = "[redacted]";

/// Values shorter than this are not masked: they are not secrets worth the name, and
/// masking them would garble every line they occur in.
const MIN_SECRET_LEN: usize = 4;

/// The variables whose values are secrets, beside any whose name says so (see
/// [`is_secret_name`]).
const SECRET_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "COSIGN_PASSWORD",
    "SIGSTORE_ID_TOKEN",
];

/// Secret values learnt after start-up (a password typed at the prompt, the variable a
/// config names), masked like the environment's.
static EXTRA: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether a variable's name says it holds a secret.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    SECRET_VARS.contains(&name.as_str())
        || [
            "PASSWORD",
            "PASSWD",
            "SECRET",
            "TOKEN",
            "ACCESS_KEY",
            "ACCOUNT_KEY",
            "PRIVATE_KEY",
            "API_KEY",
        ]
        .iter()
        .any(|word| name.contains(word))
}

/// Mask `value` in the log from now on (a secret that did not come from a variable whose
/// name says so).
pub(crate) fn mask(value: &str) {
    if value.len() >= MIN_SECRET_LEN
        && let Ok(mut extra) = EXTRA.write()
        && !extra.iter().any(|v| v == value)
    {
        extra.push(value.to_owned());
    }
}

/// Every form in which a secret may be printed: as is, escaped by `Debug`, percent-encoded
/// in a URL; longest first, so a secret that contains another is masked whole.
fn needles() -> Vec<String> {
    let mut values: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| is_secret_name(k))
        .map(|(_, v)| v)
        .collect();
    if let Ok(extra) = EXTRA.read() {
        values.extend(extra.iter().cloned());
    }
    let mut needles = Vec::new();
    for value in values.into_iter().filter(|v| v.len() >= MIN_SECRET_LEN) {
        let debug = format!("{value:?}");
        let debug = debug[1..debug.len() - 1].to_owned();
        let encoded = percent_encode(&value);
        needles.extend([debug, encoded]);
        needles.push(value);
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    needles
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `line` with every secret in `needles` replaced by [`MASK`].
fn masked(line: &str, needles: &[String]) -> String {
    let mut line = line.to_owned();
    for needle in needles {
        if line.contains(needle.as_str()) {
            line = line.replace(needle.as_str(), MASK);
        }
    }
    line
}

/// Each log event, formatted whole, then written to stderr with the secrets masked.
struct MaskedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedEvent;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedEvent(Vec::new())
    }
}

/// One event's text, masked and written when the formatter is done with it.
struct MaskedEvent(Vec<u8>);

impl Write for MaskedEvent {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MaskedEvent {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = masked(&String::from_utf8_lossy(&self.0), &needles());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Log to stderr for `-v`: wharf's crates and xtask at DEBUG, everything else at INFO,
/// secrets masked.
pub(crate) fn init_verbose() {
    let targets = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("wharf", Level::DEBUG)
        .with_target("xtask", Level::DEBUG);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(MaskedStderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = tracing_subscriber::registry()
        .with(targets)
        .with(fmt)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_every_printed_form() {
        let needles = {
            let mut n = Vec::new();
            for v in ["AKIACANARY0123456789", "pa\"ss/word+1"] {
                let debug = format!("{v:?}");
                n.extend([
                    v.to_owned(),
                    debug[1..debug.len() - 1].to_owned(),
                    percent_encode(v),
                ]);
            }
            n.sort_by_key(|n| std::cmp::Reverse(n.len()));
            n
        };
        let line = r#"Credentials { access_key_id: "AKIACANARY0123456789" } pw="pa\"ss/word+1" url=?p=pa%22ss%2Fword%2B1 raw pa"ss/word+1"#;
        let out = masked(line, &needles);
        assert!(!out.contains("AKIACANARY") && !out.contains("ss/word") && !out.contains("ss%2F"));
        assert_eq!(out.matches(MASK).count(), 4, "{out}");
    }

    #[test]
    fn secret_names_and_short_values() {
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "COSIGN_PASSWORD",
            "SIGSTORE_ID_TOKEN",
            "CI_SIGSTORE_TOKEN",
            "AZURE_STORAGE_ACCOUNT_KEY",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["AWS_REGION", "AWS_ENDPOINT_URL", "HOME", "PATH"] {
            assert!(!is_secret_name(name), "{name}");
        }
        mask("abc");
        mask("wharf-typed-password");
        let extra = EXTRA.read().unwrap();
        assert!(!extra.iter().any(|v| v == "abc"));
        assert!(extra.iter().any(|v| v == "wharf-typed-password"));
    }
}

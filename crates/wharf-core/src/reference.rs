//! Docker/OCI image references (`ghcr.io/acme/app:1.0@sha256:…`): the grammar of
//! `github.com/distribution/reference`, written by hand.
//!
//! Three entry points mirror the Go library:
//!
//! | wharf | Go (`distribution/reference`) | normalizes | adds `:latest` |
//! |---|---|---|---|
//! | [`Reference::parse`] (and [`FromStr`], serde) | `ParseNormalizedNamed` | yes | no |
//! | [`Reference::parse_strict`] | `Parse` | no | no |
//! | [`Reference::parse_docker`] | `ParseDockerRef` | yes | yes (and drops the tag when a digest is present) |
//!
//! ```
//! use wharf_core::Reference;
//!
//! let r = Reference::parse("ubuntu")?;
//! assert_eq!(r.to_string(), "docker.io/library/ubuntu");
//! assert_eq!(r.familiar(), "ubuntu");
//! assert_eq!(r.registry_host(), Some("registry-1.docker.io"));
//!
//! let d = Reference::parse_docker("ubuntu")?;
//! assert_eq!(d.to_string(), "docker.io/library/ubuntu:latest");
//!
//! let s = Reference::parse_strict("localhost:5000/model:v1")?;
//! assert_eq!((s.domain(), s.path(), s.tag()), (Some("localhost:5000"), "model", Some("v1")));
//!
//! let err = Reference::parse("docker/Docker").unwrap_err();
//! assert!(err.to_string().contains("must be lowercase"));
//! # Ok::<(), wharf_core::ReferenceError>(())
//! ```
//!
//! Digests are limited to what [`Digest`] supports (sha256 and sha512): a reference whose
//! digest uses another algorithm is rejected with
//! [`ReferenceError::UnsupportedDigestAlgorithm`], because nothing downstream could verify
//! content against it.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry Docker Hub references are normalized to.
const DOCKER_HUB: &str = "docker.io";
/// The legacy Docker Hub domain, normalized to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The host that actually serves Docker Hub's registry API.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag `parse_docker` adds when a reference has neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// The longest repository path accepted (distribution's `RepositoryNameTotalLengthMax`).
const MAX_PATH_LEN: usize = 255;
/// The longest tag accepted.
const MAX_TAG_LEN: usize = 128;

const PATH_RULE: &str =
    "path components are lowercase letters and digits separated by '.', '_', '__' or dashes";
const HOST_RULE: &str = "a registry host is a host name or ip address with an optional port, e.g. \"registry.example.com:5000\" or \"[::1]:5000\"";
const TAG_RULE: &str =
    "a tag is 1 to 128 letters, digits, '_', '.' or '-' and must not start with '.' or '-'";

/// Why a string is not a valid image reference.
///
/// The variants mirror the errors of `github.com/distribution/reference`; every message is one
/// line, quotes the input and says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is empty (`ErrNameEmpty`).
    #[error(
        "invalid reference \"\": a reference needs a repository name, e.g. \"ubuntu\" or \"ghcr.io/acme/app:1.0\""
    )]
    Empty,
    /// The input does not follow `[host[:port]/]path[:tag][@algorithm:hex]`
    /// (`ErrReferenceInvalidFormat`).
    #[error("invalid reference {input:?}: {reason}")]
    InvalidFormat {
        /// The rejected input.
        input: String,
        /// Which part is wrong and what would be valid.
        reason: String,
    },
    /// The repository path contains uppercase letters (`ErrNameContainsUppercase`).
    #[error(
        "invalid reference {input:?}: repository name {name:?} must be lowercase{hint}",
        hint = lowercase_hint(.name)
    )]
    Uppercase {
        /// The rejected input.
        input: String,
        /// The offending repository name, as written in the input.
        name: String,
    },
    /// The repository path is longer than 255 characters (`ErrNameTooLong`).
    #[error(
        "invalid reference {input:?}: repository name must not be more than 255 characters, this one has {length}"
    )]
    NameTooLong {
        /// The rejected input.
        input: String,
        /// The length of the repository path (after normalization).
        length: usize,
    },
    /// A tag given to [`Reference::with_tag`] does not match `[\w][\w.-]{0,127}`
    /// (`ErrTagInvalidFormat`). A bad tag inside a parsed string is
    /// [`ReferenceError::InvalidFormat`], as in the Go library.
    #[error("invalid tag {tag:?}: {rule}", rule = TAG_RULE)]
    InvalidTag {
        /// The rejected tag.
        tag: String,
    },
    /// The digest is well-formed but its value does not fit its algorithm (wrong length,
    /// uppercase hex), like go-digest's `ErrDigestInvalidLength` / `ErrDigestInvalidFormat`.
    #[error("invalid reference {input:?}: {source}")]
    InvalidDigest {
        /// The rejected input.
        input: String,
        /// Why the digest was rejected.
        source: DigestError,
    },
    /// The digest uses an algorithm other than sha256 or sha512 (go-digest's
    /// `ErrDigestUnsupported`; wharf also rejects sha384, which go-digest accepts, because
    /// nothing downstream can verify it).
    #[error(
        "invalid reference {input:?}: unsupported digest algorithm {algorithm:?}, use a sha256 or sha512 digest"
    )]
    UnsupportedDigestAlgorithm {
        /// The rejected input.
        input: String,
        /// The algorithm named in the input.
        algorithm: String,
    },
}

impl From<ReferenceError> for crate::Error {
    fn from(e: ReferenceError) -> Self {
        crate::Error::invalid(e.to_string()).with_source(e)
    }
}

/// A parsed image reference: `[domain/]path[:tag][@digest]`.
///
/// Built by [`Reference::parse`] (Docker normalization: `ubuntu` is
/// `docker.io/library/ubuntu`), [`Reference::parse_strict`] (no normalization) or
/// [`Reference::parse_docker`] (normalization plus the default `:latest` tag).
/// [`Display`](fmt::Display) writes the full form; serde uses that string and parses it back
/// with [`Reference::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Which grammar entry point is parsing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `reference.Parse`: no normalization.
    Strict,
    /// `reference.ParseNormalizedNamed`: Docker CLI normalization.
    Normalized,
}

impl Reference {
    /// Parse with Docker CLI normalization (distribution's `ParseNormalizedNamed`).
    ///
    /// The first `/`-separated component is the registry domain only if it contains `.` or
    /// `:`, is `localhost`, or contains uppercase letters; otherwise the domain is
    /// `docker.io`, and single-component names get the `library/` namespace
    /// (`ubuntu` → `docker.io/library/ubuntu`). `index.docker.io` becomes `docker.io`.
    /// Repository names must be lowercase; a bare 64-character hex string (an image id) is
    /// rejected. No tag is added (see [`Reference::parse_docker`]).
    ///
    /// Unlike the Go library, a first component that looks like a host but is not a valid
    /// one (`foo.bar_baz/app`) is rejected rather than turned into a domain-less name.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        parse_with(s, Mode::Normalized)
    }

    /// Parse without normalization (distribution's `reference.Parse`).
    ///
    /// The domain is purely grammatical: the first component of a multi-component name is
    /// the domain whenever it matches the host grammar (so `library/ubuntu` has domain
    /// `library`), and single-component names have no domain.
    pub fn parse_strict(s: &str) -> Result<Self, ReferenceError> {
        parse_with(s, Mode::Strict)
    }

    /// Parse like `docker pull` (distribution's `ParseDockerRef`): normalized as
    /// [`Reference::parse`], with `:latest` added when there is neither tag nor digest, and
    /// the tag dropped when a digest is present (the digest is what gets pulled).
    pub fn parse_docker(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse(s)?;
        if r.digest.is_some() {
            r.tag = None;
        } else if r.tag.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// The registry domain (`ghcr.io`, `localhost:5000`, `docker.io`), if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The repository path within the registry (`library/ubuntu`, `acme/app`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The repository name: `domain/path`, or `path` when there is no domain.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The short form Docker shows (distribution's `FamiliarString`): `docker.io/` and, for
    /// single-component official images, `library/` are dropped
    /// (`docker.io/library/ubuntu:latest` → `ubuntu:latest`).
    pub fn familiar(&self) -> String {
        let mut out = match self.domain.as_deref() {
            Some(DOCKER_HUB) => match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            },
            _ => self.name(),
        };
        self.push_suffix(&mut out);
        out
    }

    /// The same repository and digest with `tag` as the tag.
    ///
    /// The tag must match `[\w][\w.-]{0,127}`; otherwise [`ReferenceError::InvalidTag`].
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_owned(),
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository and tag, pinned to `digest` (replacing any digest it had).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The repository alone, without tag and digest.
    pub fn repository(&self) -> Self {
        Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }

    /// True when the reference carries a digest, so it names immutable content.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// The host to connect to: `registry-1.docker.io` for Docker Hub (`docker.io` and the
    /// legacy `index.docker.io`), otherwise the domain; `None` when there is no domain.
    pub fn registry_host(&self) -> Option<&str> {
        match self.domain.as_deref() {
            Some(DOCKER_HUB | LEGACY_DOCKER_HUB) => Some(DOCKER_HUB_REGISTRY),
            other => other,
        }
    }

    /// Append `:tag` and `@digest` when present.
    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Same as [`Reference::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The shared parser behind [`Reference::parse`] and [`Reference::parse_strict`].
fn parse_with(input: &str, mode: Mode) -> Result<Reference, ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let invalid = |reason: String| ReferenceError::InvalidFormat {
        input: input.to_owned(),
        reason,
    };

    if mode == Mode::Normalized && is_identifier(input) {
        return Err(invalid(
            "a bare 64-character hex string is an image id, not a repository name; pin a repository with \"name@sha256:<hex>\"".to_owned(),
        ));
    }

    // No part of the grammar contains '@' except the separator before the digest, and no
    // tag contains ':' or '/', so the tag is whatever follows the last ':' after the last '/'.
    let (before_digest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (input, None),
    };
    let (name, tag) = match before_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (before_digest, None),
    };

    if name.is_empty() {
        return Err(invalid(
            "the repository name is missing; write \"name[:tag][@digest]\", e.g. \"ubuntu:22.04\""
                .to_owned(),
        ));
    }
    if let Some((scheme, _)) = name.split_once("://") {
        let scheme = format!("{scheme}://");
        return Err(invalid(format!(
            "a reference is not a url; drop the {scheme:?} scheme, e.g. \"ghcr.io/acme/app:1.0\""
        )));
    }

    if name.starts_with('[') && !name.contains('/') {
        return Err(invalid(
            "an ipv6 registry host needs a port and a repository path, e.g. \"[::1]:5000/app:1.0\""
                .to_owned(),
        ));
    }

    // Split off the domain; `user_path` is the repository path as written in the input and
    // `path` the one stored (with `library/` added for Docker Hub official images).
    let (domain, user_path, path) = match mode {
        Mode::Strict => match name.split_once('/') {
            Some((first, rest)) if is_host(first) => {
                (Some(first.to_owned()), rest, rest.to_owned())
            }
            _ => (None, name, name.to_owned()),
        },
        Mode::Normalized => {
            let (domain, user_path) = match name.split_once('/') {
                None => (DOCKER_HUB, name),
                Some((LEGACY_DOCKER_HUB, rest)) => (DOCKER_HUB, rest),
                Some((first, rest))
                    if first == "localhost"
                        || first.contains(['.', ':'])
                        || first.bytes().any(|b| b.is_ascii_uppercase()) =>
                {
                    (first, rest)
                }
                Some(_) => (DOCKER_HUB, name),
            };
            // distribution checks the repository name for uppercase before anything else.
            if user_path.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(ReferenceError::Uppercase {
                    input: input.to_owned(),
                    name: user_path.to_owned(),
                });
            }
            if !is_host(domain) {
                if domain.bytes().any(|b| b.is_ascii_uppercase())
                    && is_path_component(&domain.to_ascii_lowercase())
                {
                    return Err(ReferenceError::Uppercase {
                        input: input.to_owned(),
                        name: name.to_owned(),
                    });
                }
                return Err(invalid(format!(
                    "registry host {domain:?} is not valid; {HOST_RULE}"
                )));
            }
            let path = if domain == DOCKER_HUB && !user_path.contains('/') {
                format!("{OFFICIAL_PREFIX}{user_path}")
            } else {
                user_path.to_owned()
            };
            (Some(domain.to_owned()), user_path, path)
        }
    };

    let mut uppercase = false;
    for (i, component) in user_path.split('/').enumerate() {
        if is_path_component(component) {
            continue;
        }
        if is_path_component(&component.to_ascii_lowercase()) {
            uppercase = true;
            continue;
        }
        let reason = if component.is_empty() {
            format!("repository name {user_path:?} has an empty path component; {PATH_RULE}")
        } else if i == 0 && domain.is_none() && user_path.contains('/') {
            format!(
                "{component:?} is neither a registry host nor a valid path component; {PATH_RULE}, and {HOST_RULE}"
            )
        } else {
            format!("path component {component:?} is not valid; {PATH_RULE}")
        };
        return Err(invalid(reason));
    }
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(invalid(format!("tag {tag:?} is not valid; {TAG_RULE}")));
    }
    if let Some(digest) = digest
        && !is_digest_pattern(digest)
    {
        return Err(invalid(format!(
            "digest {digest:?} is not valid; write \"<algorithm>:<hex>\", e.g. \"sha256:\" followed by 64 lowercase hex characters"
        )));
    }
    if uppercase {
        return Err(ReferenceError::Uppercase {
            input: input.to_owned(),
            name: user_path.to_owned(),
        });
    }
    if path.len() > MAX_PATH_LEN {
        return Err(ReferenceError::NameTooLong {
            input: input.to_owned(),
            length: path.len(),
        });
    }
    let digest = match digest {
        None => None,
        Some(d) => Some(Digest::parse(d).map_err(|e| match e {
            DigestError::Algorithm { algorithm, .. } => {
                ReferenceError::UnsupportedDigestAlgorithm {
                    input: input.to_owned(),
                    algorithm,
                }
            }
            other => ReferenceError::InvalidDigest {
                input: input.to_owned(),
                source: other,
            },
        })?),
    };

    Ok(Reference {
        domain,
        path,
        tag: tag.map(str::to_owned),
        digest,
    })
}

/// `, e.g. "<name in lowercase>"` when that would be a valid repository name, else nothing.
fn lowercase_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.split('/').all(is_path_component) {
        format!(", e.g. {lower:?}")
    } else {
        String::new()
    }
}

/// `[a-f0-9]{64}`: an image id, which `ParseNormalizedNamed` refuses as a name.
fn is_identifier(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of alphanumerics is required here.
        let start = i;
        while b.get(i).copied().is_some_and(alnum) {
            i += 1;
        }
        if i == start {
            return false;
        }
        // Then the end, or a separator followed by another run.
        match b.get(i) {
            None => return true,
            Some(b'.') => i += 1,
            Some(b'_') => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            Some(b'-') => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            Some(_) => return false,
        }
    }
}

/// `(?:domainName|\[[a-fA-F0-9:]+\])(?::[0-9]+)?` where
/// `domainName = domainNameComponent(?:\.domainNameComponent)*`.
fn is_host(s: &str) -> bool {
    let (host_ok, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((addr, after)) => (
                !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
                after,
            ),
            None => return false,
        },
        None => match s.find(':') {
            Some(i) => {
                let (host, port) = s.split_at(i);
                (host.split('.').all(is_domain_component), port)
            }
            None => (s.split('.').all(is_domain_component), ""),
        },
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// `[\w][\w.-]{0,127}` with ASCII `\w`.
fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            s.len() <= MAX_TAG_LEN
                && word(*first)
                && rest.iter().all(|c| word(*c) || *c == b'.' || *c == b'-')
        }
        None => false,
    }
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
fn is_digest_pattern(s: &str) -> bool {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.as_bytes().split_first().is_some_and(|(first, rest)| {
            first.is_ascii_alphabetic() && rest.iter().all(u8::is_ascii_alphanumeric)
        })
    });
    algorithm_ok && encoded.len() >= 32 && encoded.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha(hex: &str) -> Digest {
        Digest::parse(&format!("sha256:{hex}")).unwrap()
    }

    #[test]
    fn with_tag_validates_the_tag_grammar() {
        let r = Reference::parse("ghcr.io/acme/app").unwrap();
        for ok in [
            "v1",
            "_",
            "3f2a9c1",
            "V1.0-rc_1",
            "a..b--c",
            &"x".repeat(128),
        ] {
            let t = r.with_tag(ok).unwrap();
            assert_eq!(t.tag(), Some(ok));
            assert_eq!(t.to_string(), format!("ghcr.io/acme/app:{ok}"));
        }
        for bad in [
            "",
            ".v1",
            "-v1",
            "v/1",
            "v:1",
            "v@1",
            "v 1",
            "é",
            &"x".repeat(129),
        ] {
            let err = r.with_tag(bad).unwrap_err();
            assert_eq!(
                err,
                ReferenceError::InvalidTag {
                    tag: bad.to_owned()
                },
                "{bad:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid tag {bad:?}: a tag is 1 to 128"))
            );
        }
        // The digest is kept, as distribution's WithTag does.
        let pinned = r.with_digest(sha(HEX)).with_tag("v2").unwrap();
        assert_eq!(
            pinned.to_string(),
            format!("ghcr.io/acme/app:v2@sha256:{HEX}")
        );
    }

    #[test]
    fn with_digest_keeps_the_tag_and_replaces_the_digest() {
        let r = Reference::parse("ghcr.io/acme/app:3f2a9c1").unwrap();
        assert!(!r.is_pinned());
        let p = r.with_digest(sha(HEX));
        assert!(p.is_pinned());
        assert_eq!(p.tag(), Some("3f2a9c1"));
        assert_eq!(
            p.to_string(),
            format!("ghcr.io/acme/app:3f2a9c1@sha256:{HEX}")
        );
        let other = "a".repeat(64);
        let q = p.with_digest(sha(&other));
        assert_eq!(q.digest().map(Digest::hex), Some(other.as_str()));
        assert_eq!(q.repository().to_string(), "ghcr.io/acme/app");
        assert!(!q.repository().is_pinned());
        assert_eq!(q.repository().tag(), None);
    }

    #[test]
    fn registry_host_maps_docker_hub() {
        let host = |s: &str| {
            Reference::parse(s)
                .unwrap()
                .registry_host()
                .map(str::to_owned)
        };
        assert_eq!(host("ubuntu").as_deref(), Some("registry-1.docker.io"));
        assert_eq!(
            host("index.docker.io/acme/app").as_deref(),
            Some("registry-1.docker.io")
        );
        assert_eq!(host("ghcr.io/acme/app").as_deref(), Some("ghcr.io"));
        assert_eq!(
            host("localhost:5000/app").as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(host("[::1]:5000/app").as_deref(), Some("[::1]:5000"));
        let strict = Reference::parse_strict("index.docker.io/acme/app").unwrap();
        assert_eq!(strict.domain(), Some("index.docker.io"));
        assert_eq!(strict.registry_host(), Some("registry-1.docker.io"));
        assert_eq!(
            Reference::parse_strict("ubuntu").unwrap().registry_host(),
            None
        );
    }

    #[test]
    fn serde_round_trip() {
        let r = Reference::parse(&format!("ghcr.io/acme/app:v1@sha256:{HEX}")).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"ghcr.io/acme/app:v1@sha256:{HEX}\""));
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        // Deserializing normalizes, like FromStr.
        let u: Reference = serde_json::from_str("\"ubuntu\"").unwrap();
        assert_eq!(u.to_string(), "docker.io/library/ubuntu");
        assert_eq!(u, "ubuntu".parse().unwrap());
        let err = serde_json::from_str::<Reference>("\"docker/Docker\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be lowercase"), "{err}");
    }

    #[test]
    fn path_is_limited_to_255_characters() {
        let ok = format!("ghcr.io/{}", "a".repeat(255));
        assert_eq!(Reference::parse(&ok).unwrap().path().len(), 255);
        let long = format!("ghcr.io/{}", "a".repeat(256));
        assert_eq!(
            Reference::parse(&long).unwrap_err(),
            ReferenceError::NameTooLong {
                input: long.clone(),
                length: 256
            }
        );
        // The limit applies to the path only, not to the domain or tag.
        let with_tag = format!(
            "{}.example.com/{}:{}",
            "d".repeat(50),
            "a".repeat(255),
            "t".repeat(128)
        );
        assert!(Reference::parse_strict(&with_tag).is_ok());
        // Normalization counts the implied `library/` prefix, as distribution does.
        let single = "a".repeat(250);
        assert!(Reference::parse_strict(&single).is_ok());
        assert!(matches!(
            Reference::parse(&single),
            Err(ReferenceError::NameTooLong { length: 258, .. })
        ));
    }

    /// `msg` without its `"…"` parts (honouring backslash escapes).
    fn strip_quoted(msg: &str) -> String {
        let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
        for c in msg.chars() {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, _, '"') => quoted = !quoted,
                (false, _, c) => out.push(c),
                (true, false, _) => {}
            }
        }
        out
    }

    #[test]
    fn errors_are_one_line_lowercase_and_quote_the_input() {
        let inputs = [
            "",
            "docker/Docker",
            "test:5000/Uppercase/lowercase:tag",
            "Foo_Bar/baz",
            "aa/asdf$$^/aa",
            "https://github.com/docker/docker",
            ":justtag",
            "app:",
            "app:.bad",
            "app@sha256:abc",
            "[::1]",
            "[fc00::1]:5000",
            "app@sha256:ffffffffffffffffffffffffffffffffff",
            "app@md5:ffffffffffffffffffffffffffffffff",
            "a//b",
            "foo.bar_baz/app",
            "line\nbreak",
            HEX,
        ];
        for input in inputs {
            let err = Reference::parse(input).unwrap_err();
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(
                msg.starts_with(&format!("invalid reference {input:?}: ")),
                "{msg}"
            );
            // The text outside quoted strings is lowercase.
            let rest = strip_quoted(&msg);
            assert_eq!(rest, rest.to_lowercase(), "{msg}");

            let core: crate::Error = err.clone().into();
            assert_eq!(core.kind(), ErrorKind::Invalid);
            assert_eq!(core.message(), msg);
            let source = std::error::Error::source(&core).unwrap();
            assert_eq!(source.to_string(), msg);
            assert!(!crate::error::display_chain(&core).contains('\n'));
        }
        // No suggestion when lowercasing alone would not make the name valid.
        assert_eq!(
            Reference::parse("docker/Do$cker").unwrap_err().to_string(),
            "invalid reference \"docker/Do$cker\": repository name \"docker/Do$cker\" must be lowercase"
        );
        assert_eq!(
            Reference::parse("docker/Docker").unwrap_err().to_string(),
            "invalid reference \"docker/Docker\": repository name \"docker/Docker\" must be lowercase, e.g. \"docker/docker\""
        );
    }

    #[test]
    fn only_sha256_and_sha512_digests_are_accepted() {
        let sha512 = "a".repeat(128);
        let r = Reference::parse(&format!("app@sha512:{sha512}")).unwrap();
        assert_eq!(
            r.digest().map(|d| d.algorithm()),
            Some(crate::Algorithm::Sha512)
        );
        // go-digest accepts sha384 (when crypto/sha512 is linked); Digest cannot represent or
        // verify it, so it is rejected with a clear error.
        let input = format!("app@sha384:{}", "a".repeat(96));
        assert_eq!(
            Reference::parse(&input).unwrap_err(),
            ReferenceError::UnsupportedDigestAlgorithm {
                input: input.clone(),
                algorithm: "sha384".into()
            }
        );
        let input = format!("app@sha256:{}", HEX.to_uppercase());
        assert!(matches!(
            Reference::parse(&input),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        // Shorter than 32 hex characters fails the grammar itself (ErrReferenceInvalidFormat).
        assert!(matches!(
            Reference::parse("app@sha256:abc"),
            Err(ReferenceError::InvalidFormat { .. })
        ));
    }

    #[test]
    fn parse_docker_adds_latest_and_drops_the_tag_of_pinned_references() {
        let d = |s: &str| Reference::parse_docker(s).unwrap().to_string();
        assert_eq!(d("ubuntu"), "docker.io/library/ubuntu:latest");
        assert_eq!(d("ubuntu:22.04"), "docker.io/library/ubuntu:22.04");
        assert_eq!(
            d(&format!("ubuntu@sha256:{HEX}")),
            format!("docker.io/library/ubuntu@sha256:{HEX}")
        );
        assert_eq!(
            d(&format!("ubuntu:22.04@sha256:{HEX}")),
            format!("docker.io/library/ubuntu@sha256:{HEX}")
        );
    }

    #[test]
    fn strict_and_normalized_differ_as_in_distribution() {
        let s = Reference::parse_strict("library/ubuntu").unwrap();
        assert_eq!((s.domain(), s.path()), (Some("library"), "ubuntu"));
        let s = Reference::parse_strict("foo/foo_bar.com").unwrap();
        assert_eq!((s.domain(), s.path()), (Some("foo"), "foo_bar.com"));
        let s = Reference::parse_strict("foo_bar/app").unwrap();
        assert_eq!((s.domain(), s.path()), (None, "foo_bar/app"));
        assert_eq!(s.familiar(), "foo_bar/app");
        // familiar() depends only on the parts, as FamiliarString does.
        let s = Reference::parse_strict("docker.io/library/redis:7").unwrap();
        assert_eq!(s.familiar(), "redis:7");

        // Go would accept this with an empty domain; wharf refuses a host-looking first
        // component that is not a valid host.
        let err = Reference::parse("foo.bar_baz/app").unwrap_err();
        assert!(
            err.to_string()
                .contains("registry host \"foo.bar_baz\" is not valid"),
            "{err}"
        );
        assert!(Reference::parse_strict("foo.bar_baz/app").is_ok());

        // A bare image id is a name for Parse, not for ParseNormalizedNamed.
        assert!(Reference::parse_strict(HEX).is_ok());
        assert!(matches!(
            Reference::parse(HEX),
            Err(ReferenceError::InvalidFormat { .. })
        ));
    }

    #[test]
    fn grammar_helpers() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "0", "a.b-c_d__e"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in [
            "", "A", ".a", "a.", "a..b", "a___b", "a_.b", "a-", "-a", "a-.b", "a b",
        ] {
            assert!(!is_path_component(bad), "{bad}");
        }
        for ok in [
            "localhost",
            "a",
            "A-b.c",
            "1.2.3.4:5",
            "[::1]",
            "[::1]:5000",
            "xn--n3h.com",
        ] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a:",
            "a:b",
            "[]",
            "[::1",
            "[::g]",
            "[::1]5000",
            "a_b",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_digest_pattern(&format!("sha256+b64.x-y_z:{HEX}")));
        assert!(!is_digest_pattern(&format!("1sha:{HEX}")));
        assert!(!is_digest_pattern(&format!("sha256-:{HEX}")));
        assert!(!is_digest_pattern(HEX));
    }
}

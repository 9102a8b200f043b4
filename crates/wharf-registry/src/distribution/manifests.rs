//! Manifests, tags and referrers.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LINK};
use reqwest::{Method, StatusCode, Url};
use wharf_core::registry::{
    ListTagsOptions, ManifestBytes, PushManifestOptions, ReferrersOptions, TagPrecondition,
    validate_tag,
};
use wharf_core::{Descriptor, Digest, Hasher, ImageIndex, ImageManifest, media_types};

use super::auth::Scope;
use super::transport::{self, ReqBody, header_str};
use super::{Inner, MAX_MANIFEST_SIZE, Request, check_repo};
use crate::RegistryError;

/// How long a conditional tag push waits before its second check: three times what the
/// check, the PUT and the first re-check took (a few round trips), within 50 ms..2 s.
fn settle_time(round_trips: std::time::Duration) -> std::time::Duration {
    (round_trips * 3).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(2),
    )
}

/// The manifest media types asked for (and read).
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Pages of a tag listing followed at most.
const MAX_TAG_PAGES: usize = 100_000;
/// The largest page of a tag listing read.
const MAX_TAG_PAGE: usize = 32 << 20;

impl Inner {
    /// `PUT /v2/<repo>/manifests/<tag or digest>` with the exact bytes.
    pub(super) async fn push_manifest(
        &self,
        repo: &str,
        manifest: &ManifestBytes,
        opts: &PushManifestOptions,
    ) -> wharf_core::Result<Descriptor> {
        check_repo(repo)?;
        let desc = &manifest.descriptor;
        let mut hasher = Hasher::new(desc.digest.algorithm());
        hasher.update(&manifest.bytes);
        let actual = hasher.finish();
        if actual != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what: "the manifest to push".into(),
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            }
            .into());
        }
        let reference = match &opts.tag {
            Some(tag) => {
                validate_tag(tag)?;
                tag.clone()
            }
            None => desc.digest.to_string(),
        };
        if self.already_points_at(repo, &reference, &desc.digest).await {
            tracing::debug!(repo, reference, "manifest already there, not writing");
            return Ok(desc.clone());
        }
        // The distribution API has no conditional tag update: check before the PUT, and
        // re-resolve after it, so a concurrent writer is named instead of silently winning.
        let conditional = opts
            .tag
            .as_ref()
            .filter(|_| opts.if_tag != TagPrecondition::Any);
        let started = std::time::Instant::now();
        if let Some(tag) = conditional {
            let current = self.tag_digest(repo, tag).await?;
            opts.if_tag
                .check(repo, tag, current.as_ref(), &desc.digest)?;
        }
        self.put_manifest(
            repo,
            &reference,
            &desc.media_type,
            manifest.bytes.clone(),
            &desc.digest,
        )
        .await?;
        if let Some(tag) = conditional {
            // Twice: at once, and again after a settle time of a few round trips, longer
            // than another writer's check-to-PUT window, so a writer that checked before
            // this PUT and wrote after it is seen by one of the two sides.
            self.expect_tag(repo, tag, &desc.digest).await?;
            tokio::time::sleep(settle_time(started.elapsed())).await;
            self.expect_tag(repo, tag, &desc.digest).await?;
        }
        Ok(desc.clone())
    }

    /// Fail with a conflict unless `tag` holds `digest`, just pushed to it.
    async fn expect_tag(&self, repo: &str, tag: &str, digest: &Digest) -> wharf_core::Result<()> {
        let now = self.tag_digest(repo, tag).await?;
        if now.as_ref() == Some(digest) {
            return Ok(());
        }
        Err(wharf_core::Error::conflict(format!(
            "tag {repo}:{tag} holds {} right after {digest} was pushed to it: another writer pushed the same tag at the same time",
            now.map_or_else(|| "nothing".to_owned(), |d| d.to_string()),
        )))
    }

    /// What `tag` holds now (`None`: no such tag).
    async fn tag_digest(&self, repo: &str, tag: &str) -> wharf_core::Result<Option<Digest>> {
        match self.resolve_tag(repo, tag).await {
            Ok(d) => Ok(Some(d.digest)),
            Err(e) if e.kind() == wharf_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `reference` already names the manifest `digest` (a `HEAD`), so a re-push of an
    /// unchanged image writes nothing. Any doubt (no digest header, an error) means no.
    async fn already_points_at(&self, repo: &str, reference: &str, digest: &Digest) -> bool {
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let req = Request::new(Method::HEAD, url, Scope::Push(repo.to_owned()))
            .header(ACCEPT, ACCEPT_MANIFESTS);
        match self.send(req).await {
            Ok(resp) if resp.status() == StatusCode::OK => {
                header_str(resp.headers(), "docker-content-digest").map(str::trim)
                    == Some(digest.to_string().as_str())
            }
            _ => false,
        }
    }

    /// The `PUT` itself; `digest` is what the registry must have stored.
    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let scope = Scope::Push(repo.to_owned());
        // A registry re-committing a blob another pusher uploaded at the same moment
        // answers DIGEST_INVALID for it while the bytes move: asked again, a moment later,
        // it has them. Only that answer is asked again, at most three times.
        let mut attempt = 0;
        let resp = loop {
            let req = Request::new(Method::PUT, url.clone(), scope.clone())
                .header(CONTENT_TYPE, media_type)
                .body(ReqBody::Bytes(bytes.clone()));
            let resp = self.send(req).await?;
            if resp.status() != StatusCode::BAD_REQUEST || attempt == 3 {
                break resp;
            }
            let body = transport::read_limited(resp, 64 << 10)
                .await
                .unwrap_or_default();
            if !transport::error_codes(&body)
                .iter()
                .any(|c| c == "DIGEST_INVALID")
            {
                return Err(manifest_refused(self, repo, digest, (&url, 400), &body));
            }
            attempt += 1;
            tracing::debug!(
                repo,
                attempt,
                "manifest PUT met a blob being committed: again"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
        };
        let status = resp.status();
        if status.is_success() {
            if let Some(stored) = header_str(resp.headers(), "docker-content-digest")
                && stored != digest.to_string()
                && digest.algorithm() == wharf_core::Algorithm::Sha256
            {
                return Err(RegistryError::DigestMismatch {
                    what: format!("the manifest stored in {}", self.location(repo)),
                    expected: digest.to_string(),
                    actual: stored.to_owned(),
                });
            }
            return Ok(());
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND {
            let body = transport::read_limited(resp, 64 << 10)
                .await
                .unwrap_or_default();
            return Err(manifest_refused(
                self,
                repo,
                digest,
                (&url, status.as_u16()),
                &body,
            ));
        }
        Err(self.error_for(&Method::PUT, &url, &scope, resp).await)
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the exact bytes and their media type, or
    /// `None` on 404.
    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: Scope,
    ) -> Result<Option<(String, Bytes)>, RegistryError> {
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let req =
            Request::new(Method::GET, url.clone(), scope.clone()).header(ACCEPT, ACCEPT_MANIFESTS);
        let resp = self.send(req).await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.error_for(&Method::GET, &url, &scope, resp).await),
        }
        let what = || format!("manifest {reference} in {}", self.location(repo));
        if let Some(len) =
            header_str(resp.headers(), "content-length").and_then(|v| v.trim().parse::<u64>().ok())
            && len > MAX_MANIFEST_SIZE
        {
            return Err(too_large(&what()));
        }
        let content_type = header_str(resp.headers(), "content-type")
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_owned());
        let limit = MAX_MANIFEST_SIZE as usize + 1;
        let bytes = transport::read_limited(resp, limit)
            .await
            .map_err(|e| transport::transport_error(&Method::GET, &url, e))?;
        if bytes.len() >= limit {
            return Err(too_large(&what()));
        }
        let media_type = media_type_of(content_type.as_deref(), &bytes).ok_or_else(|| {
            RegistryError::Unsupported {
                what: format!(
                    "the media type {:?} of {}",
                    content_type.as_deref().unwrap_or("(none)"),
                    what()
                ),
                hint: "wharf reads OCI image manifests and indexes and Docker schema 2 manifests and lists".into(),
            }
        })?;
        Ok(Some((media_type, bytes)))
    }

    /// Fetches a manifest by digest and checks its bytes hash to it.
    pub(super) async fn fetch_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        scope: Scope,
    ) -> Result<ManifestBytes, RegistryError> {
        let Some((media_type, bytes)) = self.get_manifest(repo, &digest.to_string(), scope).await?
        else {
            return Err(RegistryError::NotFound {
                what: format!("manifest {digest}"),
                location: self.location(repo),
            });
        };
        let mut hasher = Hasher::new(digest.algorithm());
        hasher.update(&bytes);
        let actual = hasher.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest fetched from {}", self.location(repo)),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let mut manifest = ManifestBytes::new(media_type, bytes);
        manifest.descriptor.digest = digest.clone();
        Ok(manifest)
    }

    /// `HEAD` the tag; `GET` it when the registry does not answer `HEAD` with a digest.
    pub(super) async fn resolve_tag(
        &self,
        repo: &str,
        tag: &str,
    ) -> wharf_core::Result<Descriptor> {
        check_repo(repo)?;
        validate_tag(tag)?;
        let scope = Scope::Pull(repo.to_owned());
        let url = self.url(&format!("{repo}/manifests/{tag}"));
        let req = Request::new(Method::HEAD, url, scope.clone()).header(ACCEPT, ACCEPT_MANIFESTS);
        let resp = self.send(req).await?;
        let not_found = || RegistryError::NotFound {
            what: format!("tag {tag}"),
            location: self.location(repo),
        };
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(not_found().into());
        }
        if resp.status() == StatusCode::OK {
            let h = resp.headers();
            let digest =
                header_str(h, "docker-content-digest").and_then(|d| Digest::parse(d.trim()).ok());
            let media_type = header_str(h, "content-type")
                .map(|ct| ct.split(';').next().unwrap_or("").trim().to_owned())
                .filter(|mt| media_types::is_manifest(mt));
            let size = header_str(h, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
            if let (Some(digest), Some(media_type), Some(size)) = (digest, media_type, size) {
                return Ok(Descriptor::new(media_type, digest, size));
            }
        }
        // No usable HEAD answer: read the manifest and hash it.
        let (media_type, bytes) = self
            .get_manifest(repo, tag, scope)
            .await?
            .ok_or_else(not_found)?;
        Ok(Descriptor::for_bytes(media_type, &bytes))
    }

    /// Points `tag` at the stored manifest `digest` by re-putting its exact bytes.
    pub(super) async fn tag(
        &self,
        repo: &str,
        digest: &Digest,
        tag: &str,
    ) -> wharf_core::Result<()> {
        check_repo(repo)?;
        validate_tag(tag)?;
        if self.already_points_at(repo, tag, digest).await {
            return Ok(());
        }
        let scope = Scope::Push(repo.to_owned());
        let manifest = self.fetch_manifest(repo, digest, scope).await?;
        self.put_manifest(
            repo,
            tag,
            &manifest.descriptor.media_type,
            manifest.bytes,
            digest,
        )
        .await?;
        Ok(())
    }

    /// All tags, following `Link: <…>; rel="next"` pages, sorted.
    pub(super) async fn list_tags(
        &self,
        repo: &str,
        opts: &ListTagsOptions,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let scope = Scope::Pull(repo.to_owned());
        let mut url = self.url(&format!("{repo}/tags/list"));
        url.query_pairs_mut()
            .append_pair("n", &self.tag_page_size.to_string());
        let mut tags = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(Request::new(Method::GET, url.clone(), scope.clone()))
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        what: "repository".into(),
                        location: self.location(repo),
                    });
                }
                _ => return Err(self.error_for(&Method::GET, &url, &scope, resp).await),
            }
            let next = next_link(resp.headers(), &url);
            let body = transport::read_limited(resp, MAX_TAG_PAGE)
                .await
                .map_err(|e| transport::transport_error(&Method::GET, &url, e))?;
            let page: Page = serde_json::from_slice(&body).map_err(|e| {
                RegistryError::invalid(
                    format!("the tag list of {}", self.location(repo)),
                    format!("not a tag list: {e}"),
                )
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) if seen.insert(next.to_string()) => url = next,
                _ => break,
            }
        }
        tags.sort();
        tags.dedup();
        if let Some(limit) = opts.limit {
            tags.truncate(limit);
        }
        Ok(tags)
    }

    /// The referrers API, or the `sha256-<hex>` tag schema when the registry has none.
    pub(super) async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        opts: &ReferrersOptions,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let scope = Scope::Pull(repo.to_owned());
        let mut url = self.url(&format!("{repo}/referrers/{subject}"));
        if let Some(t) = &opts.artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let req = Request::new(Method::GET, url.clone(), scope.clone())
            .header(ACCEPT, media_types::OCI_INDEX);
        let resp = self.send(req).await?;
        let mut found = match resp.status() {
            StatusCode::OK => {
                let body = transport::read_limited(resp, MAX_MANIFEST_SIZE as usize + 1)
                    .await
                    .map_err(|e| transport::transport_error(&Method::GET, &url, e))?;
                if body.len() as u64 > MAX_MANIFEST_SIZE {
                    return Err(too_large(&format!(
                        "the referrers of {subject} in {}",
                        self.location(repo)
                    )));
                }
                ImageIndex::from_slice(&body, &format!("the referrers of {subject}"))
                    .map_err(|e| {
                        RegistryError::invalid(
                            format!("the referrers answer of {}", self.location(repo)),
                            e.to_string(),
                        )
                    })?
                    .manifests
            }
            // No referrers API (distribution 2.8 answers 404): the tag schema.
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {
                tracing::debug!(repo, %subject, "no referrers API; reading the sha256-<hex> tag");
                self.referrers_by_tag(repo, subject, scope).await?
            }
            _ => return Err(self.error_for(&Method::GET, &url, &scope, resp).await),
        };
        if let Some(t) = &opts.artifact_type {
            found.retain(|d| d.artifact_type.as_deref() == Some(t.as_str()));
        }
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        found.dedup_by(|a, b| a.digest == b.digest);
        Ok(found)
    }

    /// Whether the registry answers the referrers API: a registry that has it answers any
    /// subject, even an unknown one, with an (empty) index; distribution 2.8 answers 404.
    pub(super) async fn has_referrers_api(&self, repo: &str) -> Result<bool, RegistryError> {
        let scope = Scope::Pull(repo.to_owned());
        let probe = Digest::sha256_of(b"wharf referrers API probe");
        let url = self.url(&format!("{repo}/referrers/{probe}"));
        let req = Request::new(Method::GET, url.clone(), scope.clone())
            .header(ACCEPT, media_types::OCI_INDEX);
        let resp = self.send(req).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => Ok(false),
            _ => Err(self.error_for(&Method::GET, &url, &scope, resp).await),
        }
    }

    /// The tag-schema fallback: an index at `sha256-<hex>` lists the referrers; a single
    /// manifest there whose `subject` is the digest (as cosign-style tools push) is one.
    async fn referrers_by_tag(
        &self,
        repo: &str,
        subject: &Digest,
        scope: Scope,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let tag = subject.tag_form();
        let Some((media_type, bytes)) = self.get_manifest(repo, &tag, scope).await? else {
            return Ok(Vec::new());
        };
        let what = format!("{}:{tag}", self.location(repo));
        let invalid = |e: wharf_core::Error| RegistryError::invalid(what.clone(), e.to_string());
        if media_type == media_types::OCI_INDEX || media_type == media_types::DOCKER_MANIFEST_LIST {
            return Ok(ImageIndex::from_slice(&bytes, &what)
                .map_err(invalid)?
                .manifests);
        }
        let manifest = ImageManifest::from_slice(&bytes, &what).map_err(invalid)?;
        if manifest.subject.as_ref().map(|s| &s.digest) != Some(subject) {
            return Ok(Vec::new());
        }
        let mut desc = Descriptor::for_bytes(media_type, &bytes)
            .with_artifact_type(manifest.effective_artifact_type());
        desc.annotations = manifest.annotations;
        Ok(vec![desc])
    }
}

/// The error for a manifest over the size limit.
fn too_large(what: &str) -> RegistryError {
    RegistryError::invalid(
        what,
        format!(
            "larger than the {MAX_MANIFEST_SIZE}-byte manifest limit; registries refuse such manifests, so this one is suspect"
        ),
    )
}

/// The media type of a fetched manifest: the `Content-Type` when it names a manifest type,
/// else the `mediaType` field of the JSON.
fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> Option<String> {
    if let Some(ct) = content_type
        && media_types::is_manifest(ct)
    {
        return Some(ct.to_owned());
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe.media_type {
        Some(mt) if media_types::is_manifest(&mt) => Some(mt),
        Some(_) => None,
        // OCI allows leaving `mediaType` out: tell manifest and index apart by shape.
        None if probe.manifests.is_some() => Some(media_types::OCI_INDEX.to_owned()),
        None if probe.config.is_some() => Some(media_types::OCI_MANIFEST.to_owned()),
        None => None,
    }
}

/// The `rel="next"` target of a `Link` header, resolved against `current`.
fn next_link(headers: &HeaderMap, current: &Url) -> Option<Url> {
    for value in headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()) {
        for link in value.split(',') {
            let link = link.trim();
            let Some(rest) = link.strip_prefix('<') else {
                continue;
            };
            let Some((target, params)) = rest.split_once('>') else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return current.join(target).ok();
            }
        }
    }
    None
}

/// A manifest `PUT` answered 400 or 404: blobs it names unknown, or another refusal.
fn manifest_refused(
    client: &Inner,
    repo: &str,
    digest: &Digest,
    (url, status): (&Url, u16),
    body: &[u8],
) -> RegistryError {
    let codes = transport::error_codes(body);
    if codes
        .iter()
        .any(|c| c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN")
    {
        return RegistryError::NotFound {
            what: format!(
                "content named by manifest {digest} ({}); push its blobs and child manifests first",
                transport::error_message(body)
            ),
            location: client.location(repo),
        };
    }
    RegistryError::Http {
        method: "PUT".into(),
        url: transport::show_url(url),
        status,
        message: transport::error_message(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn follows_next_links() {
        let current = Url::parse("http://127.0.0.1:5000/v2/a/tags/list?n=2").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#),
        );
        assert_eq!(
            next_link(&h, &current).unwrap().as_str(),
            "http://127.0.0.1:5000/v2/a/tags/list?last=b&n=2"
        );
        h.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://x/prev>; rel="prev", <https://x/v2/a/tags/list?last=d>; rel=next"#,
            ),
        );
        assert_eq!(
            next_link(&h, &current).unwrap().as_str(),
            "https://x/v2/a/tags/list?last=d"
        );
        assert!(next_link(&HeaderMap::new(), &current).is_none());
    }

    #[test]
    fn media_types_from_header_or_body() {
        assert_eq!(
            media_type_of(Some(media_types::OCI_INDEX), b"{}").as_deref(),
            Some(media_types::OCI_INDEX)
        );
        assert_eq!(
            media_type_of(
                Some("application/json"),
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            )
            .as_deref(),
            Some(media_types::DOCKER_MANIFEST_V2)
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(media_types::OCI_INDEX)
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"config":{}}"#).as_deref(),
            Some(media_types::OCI_MANIFEST)
        );
        assert_eq!(
            media_type_of(
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                br#"{"schemaVersion":1}"#
            ),
            None
        );
    }
}

//! Blobs: existence, verified streaming downloads, and streamed, resumable uploads.

use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};
use tokio::io::AsyncReadExt;
use wharf_core::registry::PushBlobOptions;
use wharf_core::{BlobStream, Descriptor, Digest, Hasher};

use super::auth::Scope;
use super::transport::{self, ReqBody, header_str};
use super::{Inner, Request, check_repo};
use crate::RegistryError;

/// The media type of blob descriptors returned by pushes (a registry does not know better).
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";
/// Read buffer for file uploads.
const FILE_READ_BUFFER: usize = 256 << 10;

impl Inner {
    /// `HEAD /v2/<repo>/blobs/<digest>`: the size if the blob exists.
    pub(super) async fn blob_head(
        &self,
        repo: &str,
        digest: &Digest,
        scope: Scope,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let req = Request::new(Method::HEAD, url.clone(), scope.clone());
        let resp = self.send(req).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                header_str(resp.headers(), "content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error_for(&Method::HEAD, &url, &scope, resp).await),
        }
    }

    /// `GET /v2/<repo>/blobs/<digest>` as a stream verified against the digest.
    pub(super) async fn fetch_blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        check_repo(repo)?;
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let scope = Scope::Pull(repo.to_owned());
        let resp = self
            .send(Request::new(Method::GET, url.clone(), scope.clone()))
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    what: format!("blob {digest}"),
                    location: self.location(repo),
                });
            }
            _ => return Err(self.error_for(&Method::GET, &url, &scope, resp).await),
        }
        let expected_len =
            header_str(resp.headers(), "content-length").and_then(|v| v.trim().parse().ok());
        Ok(Box::pin(Verifying {
            inner: Box::pin(resp.bytes_stream()),
            hasher: Some(Hasher::new(digest.algorithm())),
            expected: digest.clone(),
            expected_len,
            received: 0,
            url: transport::show_url(&url),
            done: false,
        }))
    }

    /// Pushes a blob from a stream (see the module docs for the strategy).
    pub(super) async fn push_stream(
        &self,
        repo: &str,
        digest: &Digest,
        data: BlobStream,
        opts: &PushBlobOptions,
    ) -> Result<Descriptor, RegistryError> {
        check_repo(repo)?;
        let scope = Scope::Push(repo.to_owned());
        if let Some(size) = self.blob_head(repo, digest, scope).await? {
            tracing::debug!(%digest, repo, "blob already present, not uploading");
            return Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), size));
        }
        let uploaded = self.upload_stream(repo, digest, data, opts).await;
        self.or_pushed_by_another(repo, digest, uploaded).await
    }

    /// A failed upload of a blob another pusher completed meanwhile is a success: blobs are
    /// content-addressed, and the registry checked that one against its digest. (Processes
    /// pushing the same signature payload at once make some registries answer the loser with
    /// `DIGEST_INVALID`.)
    async fn or_pushed_by_another(
        &self,
        repo: &str,
        digest: &Digest,
        uploaded: Result<Descriptor, RegistryError>,
    ) -> Result<Descriptor, RegistryError> {
        match uploaded {
            Ok(d) => Ok(d),
            Err(e) => match self
                .blob_head(repo, digest, Scope::Push(repo.to_owned()))
                .await
            {
                Ok(Some(size)) => {
                    tracing::debug!(%digest, repo, error = %e, "upload failed but the blob is there: pushed by another");
                    Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), size))
                }
                _ => Err(e),
            },
        }
    }

    /// Uploads a blob the registry does not have from a stream: mount, one `PUT`, or chunks.
    async fn upload_stream(
        &self,
        repo: &str,
        digest: &Digest,
        data: BlobStream,
        opts: &PushBlobOptions,
    ) -> Result<Descriptor, RegistryError> {
        let mut session = None;
        if let Some(from) = &opts.mount_from {
            match self.mount(repo, digest, from).await? {
                Mount::Mounted => {
                    let size = match opts.size {
                        Some(size) => size,
                        None => self
                            .blob_head(repo, digest, Scope::Push(repo.to_owned()))
                            .await?
                            .unwrap_or(0),
                    };
                    return Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), size));
                }
                Mount::Started(s) => session = Some(s),
                Mount::Refused => {}
            }
        }
        let mut reader = ChunkReader::new(data, digest, opts.size);
        let first = match reader.next_chunk(self.chunk_size).await {
            Ok(first) => first,
            Err(e) => {
                cancel(session).await;
                return Err(e);
            }
        };
        let last = match reader.at_end().await {
            Ok(last) => last,
            Err(e) => {
                cancel(session).await;
                return Err(e);
            }
        };
        if last {
            // Small blob: verified before anything is sent, then one PUT.
            let size = first.len() as u64;
            if let Err(e) = reader.verify(repo, digest) {
                cancel(session).await;
                return Err(e);
            }
            let session = match session {
                Some(s) => s,
                None => Session::start(self, repo, digest).await?,
            };
            session.finish(ReqBody::Bytes(first)).await?;
            return Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), size));
        }
        let mut session = match session {
            Some(s) => s,
            None => Session::start(self, repo, digest).await?,
        };
        match self.upload_chunks(&mut session, &mut reader, first).await {
            Ok(()) => {}
            Err(e) => {
                session.cancel().await;
                return Err(e);
            }
        }
        let size = reader.total;
        if let Err(e) = reader.verify(repo, digest) {
            session.cancel().await;
            return Err(e);
        }
        session.finish(ReqBody::Empty).await?;
        Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), size))
    }

    /// Sends `first` and every following chunk of `reader` with `PATCH`.
    async fn upload_chunks(
        &self,
        session: &mut Session<'_>,
        reader: &mut ChunkReader,
        first: Bytes,
    ) -> Result<(), RegistryError> {
        let mut chunk = first;
        loop {
            let start = session.offset;
            let end = start + chunk.len() as u64;
            let held = chunk.clone();
            session
                .send_until(end, start, move |from| {
                    // In memory: a PATCH refused with 401 can be re-sent after re-authenticating.
                    Ok(ReqBody::Bytes(held.slice((from - start) as usize..)))
                })
                .await?;
            drop(chunk);
            chunk = reader.next_chunk(self.chunk_size).await?;
            if chunk.is_empty() {
                return Ok(());
            }
        }
    }

    /// Asks the registry to mount `digest` from `from` into `repo`.
    async fn mount<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: &str,
    ) -> Result<Mount<'a>, RegistryError> {
        if check_repo(from).is_err() || from == repo {
            return Ok(Mount::Refused);
        }
        let mut url = self.url(&format!("{repo}/blobs/uploads/"));
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let scope = Scope::Mount {
            repo: repo.to_owned(),
            from: from.to_owned(),
        };
        // A repeated mount request is harmless (at worst an unused session is left behind).
        let req = Request::new(Method::POST, url, scope).idempotent(true);
        let resp = match self.send(req).await {
            Ok(resp) => resp,
            // No read access to `from`, or the registry refuses mounts: upload instead.
            Err(e) if e.kind() != wharf_core::ErrorKind::Transient => return Ok(Mount::Refused),
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::CREATED => {
                tracing::debug!(%digest, repo, from, "blob mounted");
                Ok(Mount::Mounted)
            }
            StatusCode::ACCEPTED => {
                let location = self.location_of(resp.headers(), repo)?;
                Ok(Mount::Started(Session {
                    inner: self,
                    repo,
                    digest,
                    location,
                    offset: 0,
                }))
            }
            _ => Ok(Mount::Refused),
        }
    }

    /// The upload `Location` of a response, resolved against the registry.
    fn location_of(&self, headers: &HeaderMap, repo: &str) -> Result<Url, RegistryError> {
        let raw = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::invalid(
                    format!("the upload answer of {}", self.location(repo)),
                    "it has no Location header; the registry does not follow the distribution spec",
                )
            })?;
        self.base.join(raw).map_err(|_| {
            RegistryError::invalid(
                format!("the upload answer of {}", self.location(repo)),
                "its Location header is not a URL",
            )
        })
    }

    /// Pushes the file at `path` as blob `digest`.
    pub(super) async fn push_file(
        &self,
        repo: &str,
        path: &Path,
        digest: &Digest,
    ) -> Result<Descriptor, RegistryError> {
        check_repo(repo)?;
        let size = crate::fs::metadata(path)
            .await
            .map_err(|e| RegistryError::io("reading the metadata of", path, e))?
            .len();
        if let Some(held) = self
            .blob_head(repo, digest, Scope::Push(repo.to_owned()))
            .await?
        {
            tracing::debug!(%digest, repo, "blob already present, not uploading");
            return Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), held));
        }
        if size <= self.chunk_size as u64 {
            // Small: read it, verify it, then one PUT.
            let bytes = crate::fs::read(path)
                .await
                .map_err(|e| RegistryError::io("reading", path, e))?;
            let mut opts = PushBlobOptions::default();
            opts.size = Some(size);
            let data = wharf_core::registry::blob_stream_from(bytes);
            let uploaded = self.upload_stream(repo, digest, data, &opts).await;
            return self.or_pushed_by_another(repo, digest, uploaded).await;
        }
        let hashed = Arc::new(Mutex::new(HashState {
            hasher: Hasher::new(digest.algorithm()),
            upto: 0,
        }));
        let mut session = Session::start(self, repo, digest).await?;
        let mut restarts = 0;
        loop {
            match self.upload_file(&mut session, path, size, &hashed).await {
                Ok(()) => break,
                Err(SendError::Gone) if restarts + 1 < self.retry.max_attempts => {
                    restarts += 1;
                    tracing::debug!(%digest, repo, restarts, "upload session lost; starting over");
                    session = Session::start(self, repo, digest).await?;
                }
                Err(SendError::Gone) => {
                    return Err(RegistryError::UploadLost {
                        repo: repo.to_owned(),
                        digest: digest.to_string(),
                        detail: format!("the upload session disappeared {} times", restarts + 1),
                    });
                }
                Err(SendError::Failed(e)) => {
                    session.cancel().await;
                    return Err(e);
                }
            }
        }
        let (actual, upto) = {
            let state = hashed.lock().unwrap_or_else(|p| p.into_inner());
            (state.hasher.clone().finish(), state.upto)
        };
        if upto != size || &actual != digest {
            session.cancel().await;
            return Err(RegistryError::DigestMismatch {
                what: format!("file {}", path.display()),
                expected: digest.to_string(),
                actual: if upto == size {
                    actual.to_string()
                } else {
                    format!("a hash over {upto} of its {size} bytes")
                },
            });
        }
        session.finish(ReqBody::Empty).await?;
        Ok(Descriptor::new(BLOB_MEDIA_TYPE, digest.clone(), size))
    }

    /// Sends the file from the session's offset to its end in chunk-sized `PATCH`es.
    async fn upload_file(
        &self,
        session: &mut Session<'_>,
        path: &Path,
        size: u64,
        hashed: &Arc<Mutex<HashState>>,
    ) -> Result<(), SendError> {
        while session.offset < size {
            let end = (session.offset + self.file_chunk_size).min(size);
            session
                .send_range(end, 0, |from| {
                    file_body(path, from, end - from, Arc::clone(hashed))
                        .map(|body| ReqBody::Once(Some(body), end - from))
                })
                .await?;
        }
        Ok(())
    }
}

/// Best-effort cancel of an optional session.
async fn cancel(session: Option<Session<'_>>) {
    if let Some(s) = session {
        s.cancel().await;
    }
}

/// The outcome of a mount request.
enum Mount<'a> {
    /// The blob is now in the repository.
    Mounted,
    /// The registry started an ordinary upload instead.
    Started(Session<'a>),
    /// Not possible: upload.
    Refused,
}

/// How far the file's bytes were hashed (each byte once, in order, also across resends).
struct HashState {
    hasher: Hasher,
    upto: u64,
}

/// A streamed request body over `len` bytes of the file from `from`, hashing bytes not
/// hashed before.
fn file_body(
    path: &Path,
    from: u64,
    len: u64,
    hashed: Arc<Mutex<HashState>>,
) -> Result<reqwest::Body, RegistryError> {
    let mut file = std::fs::File::open(path).map_err(|e| RegistryError::io("opening", path, e))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| RegistryError::io("seeking in", path, e))?;
    let file = tokio::fs::File::from_std(file).take(len);
    let mut pos = from;
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file, FILE_READ_BUFFER).map(move |piece| {
            let piece = piece?;
            let end = pos + piece.len() as u64;
            let mut state = hashed.lock().unwrap_or_else(|p| p.into_inner());
            if end > state.upto && pos <= state.upto {
                let skip = (state.upto - pos) as usize;
                state.hasher.update(&piece[skip..]);
                state.upto = end;
            }
            pos = end;
            Ok::<Bytes, std::io::Error>(piece)
        });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Why sending a range failed.
enum SendError {
    /// The registry no longer knows the upload session.
    Gone,
    /// Anything else.
    Failed(RegistryError),
}

impl From<RegistryError> for SendError {
    fn from(e: RegistryError) -> Self {
        SendError::Failed(e)
    }
}

/// A blob upload session: its current `Location` and how many bytes the registry holds.
struct Session<'a> {
    inner: &'a Inner,
    repo: &'a str,
    digest: &'a Digest,
    location: Url,
    offset: u64,
}

impl<'a> Session<'a> {
    /// `POST /v2/<repo>/blobs/uploads/` → 202 with a `Location`.
    async fn start(
        inner: &'a Inner,
        repo: &'a str,
        digest: &'a Digest,
    ) -> Result<Self, RegistryError> {
        let url = inner.url(&format!("{repo}/blobs/uploads/"));
        let scope = Scope::Push(repo.to_owned());
        // Starting a session twice only leaves an unused one behind: safe to retry.
        let req = Request::new(Method::POST, url.clone(), scope.clone()).idempotent(true);
        let resp = inner.send(req).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(inner.error_for(&Method::POST, &url, &scope, resp).await);
        }
        let location = inner.location_of(resp.headers(), repo)?;
        Ok(Self {
            inner,
            repo,
            digest,
            location,
            offset: 0,
        })
    }

    fn scope(&self) -> Scope {
        Scope::Push(self.repo.to_owned())
    }

    /// Takes the new `Location` and `Range` of an upload response; `expected` is where the
    /// registry should be now (used to read the ambiguous `0-0`).
    fn progress(&mut self, headers: &HeaderMap, expected: u64) -> Result<u64, RegistryError> {
        if headers.contains_key(LOCATION) {
            self.location = self.inner.location_of(headers, self.repo)?;
        }
        Ok(header_str(headers, "range")
            .and_then(|r| held_bytes(r, expected))
            .unwrap_or(expected))
    }

    /// Sends bytes up to `end` (exclusive), resuming after failures. `body_from(offset)`
    /// makes a body from `offset` to `end`; offsets before `replayable` cannot be re-sent.
    /// When the registry loses the session and everything can be re-sent, a new session
    /// starts from zero.
    async fn send_until<F>(
        &mut self,
        end: u64,
        replayable: u64,
        mut body_from: F,
    ) -> Result<(), RegistryError>
    where
        F: FnMut(u64) -> Result<ReqBody, RegistryError>,
    {
        let mut restarts = 0;
        loop {
            match self.send_range(end, replayable, &mut body_from).await {
                Ok(()) => return Ok(()),
                Err(SendError::Failed(e)) => return Err(e),
                Err(SendError::Gone)
                    if replayable == 0 && restarts + 1 < self.inner.retry.max_attempts =>
                {
                    restarts += 1;
                    tracing::debug!(digest = %self.digest, "upload session lost; starting over");
                    let fresh = Session::start(self.inner, self.repo, self.digest).await?;
                    self.location = fresh.location;
                    self.offset = 0;
                }
                Err(SendError::Gone) => {
                    return Err(RegistryError::UploadLost {
                        repo: self.repo.to_owned(),
                        digest: self.digest.to_string(),
                        detail: if replayable == 0 {
                            format!("the upload session disappeared {} times", restarts + 1)
                        } else {
                            format!(
                                "the upload session disappeared, and the stream can only be re-sent from byte {replayable}"
                            )
                        },
                    });
                }
            }
        }
    }

    /// The resume loop behind [`Session::send_until`].
    async fn send_range<F>(
        &mut self,
        end: u64,
        replayable: u64,
        mut body_from: F,
    ) -> Result<(), SendError>
    where
        F: FnMut(u64) -> Result<ReqBody, RegistryError>,
    {
        let retry = self.inner.retry;
        let mut failures = 0u32;
        while self.offset < end {
            let start = self.offset;
            let body = body_from(start)?;
            let len = body.len();
            // Never retried as is (`idempotent` is false for PATCH): a failure is resumed
            // below from what the registry reports it holds.
            let req = Request::new(Method::PATCH, self.location.clone(), self.scope())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, &format!("{start}-{}", start + len - 1))
                .body(body);
            let failure = match self.inner.send(req).await {
                Ok(resp)
                    if resp.status() == StatusCode::ACCEPTED
                        || resp.status() == StatusCode::NO_CONTENT =>
                {
                    let held = self.progress(resp.headers(), start + len)?;
                    self.resume_at(held, end, replayable)?;
                    if held > start {
                        failures = 0;
                        continue;
                    }
                    // Accepted, yet nothing was added: count it as a failure.
                    (
                        RegistryError::invalid(
                            format!(
                                "the upload of {} to {}",
                                self.digest,
                                self.inner.location(self.repo)
                            ),
                            "the registry accepted a chunk but kept none of it; push the blob again",
                        ),
                        None,
                    )
                }
                // 416: the registry disagrees about the offset; its status says where it is.
                Ok(resp)
                    if transport::retryable_status(resp.status())
                        || resp.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
                {
                    let wait = transport::retry_after(resp.headers());
                    let url = self.location.clone();
                    (
                        self.inner
                            .error_for(&Method::PATCH, &url, &self.scope(), resp)
                            .await,
                        wait,
                    )
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => return Err(SendError::Gone),
                Ok(resp) => {
                    let url = self.location.clone();
                    return Err(self
                        .inner
                        .error_for(&Method::PATCH, &url, &self.scope(), resp)
                        .await
                        .into());
                }
                Err(e) if e.kind() == wharf_core::ErrorKind::Transient => (e, None),
                Err(e) => return Err(e.into()),
            };
            let (err, wait) = failure;
            failures += 1;
            tracing::debug!(
                offset = start,
                failures,
                error = %wharf_core::display_chain(&err),
                "chunk upload failed; asking the registry where to resume"
            );
            if failures >= retry.max_attempts {
                return Err(err.into());
            }
            tokio::time::sleep(retry.delay(failures, wait)).await;
            let held = self.status(start).await?;
            self.resume_at(held, end, replayable)?;
        }
        Ok(())
    }

    /// Moves the offset to `held`, the bytes the registry reports, unless that is past what
    /// was sent or before what can be re-sent.
    fn resume_at(&mut self, held: u64, end: u64, replayable: u64) -> Result<(), RegistryError> {
        if held > end {
            return Err(self.overreach(held, end));
        }
        if held < replayable {
            return Err(RegistryError::UploadLost {
                repo: self.repo.to_owned(),
                digest: self.digest.to_string(),
                detail: format!(
                    "it holds {held} bytes, but the stream can only be re-sent from byte {replayable}"
                ),
            });
        }
        self.offset = held;
        Ok(())
    }

    fn overreach(&self, held: u64, end: u64) -> RegistryError {
        RegistryError::invalid(
            format!(
                "the upload of {} to {}",
                self.digest,
                self.inner.location(self.repo)
            ),
            format!(
                "the registry reports {held} bytes but only {end} were sent; push the blob again"
            ),
        )
    }

    /// `GET <location>`: how many bytes the registry holds (204 with `Range: 0-N`).
    async fn status(&mut self, before: u64) -> Result<u64, SendError> {
        let req = Request::new(Method::GET, self.location.clone(), self.scope());
        let resp = self.inner.send(req).await?;
        let status = resp.status();
        if status == StatusCode::NO_CONTENT || status == StatusCode::OK {
            return Ok(self.progress(resp.headers(), before)?);
        }
        let url = self.location.clone();
        if status == StatusCode::NOT_FOUND {
            return Err(SendError::Gone);
        }
        let body = transport::read_limited(resp, 64 << 10)
            .await
            .unwrap_or_default();
        let codes = transport::error_codes(&body);
        if status == StatusCode::BAD_REQUEST
            && codes
                .iter()
                .any(|c| c == "BLOB_UPLOAD_INVALID" || c == "BLOB_UPLOAD_UNKNOWN")
        {
            return Err(SendError::Gone);
        }
        Err(RegistryError::Http {
            method: "GET".into(),
            url: transport::show_url(&url),
            status: status.as_u16(),
            message: transport::error_message(&body),
        }
        .into())
    }

    /// `PUT <location>?digest=…` with the remaining bytes (or none): commits the blob.
    async fn finish(self, body: ReqBody) -> Result<(), RegistryError> {
        let mut url = self.location.clone();
        url.query_pairs_mut()
            .append_pair("digest", &self.digest.to_string());
        let req = Request::new(Method::PUT, url.clone(), self.scope())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let outcome = self.inner.send(req).await;
        let failure = match outcome {
            Ok(resp)
                if resp.status() == StatusCode::CREATED
                    || resp.status() == StatusCode::NO_CONTENT
                    || resp.status() == StatusCode::OK =>
            {
                if let Some(d) = header_str(resp.headers(), "docker-content-digest")
                    && d != self.digest.to_string()
                {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("the blob stored in {}", self.inner.location(self.repo)),
                        expected: self.digest.to_string(),
                        actual: d.to_owned(),
                    });
                }
                return Ok(());
            }
            Ok(resp) => {
                self.inner
                    .error_for(&Method::PUT, &url, &self.scope(), resp)
                    .await
            }
            Err(e) => e,
        };
        // A retried PUT finds the session closed if the first one went through: check.
        if let Ok(Some(_)) = self
            .inner
            .blob_head(self.repo, self.digest, self.scope())
            .await
        {
            return Ok(());
        }
        Err(failure)
    }

    /// `DELETE <location>`: abandons the upload (best effort; the registry also expires it).
    async fn cancel(self) {
        let req = Request::new(Method::DELETE, self.location.clone(), self.scope());
        match self.inner.send(req).await {
            Ok(resp) => tracing::debug!(status = resp.status().as_u16(), "upload cancelled"),
            Err(e) => {
                tracing::debug!(error = %wharf_core::display_chain(&e), "cancelling the upload failed")
            }
        }
    }
}

/// Bytes held according to a `Range: 0-N` (or `bytes=0-N`) header. Registries send `0-0`
/// both for nothing and for one byte; it is read as one byte only when exactly one is
/// expected. (Guessing wrong cannot store bad content: the registry then refuses the final
/// digest.)
fn held_bytes(range: &str, expected: u64) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, end) = range.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let end = end.trim();
    if end.starts_with('-') {
        return Some(0); // `0--1`: empty
    }
    let end: u64 = end.parse().ok()?;
    Some(if end == 0 && expected != 1 {
        0
    } else {
        end + 1
    })
}

/// Reads a blob stream in chunks, hashing every byte once.
struct ChunkReader {
    stream: BlobStream,
    digest: Digest,
    pending: Option<Bytes>,
    hasher: Option<Hasher>,
    total: u64,
    declared: Option<u64>,
    ended: bool,
}

impl ChunkReader {
    fn new(stream: BlobStream, digest: &Digest, declared: Option<u64>) -> Self {
        Self {
            stream,
            digest: digest.clone(),
            pending: None,
            hasher: Some(Hasher::new(digest.algorithm())),
            total: 0,
            declared,
            ended: false,
        }
    }

    /// The next piece of the stream, hashed; `None` at the end.
    async fn next_piece(&mut self) -> Result<Option<Bytes>, RegistryError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        if self.ended {
            return Ok(None);
        }
        loop {
            match self.stream.next().await {
                None => {
                    self.ended = true;
                    return Ok(None);
                }
                Some(Err(source)) => {
                    return Err(RegistryError::Stream {
                        digest: self.digest.to_string(),
                        source,
                    });
                }
                Some(Ok(piece)) if piece.is_empty() => {}
                Some(Ok(piece)) => {
                    self.total += piece.len() as u64;
                    if let Some(declared) = self.declared
                        && self.total > declared
                    {
                        return Err(RegistryError::SizeMismatch {
                            what: "the blob stream".into(),
                            expected: declared,
                            actual: self.total,
                        });
                    }
                    if let Some(h) = &mut self.hasher {
                        h.update(&piece);
                    }
                    return Ok(Some(piece));
                }
            }
        }
    }

    /// Up to `max` bytes; empty at the end of the stream.
    async fn next_chunk(&mut self, max: usize) -> Result<Bytes, RegistryError> {
        let Some(mut piece) = self.next_piece().await? else {
            return Ok(Bytes::new());
        };
        if piece.len() >= max {
            // No copy: hand out a slice, keep the rest for the next chunk.
            let rest = piece.split_off(max);
            if !rest.is_empty() {
                self.pending = Some(rest);
            }
            return Ok(piece);
        }
        let mut buf = BytesMut::with_capacity(max.min(self.size_hint(piece.len())));
        buf.extend_from_slice(&piece);
        drop(piece);
        while buf.len() < max {
            let Some(mut piece) = self.next_piece().await? else {
                break;
            };
            let room = max - buf.len();
            if piece.len() > room {
                self.pending = Some(piece.split_off(room));
            }
            buf.extend_from_slice(&piece);
        }
        Ok(buf.freeze())
    }

    /// A capacity guess for the chunk buffer: the declared remainder when known.
    fn size_hint(&self, first: usize) -> usize {
        match self.declared {
            Some(declared) => {
                let before = self.total - first as u64;
                usize::try_from(declared.saturating_sub(before))
                    .unwrap_or(usize::MAX)
                    .max(first)
            }
            None => usize::MAX,
        }
    }

    /// Whether the stream has no more bytes (reads ahead one piece).
    async fn at_end(&mut self) -> Result<bool, RegistryError> {
        if self.pending.is_some() {
            return Ok(false);
        }
        match self.next_piece().await? {
            Some(p) => {
                self.pending = Some(p);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// After the end: the bytes hash to `digest` and match the declared size.
    fn verify(&mut self, repo: &str, digest: &Digest) -> Result<(), RegistryError> {
        let actual =
            self.hasher.take().map(Hasher::finish).ok_or_else(|| {
                RegistryError::invalid("the blob stream", "it was verified twice")
            })?;
        if let Some(declared) = self.declared
            && declared != self.total
        {
            return Err(RegistryError::SizeMismatch {
                what: format!("blob {digest} for {repo}"),
                expected: declared,
                actual: self.total,
            });
        }
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("the blob pushed to {repo} (nothing was stored)"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

/// A downloaded blob, hashed as it streams; ends with an error when it broke off or does not
/// match its digest.
struct Verifying {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_len: Option<u64>,
    received: u64,
    url: String,
    done: bool,
}

impl Stream for Verifying {
    type Item = wharf_core::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let what = || format!("blob {}", this.expected);
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(piece))) => {
                this.received += piece.len() as u64;
                if let Some(len) = this.expected_len
                    && this.received > len
                {
                    this.done = true;
                    return Poll::Ready(Some(Err(RegistryError::invalid(
                        format!("{} from {}", what(), this.url),
                        format!("the registry sent more than the {len} bytes it announced"),
                    )
                    .into())));
                }
                if let Some(h) = &mut this.hasher {
                    h.update(&piece);
                }
                Poll::Ready(Some(Ok(piece)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                let err = match this.expected_len {
                    Some(expected) => {
                        tracing::debug!(error = %e.without_url(), "blob download broke off");
                        RegistryError::Incomplete {
                            what: what(),
                            url: this.url.clone(),
                            received: this.received,
                            expected,
                        }
                    }
                    None => RegistryError::Transport {
                        url: format!("GET {}", this.url),
                        source: Box::new(e.without_url()),
                    },
                };
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => {
                this.done = true;
                if let Some(len) = this.expected_len
                    && this.received < len
                {
                    return Poll::Ready(Some(Err(RegistryError::Incomplete {
                        what: what(),
                        url: this.url.clone(),
                        received: this.received,
                        expected: len,
                    }
                    .into())));
                }
                let actual = this.hasher.take().map(Hasher::finish);
                match actual {
                    Some(actual) if actual != this.expected => {
                        Poll::Ready(Some(Err(RegistryError::DigestMismatch {
                            what: format!("{} from {}", what(), this.url),
                            expected: this.expected.to_string(),
                            actual: actual.to_string(),
                        }
                        .into())))
                    }
                    _ => Poll::Ready(None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ranges() {
        assert_eq!(held_bytes("0-99", 100), Some(100));
        assert_eq!(held_bytes("bytes=0-99", 0), Some(100));
        assert_eq!(held_bytes("0-0", 0), Some(0));
        assert_eq!(held_bytes("0-0", 1), Some(1));
        assert_eq!(
            held_bytes("0-0", 65536),
            Some(0),
            "lost, rather than one byte"
        );
        assert_eq!(held_bytes("0--1", 5), Some(0));
        assert_eq!(held_bytes("5-9", 10), None);
        assert_eq!(held_bytes("garbage", 10), None);
    }

    fn stream_of(pieces: Vec<&'static [u8]>) -> BlobStream {
        Box::pin(futures_util::stream::iter(
            pieces.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ))
    }

    #[tokio::test]
    async fn chunks_split_and_join_pieces_and_hash_everything_once() {
        let data: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        let digest = Digest::sha256_of(data);
        let mut r = ChunkReader::new(
            stream_of(vec![&data[..3], &data[3..4], &data[4..20], &data[20..]]),
            &digest,
            Some(26),
        );
        let mut got = Vec::new();
        loop {
            let c = r.next_chunk(7).await.unwrap();
            if c.is_empty() {
                break;
            }
            assert!(c.len() <= 7);
            got.push(c);
        }
        assert_eq!(got.iter().map(Bytes::len).collect::<Vec<_>>(), [7, 7, 7, 5]);
        assert_eq!(got.concat(), data);
        r.verify("r", &digest).unwrap();
    }

    #[tokio::test]
    async fn a_wrong_digest_or_size_is_an_integrity_error() {
        let abd = Digest::sha256_of(b"abd");
        let mut r = ChunkReader::new(stream_of(vec![b"abc"]), &abd, None);
        assert_eq!(r.next_chunk(10).await.unwrap().len(), 3);
        assert!(r.at_end().await.unwrap());
        let err = r.verify("r", &abd).unwrap_err();
        assert_eq!(err.kind(), wharf_core::ErrorKind::Integrity);

        let mut r = ChunkReader::new(stream_of(vec![b"abc", b"def"]), &abd, Some(4));
        let err = r.next_chunk(10).await.unwrap_err();
        assert_eq!(err.kind(), wharf_core::ErrorKind::Integrity, "{err}");
    }
}

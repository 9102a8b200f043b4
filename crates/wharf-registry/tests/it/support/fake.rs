//! A small in-memory registry that follows the distribution spec where distribution 2.8 does
//! not (upload resume from the reported `Range`, `Content-Range` checks, tag pagination with
//! `Link`), and misbehaves on request: wrong bytes, truncated bodies, 500s and hang-ups in
//! the middle of an upload, 429 with `Retry-After`, manifests that lie about their digest,
//! an expiring bearer token, Basic passwords revoked after a number of requests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use wharf_core::Digest;

use super::server::{Reply, Request, Response, serve};

/// What the fake does wrong.
#[derive(Debug, Default, Clone)]
pub(crate) struct Faults {
    /// Blob downloads carry other bytes of the same length.
    pub(crate) wrong_blob: bool,
    /// Blob downloads stop halfway (the connection closes).
    pub(crate) truncate_blob: bool,
    /// The Nth `PATCH` (from 1) keeps half its bytes and answers 500.
    pub(crate) patch_500_on: Option<usize>,
    /// The Nth `PATCH` keeps half its bytes and closes the connection without answering.
    pub(crate) patch_hangup_on: Option<usize>,
    /// The Nth `PATCH` loses all the upload's bytes (also earlier chunks) and answers 500.
    pub(crate) patch_lose_on: Option<usize>,
    /// Every `PATCH` answers 500 and keeps nothing.
    pub(crate) patch_always_500: bool,
    /// The next this many requests get 429 with `Retry-After: 1`.
    pub(crate) throttle: usize,
    /// Manifest downloads carry other bytes than the digest they are asked by.
    pub(crate) lie_manifest: bool,
    /// The final `PUT` of an upload loses a race: another pusher's identical blob is stored
    /// and this one is answered `DIGEST_INVALID`, as registries answer the loser.
    pub(crate) put_loses_race: bool,
    /// The next this many manifest `PUT`s find a blob being re-committed by another pusher
    /// (`DIGEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`).
    pub(crate) manifest_blob_moving: usize,
    /// Requests need a bearer token from `/token`, valid this many seconds.
    pub(crate) bearer: Option<u64>,
    /// Requests need these Basic credentials (with `bearer`: only `/token` does).
    pub(crate) basic: Option<BasicAuth>,
}

/// A user and the passwords accepted for it.
#[derive(Debug, Default, Clone)]
pub(crate) struct BasicAuth {
    pub(crate) user: String,
    /// Each password with the number of requests it is still accepted for (`None`: any);
    /// at 0 it is revoked.
    pub(crate) passwords: Vec<(String, Option<usize>)>,
}

impl BasicAuth {
    pub(crate) fn new(user: &str, passwords: &[(&str, Option<usize>)]) -> Self {
        Self {
            user: user.to_owned(),
            passwords: passwords
                .iter()
                .map(|(p, n)| ((*p).to_owned(), *n))
                .collect(),
        }
    }

    /// Whether `authorization` carries an accepted password; counts the request against it.
    fn accept(&mut self, authorization: Option<&str>) -> Option<String> {
        use base64::Engine as _;
        let encoded = authorization?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        if user != self.user {
            return None;
        }
        let (_, left) = self
            .passwords
            .iter_mut()
            .find(|(p, left)| p == password && *left != Some(0))?;
        if let Some(n) = left {
            *n -= 1;
        }
        Some(password.to_owned())
    }

    /// Revokes `password` now.
    pub(crate) fn revoke(&mut self, password: &str) {
        for (p, left) in &mut self.passwords {
            if p == password {
                *left = Some(0);
            }
        }
    }
}

/// An upload in progress.
#[derive(Debug, Default)]
pub(crate) struct Upload {
    pub(crate) repo: String,
    pub(crate) data: Vec<u8>,
}

/// Everything the fake holds, for assertions.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) faults: Faults,
    /// `METHOD /path -> status` per request.
    pub(crate) log: Vec<String>,
    pub(crate) blobs: HashMap<(String, String), Vec<u8>>,
    pub(crate) uploads: HashMap<String, Upload>,
    pub(crate) cancelled: Vec<String>,
    pub(crate) manifests: HashMap<(String, String), (String, Vec<u8>)>,
    pub(crate) tags: BTreeMap<(String, String), String>,
    pub(crate) patches: usize,
    pub(crate) tokens_issued: usize,
    pub(crate) valid_tokens: HashSet<String>,
    /// The Basic password of each accepted request (and token request), in order.
    pub(crate) basic_accepted: Vec<String>,
    next_id: usize,
}

/// A running fake registry.
pub(crate) struct Fake {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<Mutex<State>>,
}

impl Fake {
    pub(crate) async fn start(faults: Faults) -> Fake {
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        let addr_cell: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let cell = Arc::clone(&addr_cell);
        let addr = serve(Arc::new(move |req: Request| {
            let state = Arc::clone(&shared);
            let addr = cell.lock().unwrap().expect("address known");
            Box::pin(async move {
                let line = format!("{} {}", req.method, req.path());
                let reply = handle(&mut state.lock().unwrap(), addr, req);
                let outcome = match &reply {
                    Reply::Send(r) => r.status.to_string(),
                    Reply::Truncate(..) => "truncated".to_owned(),
                    Reply::Hangup => "hangup".to_owned(),
                };
                state
                    .lock()
                    .unwrap()
                    .log
                    .push(format!("{line} -> {outcome}"));
                reply
            })
        }))
        .await;
        *addr_cell.lock().unwrap() = Some(addr);
        Fake { addr, state }
    }

    /// The address as the client builder takes it.
    pub(crate) fn url(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// The request log so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    /// Log lines starting with `prefix`.
    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }
}

fn digest_of(bytes: &[u8]) -> String {
    Digest::sha256_of(bytes).to_string()
}

fn range(len: usize) -> String {
    format!("0-{}", len.saturating_sub(1))
}

fn handle(s: &mut State, addr: SocketAddr, req: Request) -> Reply {
    // Strict like nginx: one framing header at most.
    let lengths = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .count();
    if lengths > 1 || (lengths == 1 && req.header("transfer-encoding").is_some()) {
        return Reply::Send(Response::error(
            400,
            "UNSUPPORTED",
            "ambiguous request framing",
        ));
    }
    if s.faults.throttle > 0 {
        s.faults.throttle -= 1;
        return Reply::Send(
            Response::error(429, "TOOMANYREQUESTS", "slow down").header("Retry-After", "1"),
        );
    }
    let path = req.path().to_owned();
    if let Some(basic) = s.faults.basic.as_mut()
        && (path == "/token" || s.faults.bearer.is_none())
    {
        match basic.accept(req.header("authorization")) {
            Some(password) => s.basic_accepted.push(password),
            // A token server answers 401 without a challenge; a registry asks for Basic.
            None if path == "/token" => {
                return Reply::Send(Response::error(401, "UNAUTHORIZED", "bad credentials"));
            }
            None => {
                return Reply::Send(
                    Response::error(401, "UNAUTHORIZED", "authentication required")
                        .header("WWW-Authenticate", "Basic realm=\"fake\""),
                );
            }
        }
    }
    if path == "/token" {
        s.tokens_issued += 1;
        let token = format!("tok-{}", s.tokens_issued);
        s.valid_tokens.insert(token.clone());
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        return Reply::Send(Response::json(
            200,
            &serde_json::json!({"access_token": token, "expires_in": s.faults.bearer.unwrap_or(60), "issued_at": now}),
        ));
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Reply::Send(Response::new(404).body("404 page not found"));
    };
    let rest = rest.to_owned();
    if s.faults.bearer.is_some() {
        let ok = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| s.valid_tokens.contains(t));
        if !ok {
            let repo = rest
                .split("/blobs/")
                .next()
                .unwrap_or("")
                .split("/manifests/")
                .next()
                .unwrap_or("");
            let actions = if matches!(req.method.as_str(), "GET" | "HEAD") {
                "pull"
            } else {
                "pull,push"
            };
            return Reply::Send(Response::error(401, "UNAUTHORIZED", "authentication required").header(
                "WWW-Authenticate",
                format!("Bearer realm=\"http://{addr}/token\",service=\"fake\",scope=\"repository:{repo}:{actions}\""),
            ));
        }
    }
    if rest.is_empty() {
        return Reply::Send(Response::json(200, &serde_json::json!({})));
    }
    if let Some(repo) = rest.strip_suffix("/blobs/uploads/") {
        return start_upload(s, repo, &req);
    }
    if let Some(at) = rest.rfind("/blobs/uploads/") {
        let repo = rest[..at].to_owned();
        let id = rest[at + "/blobs/uploads/".len()..].to_owned();
        return upload(s, &repo, &id, req);
    }
    if let Some(at) = rest.rfind("/blobs/") {
        let repo = rest[..at].to_owned();
        let digest = rest[at + "/blobs/".len()..].to_owned();
        return blob(s, &repo, &digest, &req);
    }
    if let Some(at) = rest.rfind("/manifests/") {
        let repo = rest[..at].to_owned();
        let reference = rest[at + "/manifests/".len()..].to_owned();
        return manifest(s, &repo, &reference, req);
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return tags(s, repo, &req);
    }
    Reply::Send(Response::new(404).body("404 page not found"))
}

fn start_upload(s: &mut State, repo: &str, req: &Request) -> Reply {
    if let (Some(digest), Some(from)) = (req.query("mount"), req.query("from"))
        && let Some(data) = s.blobs.get(&(from, digest.clone())).cloned()
    {
        s.blobs.insert((repo.to_owned(), digest.clone()), data);
        return Reply::Send(
            Response::new(201)
                .header("Location", format!("/v2/{repo}/blobs/{digest}"))
                .header("Docker-Content-Digest", digest),
        );
    }
    s.next_id += 1;
    let id = format!("u{}", s.next_id);
    s.uploads.insert(
        id.clone(),
        Upload {
            repo: repo.to_owned(),
            data: Vec::new(),
        },
    );
    Reply::Send(
        Response::new(202)
            .header("Location", format!("/v2/{repo}/blobs/uploads/{id}"))
            .header("Range", "0-0")
            .header("Docker-Upload-UUID", id),
    )
}

fn upload(s: &mut State, repo: &str, id: &str, req: Request) -> Reply {
    let location = format!("/v2/{repo}/blobs/uploads/{id}");
    let Some(up) = s.uploads.get_mut(id).filter(|u| u.repo == repo) else {
        return Reply::Send(Response::error(
            404,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        ));
    };
    match req.method.as_str() {
        "GET" => Reply::Send(
            Response::new(204)
                .header("Location", location)
                .header("Range", range(up.data.len()))
                .header("Docker-Upload-UUID", id),
        ),
        "DELETE" => {
            s.uploads.remove(id);
            s.cancelled.push(id.to_owned());
            Reply::Send(Response::new(204))
        }
        "PATCH" => {
            s.patches += 1;
            let n = s.patches;
            let f = s.faults.clone();
            let up = s.uploads.get_mut(id).unwrap();
            if let Some(cr) = req.header("content-range") {
                let start: usize = cr.split('-').next().unwrap().parse().unwrap();
                if start != up.data.len() {
                    return Reply::Send(
                        Response::error(
                            416,
                            "BLOB_UPLOAD_INVALID",
                            "content range does not continue the upload",
                        )
                        .header("Range", range(up.data.len())),
                    );
                }
            }
            if f.patch_always_500 {
                return Reply::Send(Response::error(500, "UNKNOWN", "storage is down"));
            }
            if f.patch_lose_on == Some(n) {
                up.data.clear();
                return Reply::Send(Response::error(500, "UNKNOWN", "lost the upload's data"));
            }
            let half = req.body.len() / 2;
            if f.patch_500_on == Some(n) {
                up.data.extend_from_slice(&req.body[..half]);
                return Reply::Send(Response::error(500, "UNKNOWN", "disk hiccup"));
            }
            if f.patch_hangup_on == Some(n) {
                up.data.extend_from_slice(&req.body[..half]);
                return Reply::Hangup;
            }
            up.data.extend_from_slice(&req.body);
            Reply::Send(
                Response::new(202)
                    .header("Location", location)
                    .header("Range", range(up.data.len()))
                    .header("Docker-Upload-UUID", id),
            )
        }
        "PUT" => {
            let mut up = s.uploads.remove(id).unwrap();
            up.data.extend_from_slice(&req.body);
            let want = req.query("digest").unwrap_or_default();
            let got = digest_of(&up.data);
            if s.faults.put_loses_race && want == got {
                s.blobs.insert((repo.to_owned(), got), up.data);
                return Reply::Send(Response::error(
                    400,
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                ));
            }
            if want != got {
                return Reply::Send(Response::error(
                    400,
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                ));
            }
            s.blobs.insert((repo.to_owned(), got.clone()), up.data);
            Reply::Send(
                Response::new(201)
                    .header("Location", format!("/v2/{repo}/blobs/{got}"))
                    .header("Docker-Content-Digest", got),
            )
        }
        _ => Reply::Send(Response::new(405)),
    }
}

fn blob(s: &mut State, repo: &str, digest: &str, req: &Request) -> Reply {
    let Some(data) = s.blobs.get(&(repo.to_owned(), digest.to_owned())) else {
        return Reply::Send(Response::error(
            404,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        ));
    };
    let mut body = data.clone();
    if s.faults.wrong_blob
        && let Some(b) = body.first_mut()
    {
        *b ^= 0xff;
    }
    let resp = Response::new(200)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest)
        .header("Content-Length", body.len().to_string())
        .body(body);
    if req.method == "GET" && s.faults.truncate_blob {
        let half = resp.body.len() / 2;
        return Reply::Truncate(resp, half);
    }
    Reply::Send(resp)
}

fn manifest(s: &mut State, repo: &str, reference: &str, req: Request) -> Reply {
    match req.method.as_str() {
        "PUT" => {
            if s.faults.manifest_blob_moving > 0 {
                s.faults.manifest_blob_moving -= 1;
                return Reply::Send(Response::error(
                    400,
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                ));
            }
            let media_type = req.header("content-type").unwrap_or("").to_owned();
            let parsed: serde_json::Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(_) => return Reply::Send(Response::error(400, "MANIFEST_INVALID", "not JSON")),
            };
            let mut named: Vec<String> = Vec::new();
            if let Some(c) = parsed["config"]["digest"].as_str() {
                named.push(c.to_owned());
            }
            for l in parsed["layers"].as_array().into_iter().flatten() {
                named.extend(l["digest"].as_str().map(str::to_owned));
            }
            for d in &named {
                if !s.blobs.contains_key(&(repo.to_owned(), d.clone())) {
                    return Reply::Send(Response::error(
                        400,
                        "MANIFEST_BLOB_UNKNOWN",
                        "blob unknown to registry",
                    ));
                }
            }
            let digest = digest_of(&req.body);
            s.manifests
                .insert((repo.to_owned(), digest.clone()), (media_type, req.body));
            if !reference.starts_with("sha256:") {
                s.tags
                    .insert((repo.to_owned(), reference.to_owned()), digest.clone());
            }
            Reply::Send(
                Response::new(201)
                    .header("Location", format!("/v2/{repo}/manifests/{digest}"))
                    .header("Docker-Content-Digest", digest),
            )
        }
        "GET" | "HEAD" => {
            let digest = if reference.starts_with("sha256:") {
                reference.to_owned()
            } else {
                match s.tags.get(&(repo.to_owned(), reference.to_owned())) {
                    Some(d) => d.clone(),
                    None => {
                        return Reply::Send(Response::error(
                            404,
                            "MANIFEST_UNKNOWN",
                            "manifest unknown",
                        ));
                    }
                }
            };
            let Some((media_type, bytes)) =
                s.manifests.get(&(repo.to_owned(), digest.clone())).cloned()
            else {
                return Reply::Send(Response::error(404, "MANIFEST_UNKNOWN", "manifest unknown"));
            };
            let mut body = bytes;
            if s.faults.lie_manifest {
                body.push(b' ');
            }
            Reply::Send(
                Response::new(200)
                    .header("Content-Type", media_type)
                    .header("Docker-Content-Digest", digest)
                    .header("Content-Length", body.len().to_string())
                    .body(body),
            )
        }
        _ => Reply::Send(Response::new(405)),
    }
}

fn tags(s: &mut State, repo: &str, req: &Request) -> Reply {
    let all: Vec<String> = s
        .tags
        .keys()
        .filter(|(r, _)| r == repo)
        .map(|(_, t)| t.clone())
        .collect();
    if all.is_empty() {
        return Reply::Send(Response::error(
            404,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        ));
    }
    let last = req.query("last");
    let n: usize = req
        .query("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let after: Vec<String> = all
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let page: Vec<String> = after.iter().take(n).cloned().collect();
    let mut resp = Response::json(200, &serde_json::json!({"name": repo, "tags": page}));
    if after.len() > page.len()
        && let Some(l) = page.last()
    {
        resp = resp.header(
            "Link",
            format!("</v2/{repo}/tags/list?last={l}&n={n}>; rel=\"next\""),
        );
    }
    Reply::Send(resp)
}

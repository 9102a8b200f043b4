//! A counting proxy in front of a real registry: forwards every request and records
//! `METHOD /path?query -> status` (without upload-state tokens), so tests can assert which
//! requests a client made.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::server::{Reply, Request, Response, serve};

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`).
    pub(crate) async fn start(upstream: &str) -> Proxy {
        let log = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let upstream = upstream.to_owned();
        let me: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (shared_log, shared_me) = (Arc::clone(&log), Arc::clone(&me));
        let addr = serve(Arc::new(move |req: Request| {
            let (http, upstream, log) = (http.clone(), upstream.clone(), Arc::clone(&shared_log));
            let me = shared_me.lock().unwrap().expect("address known");
            Box::pin(async move {
                let shown = shown_target(&req.target);
                let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
                let mut rb = http.request(method, format!("http://{upstream}{}", req.target));
                for (k, v) in &req.headers {
                    if !["host", "content-length", "connection", "transfer-encoding"]
                        .contains(&k.to_ascii_lowercase().as_str())
                    {
                        rb = rb.header(k, v);
                    }
                }
                let resp = rb.body(req.body).send().await.unwrap();
                let status = resp.status().as_u16();
                let mut out = Response::new(status);
                for (k, v) in resp.headers() {
                    let k = k.as_str();
                    if ["transfer-encoding", "connection"].contains(&k)
                        || (k == "content-length" && req.method != "HEAD")
                    {
                        continue;
                    }
                    let v = v.to_str().unwrap().replace(&upstream, &me.to_string());
                    out = out.header(k, v);
                }
                let body = resp.bytes().await.unwrap();
                log.lock()
                    .unwrap()
                    .push(format!("{} {shown} -> {status}", req.method));
                Reply::Send(out.body(body.to_vec()))
            })
        }))
        .await;
        *me.lock().unwrap() = Some(addr);
        Proxy { addr, log }
    }

    /// The address as the client builder takes it.
    pub(crate) fn url(&self) -> String {
        self.addr.to_string()
    }

    /// The requests recorded since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// The target without `_state` upload tokens.
fn shown_target(target: &str) -> String {
    match target.split_once('?') {
        None => target.to_owned(),
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.starts_with("_state="))
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
    }
}

//! The WebDAV methods. [`handle`] bounds the path, authenticates against the vault
//! the path names, maps the path into the vault folder and dispatches; each method
//! lives in its own module.

mod body;
mod copymove;
pub(crate) mod lock;
mod methods;
pub(crate) mod props;

use crate::{fs, State, Vault};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Every answer's body.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;
/// A method's answer.
pub(crate) type Reply = Response<Body>;

/// The `Server` header: names us, so the WebDAV provider does not mistake us for
/// another server family (it probes `Server`).
const SERVER: &str = concat!("syncfabric/", env!("CARGO_PKG_VERSION"));
const REALM: &str = "Basic realm=\"syncfabric\", charset=\"UTF-8\"";

/// What a href's segment keeps unescaped.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'\'')
    .add(b';')
    .add(b'&')
    .add(b'+')
    .add(b'=');

/// One request, resolved: its vault, its segments inside it and its file.
pub(crate) struct Ctx<'a> {
    pub st: &'a Arc<State>,
    pub vault: &'a Vault,
    pub segs: Vec<String>,
    pub path: PathBuf,
    pub headers: HeaderMap,
}

impl Ctx<'_> {
    /// The lock/property key of this resource: vault id, then segments.
    pub fn key(&self) -> Vec<String> {
        key_of(&self.vault.id, &self.segs)
    }
    /// The href of this resource (a collection's ends in `/`).
    pub fn href(&self, dir: bool) -> String {
        href_of(&self.vault.id, &self.segs, dir)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) fn key_of(id: &str, segs: &[String]) -> Vec<String> {
    let mut k = Vec::with_capacity(segs.len() + 1);
    k.push(id.to_string());
    k.extend(segs.iter().cloned());
    k
}

/// The href of a resource key (vault id, then segments).
pub(crate) fn href_of_key(key: &[String], dir: bool) -> String {
    match key.split_first() {
        Some((id, segs)) => href_of(id, segs, dir),
        None => "/dav/".into(),
    }
}

pub(crate) fn href_of(id: &str, segs: &[String], dir: bool) -> String {
    let mut h = format!("/dav/{id}/");
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            h.push('/');
        }
        h.extend(utf8_percent_encode(s, SEGMENT));
    }
    if dir && !segs.is_empty() {
        h.push('/');
    }
    h
}

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An answer with no body.
pub(crate) fn status(code: StatusCode) -> Reply {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

/// An XML answer.
pub(crate) fn xml(code: StatusCode, body: String) -> Reply {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

/// The request path split into decoded segments after `/dav/`: `None` when it is not
/// under `/dav/`, `Err` when a segment does not decode to UTF-8.
fn split_path(path: &str) -> Option<Result<Vec<String>, ()>> {
    let rest = path.strip_prefix("/dav/")?;
    Some(
        rest.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| ())
            })
            .collect(),
    )
}

/// Answers one request.
pub(crate) async fn handle(st: &Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    st.status_mut().requests += 1;
    let mut r = route(st, peer, req).await;
    r.headers_mut()
        .insert(hyper::header::SERVER, HeaderValue::from_static(SERVER));
    r
}

async fn route(st: &Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let raw_path = req.uri().path();
    if raw_path.len() > st.limits.max_path_bytes {
        return status(StatusCode::URI_TOO_LONG);
    }
    let segs = match split_path(raw_path) {
        None => return status(StatusCode::NOT_FOUND),
        Some(Err(())) => return status(StatusCode::BAD_REQUEST),
        Some(Ok(s)) => s,
    };
    let Some((id, segs)) = segs.split_first() else {
        return status(StatusCode::NOT_FOUND);
    };
    let vault = st.vaults.get(id.as_str());
    if let Err(r) = authenticate(st, peer, vault, req.headers()).await {
        return r;
    }
    let Some(vault) = vault else {
        return status(StatusCode::NOT_FOUND);
    };
    let path = match fs::resolve(&vault.root, segs) {
        Ok(p) => p,
        Err(fs::PathError::Invalid) => return status(StatusCode::BAD_REQUEST),
        Err(fs::PathError::Outside) => return status(StatusCode::NOT_FOUND),
    };
    let (parts, body) = req.into_parts();
    let ctx = Ctx {
        st,
        vault,
        segs: segs.to_vec(),
        path,
        headers: parts.headers,
    };
    let m = parts.method;
    match m.as_str() {
        "OPTIONS" => methods::options(),
        "GET" | "HEAD" => methods::get(&ctx, m == Method::HEAD).await,
        "PUT" => methods::put(&ctx, body).await,
        "DELETE" => methods::delete(&ctx).await,
        "MKCOL" => methods::mkcol(&ctx, body).await,
        "COPY" => copymove::copy_or_move(&ctx, false).await,
        "MOVE" => copymove::copy_or_move(&ctx, true).await,
        "PROPFIND" => props::propfind(&ctx, body).await,
        "PROPPATCH" => props::proppatch(&ctx, body).await,
        "LOCK" => lock::lock(&ctx, body).await,
        "UNLOCK" => lock::unlock(&ctx).await,
        _ => {
            let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut().insert(
                hyper::header::ALLOW,
                HeaderValue::from_static(methods::ALLOW),
            );
            r
        }
    }
}

/// Checks the Basic password against `vault`'s (a random digest for an unknown
/// vault, so that fails the same way and in the same time). A request without
/// credentials gets its 401 challenge without counting as a failure.
async fn authenticate(
    st: &Arc<State>,
    peer: SocketAddr,
    vault: Option<&Vault>,
    headers: &HeaderMap,
) -> Result<(), Reply> {
    let challenge = || {
        let mut r = status(StatusCode::UNAUTHORIZED);
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(REALM),
        );
        r
    };
    let Some(h) = headers.get(hyper::header::AUTHORIZATION) else {
        return Err(challenge());
    };
    let given = crate::auth::basic_password(h.as_bytes()).unwrap_or_default();
    let expected = match vault {
        Some(v) => crate::auth::digest(v.password.expose().as_bytes()),
        None => {
            let mut r = [0u8; 32];
            let _ = openssl::rand::rand_bytes(&mut r);
            r
        }
    };
    let ip = peer.ip();
    let out = st
        .guard
        .check(ip, || crate::auth::verify(&expected, &given))
        .await;
    let mut s = st.status_mut();
    if out.delayed {
        s.backoff_delays += 1;
    }
    if out.ok {
        s.clients.insert(ip);
        Ok(())
    } else {
        s.failed_logins += 1;
        drop(s);
        Err(challenge())
    }
}

/// Reads a request body into memory, at most `max` bytes (`Err(413)` beyond).
pub(crate) async fn read_small(body: Incoming, max: usize) -> Result<Vec<u8>, Reply> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| status(StatusCode::BAD_REQUEST))?;
        if let Some(d) = frame.data_ref() {
            if out.len() + d.len() > max {
                return Err(status(StatusCode::PAYLOAD_TOO_LARGE));
            }
            out.extend_from_slice(d);
        }
    }
    Ok(out)
}

/// The metadata of the resource, if it exists (not following symlinks: `resolve`
/// refused those already).
pub(crate) fn meta(p: &std::path::Path) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(p).ok()
}

/// Evaluates `If-Match` / `If-None-Match` against the resource's current state: `Err`
/// with 412 (or 304 for a GET's `If-None-Match`) when they fail.
pub(crate) fn check_etag_conditions(
    ctx: &Ctx<'_>,
    m: Option<&std::fs::Metadata>,
    read: bool,
) -> Result<(), Reply> {
    let tag = m.map(fs::etag);
    let list_has = |v: &str, tag: &str| v.split(',').map(str::trim).any(|t| t == "*" || t == tag);
    if let Some(v) = ctx.header("if-match") {
        let ok = tag.as_deref().is_some_and(|t| list_has(v, t));
        if !ok {
            return Err(status(StatusCode::PRECONDITION_FAILED));
        }
    }
    if let Some(v) = ctx.header("if-none-match") {
        let hit = tag.as_deref().is_some_and(|t| list_has(v, t));
        if hit {
            return Err(status(if read {
                StatusCode::NOT_MODIFIED
            } else {
                StatusCode::PRECONDITION_FAILED
            }));
        }
    }
    Ok(())
}

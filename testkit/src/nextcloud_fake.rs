//! A Nextcloud WebDAV fake on 127.0.0.1, written from Nextcloud's developer manual:
//! the files endpoint and chunked upload v2, enough for the WebDAV provider's
//! Nextcloud profile (PROPFIND, GET, PUT, MKCOL, DELETE; MKCOL/PUT/MOVE of an upload).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use syncfabric_testkit::nextcloud_fake::NextcloudFake;
//! let nc = NextcloudFake::start("alice", "app-password").await?;
//! let root = nc.files_url(); // http://127.0.0.1:<port>/remote.php/dav/files/alice/
//! # let _ = root;
//! # Ok(()) }
//! ```
//!
//! What it does, and where each fact comes from:
//!
//! * **Files** live under `/remote.php/dav/files/<user>/` ("The base url for all WebDAV
//!   operations for a Nextcloud instance is /remote.php/dav", basic.html). PROPFIND
//!   answers `resourcetype`, `getcontentlength`, `getetag` (quoted) and
//!   `getlastmodified` (RFC 4918 §9.1, §15). A PUT, MOVE or COPY answer carries
//!   `OC-Etag` and `OC-FileId` ("On creation, move and copy, the response contain the
//!   etag of the file", basic.html, "Response Headers") and `ETag`. A PUT is stored
//!   only once its whole body has arrived (Nextcloud writes to a part file and renames
//!   it), so a cut upload leaves the previous content. PUT and DELETE evaluate
//!   `If-Match` / `If-None-Match: *` against the file (RFC 7232 §3.1, §3.2).
//! * **Chunked upload v2** (chunking.html, "Chunked upload v2"): `MKCOL
//!   /remote.php/dav/uploads/<user>/<id>`; `PUT …/<id>/<n>`, "The naming of the
//!   individual chunks is limited to be a number between 1 and 10000", "The size of
//!   chunks must be between 5MB and 5GB (except for the last chunk, which can be
//!   smaller)", "Every request needs to have a Destination header present which
//!   specifies the target path of the file", "The chunks will be assembled in the order
//!   of their names"; the upload is assembled by `MOVE …/<id>/.file` to the destination,
//!   with `OC-Total-Length` the file's size; `DELETE …/<id>` drops an upload.
//! * **Conditions on that MOVE.** `If-Match` is evaluated against the request's own
//!   resource, the source (RFC 7232 §3.1: "the target resource"), here the upload's
//!   `.file`, whose tag is never a file's: a client that sends the destination's tag
//!   there gets 412 every time. Measured against Nextcloud 34.0.1 (issue #14): "the
//!   final MOVE of `.file` carries `If-Match`, which Nextcloud evaluates against the
//!   upload collection, not the destination, so it answers 412 every time", while
//!   "`If: <destination URL> (["<etag>"])` on that MOVE works (204, and 412 for a stale
//!   tag), and `Overwrite: F` is the create-only form". The `If` header follows RFC
//!   4918 §10.4: a tagged list applies to the resource its URL names, an untagged one
//!   to the request's resource; `Overwrite: F` with an existing destination is 412
//!   (§10.6). A MOVE answers 201 for a new destination, 204 for a replaced one (§9.9.4).
//!
//! Not modelled: WebDAV locks (the provider's Nextcloud profile does not use them; an
//! `If` list naming a lock token is never true here), sharing, versions, trash.

use crate::graph_fake::http::{self, pct_decode, BodyReader, RespBody, Response};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

/// "The size of chunks must be between 5MB and 5GB (except for the last chunk, which
/// can be smaller)" (chunking.html).
pub const MIN_CHUNK: u64 = 5 * 1024 * 1024;
/// "The naming of the individual chunks is limited to be a number between 1 and
/// 10000" (chunking.html).
pub const MAX_CHUNKS: u32 = 10_000;
/// The largest request body the fake takes (a chunk or a plain PUT).
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// What the fake saw, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextcloudStats {
    /// Upload collections created (`MKCOL …/uploads/<user>/<id>`).
    pub uploads_started: u64,
    /// Chunks received.
    pub chunks: u64,
    /// Chunked uploads assembled into a file.
    pub chunked_commits: u64,
    /// `MOVE …/.file` refused with 412 (a condition or `Overwrite: F`).
    pub commits_refused: u64,
    /// Plain (unchunked) PUTs stored.
    pub plain_puts: u64,
}

#[derive(Clone)]
struct File {
    data: Arc<Vec<u8>>,
    etag: String,
    id: u64,
    modified: SystemTime,
}

enum Node {
    Dir,
    File(File),
}

struct Upload {
    destination: String,
    etag: String,
    chunks: BTreeMap<u32, Vec<u8>>,
}

struct State {
    user: String,
    password: String,
    /// Paths relative to the user's files root, decoded, no leading or trailing `/`;
    /// `""` is the root.
    nodes: BTreeMap<String, Node>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
    stats: NextcloudStats,
}

impl State {
    fn new_etag(&mut self) -> String {
        self.next_id += 1;
        format!("\"{:016x}{:08x}\"", fastrand::u64(..), self.next_id)
    }
}

/// A running fake; stops when dropped.
pub struct NextcloudFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NextcloudFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextcloudFake")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for NextcloudFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NextcloudFake {
    /// Starts the fake on `127.0.0.1:0` with one user (basic auth `user`/`password`)
    /// whose files root is empty.
    pub async fn start(user: &str, password: &str) -> std::io::Result<NextcloudFake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut nodes = BTreeMap::new();
        nodes.insert(String::new(), Node::Dir);
        let state = Arc::new(Mutex::new(State {
            user: user.to_string(),
            password: password.to_string(),
            nodes,
            uploads: HashMap::new(),
            next_id: 0,
            stats: NextcloudStats::default(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(st, sock).await;
                });
            }
        });
        Ok(NextcloudFake { addr, state, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The user's files root: `http://127.0.0.1:<port>/remote.php/dav/files/<user>/`.
    pub fn files_url(&self) -> String {
        let user = lock(&self.state).user.clone();
        format!("{}/remote.php/dav/files/{}/", self.base_url(), enc(&user))
    }

    /// What the fake saw so far.
    pub fn stats(&self) -> NextcloudStats {
        lock(&self.state).stats.clone()
    }

    /// The content of the file at `path` (relative to the files root), if any.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        match lock(&self.state).nodes.get(path.trim_matches('/')) {
            Some(Node::File(f)) => Some(f.data.to_vec()),
            _ => None,
        }
    }

    /// The ETag (quoted) of the file at `path`, if any.
    pub fn etag(&self, path: &str) -> Option<String> {
        match lock(&self.state).nodes.get(path.trim_matches('/')) {
            Some(Node::File(f)) => Some(f.etag.clone()),
            _ => None,
        }
    }

    /// How many upload collections exist (started and neither assembled nor deleted).
    pub fn open_uploads(&self) -> usize {
        lock(&self.state).uploads.len()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn enc_path(p: &str) -> String {
    p.split('/').map(enc).collect::<Vec<_>>().join("/")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn parent_of(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(a, _)| a)
}

async fn serve_conn(state: Arc<Mutex<State>>, sock: TcpStream) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut conn = BufReader::with_capacity(64 * 1024, sock);
    loop {
        let Some(req) = http::read_head(&mut conn).await? else {
            return Ok(());
        };
        let head_only = req.method == "HEAD";
        let mut body = BodyReader::new(&mut conn, req.content_length);
        // The whole body first (bounded): a body cut short ends the connection here and
        // changes nothing, as Nextcloud's part files do.
        let data = match body.read_all(MAX_BODY).await? {
            Some(d) => d,
            None => {
                body.drain().await?;
                http::write_response(&mut conn, Response::new(413), head_only).await?;
                continue;
            }
        };
        let resp = handle(&state, &req, data);
        http::write_response(&mut conn, resp, head_only).await?;
    }
}

/// Where a request goes.
enum Target {
    /// A path under the files root (decoded).
    Files(String),
    /// An upload collection, and the member inside it (`""` for the collection).
    Upload(String, String),
}

fn route(st: &State, raw_path: &str) -> Option<Target> {
    let path = pct_decode(raw_path)?;
    let files = format!("/remote.php/dav/files/{}", st.user);
    let uploads = format!("/remote.php/dav/uploads/{}/", st.user);
    if let Some(rest) = path.strip_prefix(&files) {
        if rest.is_empty() || rest.starts_with('/') {
            let rel = rest.trim_matches('/');
            if rel.split('/').any(|s| s == ".." || s == ".") {
                return None;
            }
            return Some(Target::Files(rel.to_string()));
        }
    }
    let rest = path.strip_prefix(&uploads)?.trim_end_matches('/');
    let (id, member) = rest.split_once('/').unwrap_or((rest, ""));
    (!id.is_empty() && !member.contains('/'))
        .then(|| Target::Upload(id.to_string(), member.to_string()))
}

fn authorised(st: &State, req: &http::Request) -> bool {
    let Some(v) = req.header("authorization") else {
        return false;
    };
    let Some(b64) = v.strip_prefix("Basic ") else {
        return false;
    };
    base64_decode(b64.trim()).is_some_and(|d| d == format!("{}:{}", st.user, st.password))
}

fn base64_decode(s: &str) -> Option<String> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = T.iter().position(|&t| t == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn handle(state: &Mutex<State>, req: &http::Request, body: Vec<u8>) -> Response {
    let mut st = lock(state);
    if !authorised(&st, req) {
        return Response::new(401).header("WWW-Authenticate", "Basic realm=\"Nextcloud\"");
    }
    if req.method == "OPTIONS" {
        return Response::new(200)
            .header("DAV", "1, 3, extended-mkcol")
            .header("X-Nextcloud-Request-Id", "fake")
            .header(
                "Allow",
                "OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, MKCOL, MOVE",
            );
    }
    match route(&st, &req.path) {
        Some(Target::Files(p)) => files(&mut st, req, &p, body),
        Some(Target::Upload(id, member)) => upload(&mut st, req, &id, &member, body),
        None => Response::new(404),
    }
}

fn files(st: &mut State, req: &http::Request, p: &str, body: Vec<u8>) -> Response {
    match req.method.as_str() {
        "PROPFIND" => propfind(st, req, p),
        "GET" | "HEAD" => get(st, req, p),
        "PUT" => put(st, req, p, body),
        "MKCOL" => match st.nodes.get(p) {
            Some(_) => Response::new(405),
            None if !matches!(st.nodes.get(parent_of(p)), Some(Node::Dir)) => Response::new(409),
            None => {
                st.nodes.insert(p.to_string(), Node::Dir);
                Response::new(201)
            }
        },
        "DELETE" => delete(st, req, p),
        _ => Response::new(501),
    }
}

/// RFC 7232 §3.1/§3.2 on a plain request: `If-Match` (a list of tags, or `*`) and
/// `If-None-Match: *` against `current`, the target's tag when it exists.
fn http_conditions_hold(req: &http::Request, current: Option<&str>) -> bool {
    if let Some(m) = req.header("if-match") {
        let ok = match current {
            None => false,
            Some(_) if m.trim() == "*" => true,
            Some(c) => m.split(',').any(|t| t.trim() == c),
        };
        if !ok {
            return false;
        }
    }
    if let Some(n) = req.header("if-none-match") {
        let matches = match current {
            None => false,
            Some(_) if n.trim() == "*" => true,
            Some(c) => n.split(',').any(|t| t.trim() == c),
        };
        if matches {
            return false;
        }
    }
    true
}

fn current_etag(st: &State, p: &str) -> Option<String> {
    match st.nodes.get(p) {
        Some(Node::File(f)) => Some(f.etag.clone()),
        _ => None,
    }
}

fn store(st: &mut State, p: &str, data: Vec<u8>) -> (String, u64, bool) {
    let etag = st.new_etag();
    let existed = st.nodes.contains_key(p);
    let id = match st.nodes.get(p) {
        Some(Node::File(f)) => f.id,
        _ => st.next_id,
    };
    st.nodes.insert(
        p.to_string(),
        Node::File(File {
            data: Arc::new(data),
            etag: etag.clone(),
            id,
            modified: SystemTime::now(),
        }),
    );
    (etag, id, existed)
}

fn stored(status: u16, etag: &str, id: u64) -> Response {
    Response::new(status)
        .header("OC-Etag", etag)
        .header("ETag", etag)
        .header("OC-FileId", format!("{id:08}ocfake"))
}

fn put(st: &mut State, req: &http::Request, p: &str, body: Vec<u8>) -> Response {
    if p.is_empty() || matches!(st.nodes.get(p), Some(Node::Dir)) {
        return Response::new(409);
    }
    if !matches!(st.nodes.get(parent_of(p)), Some(Node::Dir)) {
        return Response::new(409);
    }
    if !http_conditions_hold(req, current_etag(st, p).as_deref()) {
        return Response::new(412);
    }
    st.stats.plain_puts += 1;
    let (etag, id, existed) = store(st, p, body);
    stored(if existed { 204 } else { 201 }, &etag, id)
}

fn delete(st: &mut State, req: &http::Request, p: &str) -> Response {
    if p.is_empty() {
        return Response::new(403);
    }
    if !st.nodes.contains_key(p) {
        return Response::new(404);
    }
    if !http_conditions_hold(req, current_etag(st, p).as_deref()) {
        return Response::new(412);
    }
    let prefix = format!("{p}/");
    st.nodes.retain(|k, _| k != p && !k.starts_with(&prefix));
    Response::new(204)
}

fn get(st: &State, req: &http::Request, p: &str) -> Response {
    let Some(Node::File(f)) = st.nodes.get(p) else {
        return Response::new(404);
    };
    let len = f.data.len() as u64;
    let from = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok());
    let (status, start) = match from {
        Some(n) if n >= len && len > 0 => return Response::new(416),
        Some(n) => (206, n),
        None => (200, 0),
    };
    let mut r = Response::new(status)
        .header("ETag", f.etag.clone())
        .header("OC-Etag", f.etag.clone())
        .header("Last-Modified", httpdate(f.modified));
    if status == 206 {
        r = r.header(
            "Content-Range",
            format!("bytes {start}-{}/{len}", len.saturating_sub(1)),
        );
    }
    r.body = RespBody::Bytes(f.data[start as usize..].to_vec());
    r
}

fn propfind(st: &State, req: &http::Request, p: &str) -> Response {
    let Some(node) = st.nodes.get(p) else {
        return Response::new(404);
    };
    let depth1 = req.header("depth").is_some_and(|d| d.trim() == "1");
    let mut out = String::from(
        "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\">",
    );
    out.push_str(&prop_response(&st.user, p, node));
    if depth1 && matches!(node, Node::Dir) {
        let prefix = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        for (k, n) in st.nodes.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            if !rest.is_empty() && !rest.contains('/') {
                out.push_str(&prop_response(&st.user, k, n));
            }
        }
    }
    out.push_str("</d:multistatus>");
    let mut r = Response::new(207).header("Content-Type", "application/xml; charset=utf-8");
    r.body = RespBody::Bytes(out.into_bytes());
    r
}

fn prop_response(user: &str, p: &str, node: &Node) -> String {
    let mut href = format!("/remote.php/dav/files/{}/{}", enc(user), enc_path(p));
    let props = match node {
        Node::Dir => {
            if !p.is_empty() {
                href.push('/');
            }
            "<d:resourcetype><d:collection/></d:resourcetype>".to_string()
        }
        Node::File(f) => format!(
            "<d:resourcetype/><d:getcontentlength>{}</d:getcontentlength><d:getetag>{}</d:getetag><d:getlastmodified>{}</d:getlastmodified>",
            f.data.len(),
            xml_escape(&f.etag),
            httpdate(f.modified)
        ),
    };
    format!(
        "<d:response><d:href>{}</d:href><d:propstat><d:prop>{props}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
        xml_escape(&href)
    )
}

fn httpdate(t: SystemTime) -> String {
    // RFC 7231 IMF-fixdate, computed here to keep the fake free of a date crate.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {h:02}:{m:02}:{s:02} GMT")
}

/// The files-root path a `Destination` header names (an absolute URL or a path).
fn destination(st: &State, req: &http::Request) -> Option<String> {
    let d = req.header("destination")?;
    let path = match d.find("://") {
        Some(i) => &d[i + 3..][d[i + 3..].find('/')?..],
        None => d,
    };
    match route(st, path)? {
        Target::Files(p) => Some(p),
        Target::Upload(..) => None,
    }
}

fn upload(st: &mut State, req: &http::Request, id: &str, member: &str, body: Vec<u8>) -> Response {
    // "Every request needs to have a Destination header present" (v2).
    let Some(dest) = destination(st, req) else {
        return match req.method.as_str() {
            "DELETE" if member.is_empty() => {
                st.uploads.remove(id);
                Response::new(204)
            }
            _ => Response::new(400),
        };
    };
    match (req.method.as_str(), member) {
        ("MKCOL", "") => {
            if st.uploads.contains_key(id) {
                return Response::new(405);
            }
            let etag = st.new_etag();
            st.uploads.insert(
                id.to_string(),
                Upload {
                    destination: dest,
                    etag,
                    chunks: BTreeMap::new(),
                },
            );
            st.stats.uploads_started += 1;
            Response::new(201)
        }
        ("DELETE", "") => {
            st.uploads.remove(id);
            Response::new(204)
        }
        ("PUT", n) => {
            let Some(up) = st.uploads.get_mut(id) else {
                return Response::new(404);
            };
            let Ok(n) = n.parse::<u32>() else {
                return Response::new(400);
            };
            if !(1..=MAX_CHUNKS).contains(&n) || up.destination != dest {
                return Response::new(400);
            }
            up.chunks.insert(n, body);
            st.stats.chunks += 1;
            Response::new(201)
        }
        ("MOVE", ".file") => assemble(st, req, id, &dest),
        _ => Response::new(405),
    }
}

/// `MOVE …/<id>/.file`: the conditions, then the chunks in order into `dest`.
fn assemble(st: &mut State, req: &http::Request, id: &str, dest: &str) -> Response {
    let Some(up) = st.uploads.get(id) else {
        return Response::new(404);
    };
    if up.destination != dest {
        return Response::new(400);
    }
    // If-Match / If-None-Match are about the request's resource: the upload.
    let dest_tag = current_etag(st, dest);
    let refused = !http_conditions_hold(req, Some(&up.etag))
        || !if_header_holds(st, req, &up.etag, dest, dest_tag.as_deref())
        || (req
            .header("overwrite")
            .is_some_and(|o| o.trim().eq_ignore_ascii_case("F"))
            && st.nodes.contains_key(dest));
    if refused {
        st.stats.commits_refused += 1;
        return Response::new(412);
    }
    if !matches!(st.nodes.get(parent_of(dest)), Some(Node::Dir))
        || matches!(st.nodes.get(dest), Some(Node::Dir))
    {
        return Response::new(409);
    }
    let last = up.chunks.keys().next_back().copied();
    if up
        .chunks
        .iter()
        .any(|(n, c)| Some(*n) != last && (c.len() as u64) < MIN_CHUNK)
    {
        return Response::new(400);
    }
    let total: u64 = up.chunks.values().map(|c| c.len() as u64).sum();
    if req
        .header("oc-total-length")
        .is_some_and(|l| l.trim().parse::<u64>().ok() != Some(total))
    {
        return Response::new(400);
    }
    let Some(up) = st.uploads.remove(id) else {
        return Response::new(404);
    };
    let mut data = Vec::with_capacity(total as usize);
    for c in up.chunks.into_values() {
        data.extend_from_slice(&c);
    }
    st.stats.chunked_commits += 1;
    let (etag, fid, existed) = store(st, dest, data);
    stored(if existed { 204 } else { 201 }, &etag, fid)
}

/// RFC 4918 §10.4 `If`: true when there is none, or when, for each resource of this MOVE
/// that some list applies to, one of those lists holds for it. An untagged list applies to the source (tag
/// `source_tag`); a list tagged with the destination's URL to `dest` (tag `dest_tag`,
/// `None` when it does not exist); a list tagged with another URL applies to nothing
/// here. A condition is `[etag]` or `<lock token>` (no locks exist here: never true),
/// either one possibly preceded by `Not`. An unparsable header is false.
fn if_header_holds(
    st: &State,
    req: &http::Request,
    source_tag: &str,
    dest: &str,
    dest_tag: Option<&str>,
) -> bool {
    let Some(h) = req.header("if") else {
        return true;
    };
    let Some(lists) = parse_if(h) else {
        return false;
    };
    let mut source_lists = Vec::new();
    let mut dest_lists = Vec::new();
    for (tag, conds) in lists {
        match tag {
            None => source_lists.push(conds),
            Some(url) => {
                let path = match url.find("://") {
                    Some(i) => url[i + 3..]
                        .find('/')
                        .map_or("/".to_string(), |j| url[i + 3 + j..].to_string()),
                    None => url,
                };
                if matches!(route(st, &path), Some(Target::Files(p)) if p == dest) {
                    dest_lists.push(conds);
                }
            }
        }
    }
    let holds = |conds: &Vec<(bool, Cond)>, tag: Option<&str>| {
        conds.iter().all(|(not, c)| {
            let v = match c {
                Cond::Etag(e) => tag == Some(e.as_str()),
                Cond::Token => false,
            };
            v != *not
        })
    };
    let source_ok =
        source_lists.is_empty() || source_lists.iter().any(|l| holds(l, Some(source_tag)));
    let dest_ok = dest_lists.is_empty() || dest_lists.iter().any(|l| holds(l, dest_tag));
    source_ok && dest_ok
}

enum Cond {
    /// `[etag]`: the resource's current tag.
    Etag(String),
    /// `<token>`: a lock token (never held here).
    Token,
}

type IfList = (Option<String>, Vec<(bool, Cond)>);

/// Parses an `If` header into (tag URL, conditions) lists; `None` when malformed.
fn parse_if(h: &str) -> Option<Vec<IfList>> {
    let mut out = Vec::new();
    let mut rest = h.trim();
    let mut tag: Option<String> = None;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('<') {
            let end = r.find('>')?;
            tag = Some(r[..end].to_string());
            rest = r[end + 1..].trim_start();
            continue;
        }
        let r = rest.strip_prefix('(')?;
        let end = r.find(')')?;
        let mut inner = r[..end].trim();
        let mut conds = Vec::new();
        while !inner.is_empty() {
            let not = inner.starts_with("Not") || inner.starts_with("not");
            if not {
                inner = inner[3..].trim_start();
            }
            if let Some(x) = inner.strip_prefix('[') {
                let e = x.find(']')?;
                conds.push((not, Cond::Etag(x[..e].trim().to_string())));
                inner = x[e + 1..].trim_start();
            } else if let Some(x) = inner.strip_prefix('<') {
                let e = x.find('>')?;
                conds.push((not, Cond::Token));
                let _ = &x[..e];
                inner = x[e + 1..].trim_start();
            } else {
                return None;
            }
        }
        if conds.is_empty() {
            return None;
        }
        out.push((tag.clone(), conds));
        rest = r[end + 1..].trim_start();
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_headers_parse() {
        let l = parse_if("<http://h/a> ([\"x\"]) (Not <opaquelocktoken:1> [\"y\"])").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].0.as_deref(), Some("http://h/a"));
        assert_eq!(
            l[1].0.as_deref(),
            Some("http://h/a"),
            "a tag holds for the lists after it"
        );
        assert!(matches!(&l[0].1[0], (false, Cond::Etag(e)) if e == "\"x\""));
        assert!(matches!(&l[1].1[0], (true, Cond::Token)));
        assert!(parse_if("([\"x\"]").is_none());
        assert!(parse_if("garbage").is_none());
        assert!(parse_if("()").is_none());
    }

    #[test]
    fn dates_are_imf_fixdate() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(httpdate(t), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn basic_auth_decodes() {
        assert_eq!(base64_decode("dTpw").as_deref(), Some("u:p"));
        assert_eq!(
            base64_decode("YWxpY2U6czNjcmV0").as_deref(),
            Some("alice:s3cret")
        );
    }
}
